"""Several processes on the CPU (gloo): 1 against 2 processes at the same global batch, and every family.

    nice -n 10 python benchmarks/ddp_cpu.py                      # both parts (about 10 minutes on 2 cores)
    nice -n 10 python benchmarks/ddp_cpu.py --parts throughput --steps 40

1. ``throughput`` -- ``genzoo train`` in one process (1 thread) and
   ``torchrun --standalone --nproc_per_node=2 -m genzoo train`` (1 thread each) for a likelihood model
   (PixelCNN, ``small``) and a GAN (``gan``, ``mnist``: fully connected) on binarized MNIST, at the same
   global batch and number of steps. Steps per second are taken over the optimiser rounds only (the
   log's ``pixels_per_s``: startup, checkpoints and evaluation excluded); the final training loss is
   recorded beside them. This demonstrates that the processes split the work correctly; it is not a speed
   claim (the machine is shared: the load average is recorded with the result).
2. ``families`` -- every registered model at its ``tiny`` preset (random data of its test shape) trains
   two steps under 2 gloo processes (:class:`genzoo.training.distributed.DistributedTrainer`), and the
   ranks' weights are compared afterwards (they must be identical).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_seconds, write_result  # noqa: E402
from device_check import TINY_INFO, TRANSLATING, one_line, random_data  # noqa: E402
from genzoo.models.registry import available_models, resolve_configs  # noqa: E402
from genzoo.training import distributed  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402

RUNS = [  # model, preset, global batch, kind, steps (a CPU budget of a few minutes a run on a busy machine)
    ("pixelcnn", "small", 32, "likelihood", 12),
    ("gan", "mnist", 64, "gan", 40),
]
DATA = "binarized-mnist:../shared/data/binarized_mnist"
PIXELS = 28 * 28


def _train_cmd(model, preset, batch, steps, out, data) -> list[str]:
    return [
        "-m", "genzoo", "train", model, "--preset", preset, "--data", data, "--steps", str(steps), "--out", str(out),
        "--device", "cpu", "--quiet", "--set", f"batch_size={batch}", "--set", "log_every=1",
        "--set", "sample_every=0", "--set", "eval_every=-1", "--set", f"checkpoint_every={steps}",
    ]  # fmt: skip


def throughput(steps_override: int, data: str, tmp: Path) -> dict:
    out: dict = {}
    for model, preset, batch, kind, default_steps in RUNS:
        steps = steps_override or default_steps
        rows = {}
        for label, procs, threads in (("1 process, 1 thread", 1, 1), ("2 processes, 1 thread each", 2, 1)):
            run = tmp / f"{model}_{procs}_{threads}"
            cmd = _train_cmd(model, preset, batch, steps, run, data)
            if procs == 1:
                argv = [sys.executable, *cmd]
            else:
                argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
                argv += cmd  # torchrun [options] -m genzoo train ...
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            t0, c0 = time.perf_counter(), cpu_seconds()
            done = subprocess.run(argv, env=env, capture_output=True, text=True)
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.strip().splitlines()[-1:]}")
            last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
            batches_per_round = 2 if kind == "gan" else 1  # a GAN round: one D batch and one G batch
            loss = {k: v for k, v in last.items() if k == "loss" or k.endswith("/loss")}
            rows[label] = {
                "processes": procs,
                "threads_per_process": threads,
                "steps": last["step"],
                "steps_per_s": last["pixels_per_s"] / (batch * PIXELS * batches_per_round),
                "final_train_loss": loss,
                "command_wall_seconds": wall,
                "command_cpu_seconds": cpu,
                "world_size": json.loads((run / "run.json").read_text()).get("world_size"),
            }
            print(f"{model} {label}: {rows[label]['steps_per_s']:.2f} steps/s, loss {loss}", file=sys.stderr)
        out[model] = {"preset": preset, "global_batch": batch, "kind": kind, "steps": steps, "runs": rows}
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _family_worker(rank: int, port: int, names: list[str], tmp: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1")
    os.environ.update(MASTER_PORT=str(port), **{distributed.TIMEOUT_ENV: "120"})
    torch.set_num_threads(1)
    world, _ = distributed.setup("cpu")
    results = {}
    for name in names:
        cls = available_models()[name]
        info = getattr(cls, "test_info", None) or TINY_INFO
        t0 = time.perf_counter()
        try:
            keys = {"steps": "2", "batch_size": "4", "sample_every": "0", "eval_every": "-1", "checkpoint_every": "2"}
            model_cfg, cfg = resolve_configs(cls, TrainConfig, "tiny", keys)
            torch.manual_seed(0)
            model = cls(model_cfg, info)
            data = random_data(info, paired=name in TRANSLATING)
            trainer = distributed.DistributedTrainer(
                model, data, cfg, Path(tmp) / name, world=world, model_name=name, seed=0, quiet=True
            )
            trainer.fit()
            flat = torch.cat(
                [v.detach().double().flatten() for v in model.state_dict().values() if v.is_floating_point()]
            )
            results[name] = {"ok": True, "checksum": float(flat.sum()), "seconds": time.perf_counter() - t0}
        except Exception as e:  # noqa: BLE001 -- recorded with its reason; the peer may now be out of step
            results[name] = {"ok": False, "error": one_line(e), "trace": traceback.format_exc()[-600:]}
            break
    torch.save(results, Path(tmp) / f"families.rank{rank}.pt")
    os._exit(0)


def families(tmp: Path, only: str | None = None) -> dict:
    names = only.split(",") if only else sorted(available_models())
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_family_worker, args=(r, port, names, str(tmp))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(900)
        if p.is_alive():
            p.kill()
    ranks = [
        torch.load(tmp / f"families.rank{r}.pt") if (tmp / f"families.rank{r}.pt").exists() else {} for r in (0, 1)
    ]
    out = {}
    for name in names:
        a, b = ranks[0].get(name), ranks[1].get(name)
        if a is None or b is None:
            out[name] = {"ok": False, "error": "not reached (an earlier model failed)"}
        elif a["ok"] and b["ok"]:
            out[name] = {"ok": a["checksum"] == b["checksum"], "ranks_agree": a["checksum"] == b["checksum"],
                         "seconds": a["seconds"]}  # fmt: skip
        else:
            out[name] = a if not a["ok"] else b
        print(f"{name}: {'ok' if out[name]['ok'] else out[name].get('error', 'ranks disagree')}", file=sys.stderr)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="throughput,families")
    p.add_argument("--steps", type=int, default=0, help="steps of each throughput run (0: each model's own)")
    p.add_argument("--data", default=DATA)
    p.add_argument("--name", default="ddp_cpu")
    p.add_argument("--models", help="families: only these (comma-separated)")
    args = p.parse_args()
    torch.set_num_threads(1)
    result: dict = {"command": " ".join(["python", *sys.argv]), "backend": "gloo", "data": args.data}
    t0, c0 = time.perf_counter(), cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="ddp_cpu_") as tmp:
        if "throughput" in args.parts:
            result["throughput"] = throughput(args.steps, args.data, Path(tmp))
        if "families" in args.parts:
            result["families"] = families(Path(tmp), args.models)
    result["wall_seconds"], result["cpu_seconds"] = time.perf_counter() - t0, cpu_seconds() - c0
    print(f"wrote {write_result(args.name, result)}", file=sys.stderr)


if __name__ == "__main__":
    main()
