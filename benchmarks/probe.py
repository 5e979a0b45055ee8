"""Autoencoders as feature learners: linear-probe test accuracy of their codes on Fashion-MNIST.

    python benchmarks/probe.py --minutes 6 --threads 1
    python benchmarks/probe.py --models vae --minutes 6        # one row

Each model (``fashion`` preset) trains on the 60,000 training images for the same wall-clock
budget through genzoo's Trainer; then a softmax classifier is fitted on its frozen codes of the
training split and scored on the 10,000 test images (:func:`genzoo.evaluation.probe.linear_probe`). The
baseline row is the same classifier on the raw pixels. The JSON is rewritten after every row.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, write_result  # noqa: E402
from genzoo.data import load_dataset  # noqa: E402
from genzoo.evaluation.probe import linear_probe, pixel_probe  # noqa: E402
from genzoo.io import write_json  # noqa: E402
from genzoo.models.registry import get_model_class, resolve_configs  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402
from genzoo.training.run import RUN_JSON, run_description  # noqa: E402
from genzoo.training.trainer import Trainer  # noqa: E402

FASHION = "idx:/usr/share/datasets/fashion-mnist"
MODELS = ["autoencoder", "sparse_autoencoder", "denoising_autoencoder", "vae"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=FASHION)
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--preset", default="fashion")
    p.add_argument("--minutes", type=float, default=6.0, help="training budget per model")
    p.add_argument("--probe-epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-pixels", action="store_true", help="skip the raw-pixel baseline row")
    p.add_argument("--name", default="probe_fashion_mnist")
    p.add_argument("--runs", type=Path, default=Path("runs"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.data)
    result = {"command": " ".join(["python"] + sys.argv), "seed": args.seed, "data": args.data,
              "budget": {"train_minutes_per_model": args.minutes, "probe_epochs": args.probe_epochs},
              "protocol": "softmax classifier on standardised frozen codes of the train split; test split accuracy",
              "rows": []}

    def save():
        result["peak_rss_mb"] = peak_rss_mb()
        write_result(args.name, result)

    if not args.no_pixels:
        t0 = time.perf_counter()
        res = pixel_probe(data, epochs=args.probe_epochs, seed=args.seed)
        result["rows"].append({"model": "raw pixels", "code_dim": res.get("code_dim"), "probe": res,
                               "seconds": time.perf_counter() - t0})
        print(f"raw pixels: test accuracy {res['test_accuracy']:.4f}", flush=True)
        save()
    for name in args.models:
        cls = get_model_class(name)
        overrides = {"time_budget_s": str(args.minutes * 60), "steps": "100000000", "eval_every": "-1",
                     "sample_every": "0", "checkpoint_every": "1000000"}
        model_cfg, train_cfg = resolve_configs(cls, TrainConfig, args.preset, overrides)
        torch.manual_seed(args.seed)
        model = cls(model_cfg, data.info)
        run_dir = args.runs / f"probe_{name}"
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / RUN_JSON, run_description(name, model, train_cfg, data, args.seed))
        trainer = Trainer(model, data, train_cfg, run_dir, model_name=name, seed=args.seed)
        trainer.fit()
        res = linear_probe(model, data, epochs=args.probe_epochs, seed=args.seed, device=torch.device("cpu"))
        result["rows"].append({"model": name, "preset": args.preset, "config": vars(model_cfg),
                               "parameters": sum(q.numel() for q in model.parameters()),
                               "train_steps": trainer.step, "train_epochs": trainer.batches / trainer.stream.per_epoch,
                               "probe": res})
        print(f"{name}: {trainer.step} steps, test accuracy {res['test_accuracy']:.4f}", flush=True)
        save()


if __name__ == "__main__":
    main()
