#!/usr/bin/env bash
# The project's GPU measurements in one command, on a machine with one CUDA GPU (from the repository root):
#
#     bash benchmarks/device_runs.sh [SCALE]
#
# SCALE multiplies every training budget (1: the figures in README; 0.03: a smoke run of every path).
# The jobs run side by side on the one GPU, one process each, and write their JSON (and figures) to
# benchmarks/results/ with a _gpu suffix and their logs to benchmarks/results/device_logs/.
# Data is read where the CPU benchmarks read it (../shared/data, /usr/share/datasets/fashion-mnist);
# the Fashion-MNIST classifier that judges cgan/acgan is CLASSIFIER (a genzoo `classifier` run).
set -u
S=${1:-1}
CLASSIFIER=${CLASSIFIER:-runs/i13/fashion_classifier}
RUNS=${RUNS:-/tmp/genzoo_device_runs}
L=benchmarks/results/device_logs
mkdir -p "$L" "$RUNS"
b() { python3 -c "print(max(2, round($1 * $S)))"; }  # a budget in seconds, scaled
job() {  # job NAME COMMAND...: in the background, its output and exit status in $L/NAME.log
  local name=$1
  shift
  ( "$@" >"$L/$name.log" 2>&1; echo "exit status $?" >>"$L/$name.log" ) &
}
export PYTHONUNBUFFERED=1

job check python3 benchmarks/device_check.py --parts models,precision --precision-steps "$(b 300)"
for m in pixelcnn gated_pixelcnn diagonal_bilstm vae; do
  job "mnist_$m" python3 benchmarks/device_check.py --parts mnist --mnist-models "$m" \
    --minutes "$(python3 -c "print(4 * $S)")" --is-images 1000 --out "benchmarks/results/device_check_mnist_$m.json"
done
job ptb_lm python3 benchmarks/text.py ptb_lm --device cuda --preset words_gpu --steps 13000 \
  --cpu-seconds "$(b 270)" --tag _gpu
job ptb_vae python3 benchmarks/text.py ptb_vae --device cuda --preset bowman --steps 20000 \
  --cpu-seconds "$(b 270)" --tag _gpu
job ptb_vae_no_fixes python3 benchmarks/text.py ptb_vae --device cuda --preset no_fixes --steps 20000 \
  --cpu-seconds "$(b 270)" --tag _gpu_no_fixes
job tang python3 benchmarks/text.py tang --device cuda --preset poetry_gpu --steps 1500 \
  --cpu-seconds "$(b 270)" --tag _gpu
job tang_all python3 benchmarks/text.py tang --form all --device cuda --preset large \
  --cpu-seconds "$(b 270)" --tag _gpu
job infogan python3 benchmarks/gan_family.py infogan --device cuda --data mnist --seeds 0 1 2 3 4 \
  --cpu "$(b 45)" --runs "$RUNS" --tag _gpu
job ssgan python3 benchmarks/gan_family.py ssgan --device cuda --draws 0 1 2 3 4 --cpu "$(b 30)" \
  --runs "$RUNS" --tag _gpu
job conditional python3 benchmarks/gan_family.py conditional --device cuda --models acgan cgan \
  --cpu "$(b 100)" --threads 2 --classifier "$CLASSIFIER" --runs "$RUNS" --tag _gpu
wait
grep -H "exit status" "$L"/*.log
