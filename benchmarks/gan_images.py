"""GANs on images: DCGAN with the non-saturating loss and with WGAN-GP, same budget, same measurement.

    python benchmarks/gan_images.py --data fashion --minutes 8 --threads 1
    python benchmarks/gan_images.py --data cifar --minutes 8 --threads 1 --rows dcgan:non_saturating

Each row is ``MODEL`` or ``MODEL:LOSS`` (default: ``dcgan:non_saturating`` and ``wgan_gp``, whose
critic uses layer norm as the gradient penalty requires). Each trains (``--preset fashion`` or
``cifar``) for the wall-clock budget through genzoo's Trainer, save a 64-sample grid, then run ``genzoo eval``'s
sections on it: memorisation (nearest training vs test image) and, when ``--features`` is given
(e.g. ``classifier:runs/fashion_classifier``), the sample-quality distances with their protocol.
The JSON is rewritten after every run.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, peak_rss_mb, write_result  # noqa: E402
from genzoo.cli import cmd_sample  # noqa: E402
from genzoo.data import load_dataset  # noqa: E402
from genzoo.evaluation import evaluate  # noqa: E402
from genzoo.io import write_json  # noqa: E402
from genzoo.models.registry import get_model_class, resolve_configs  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402
from genzoo.training.run import RUN_JSON, load_run, run_description  # noqa: E402
from genzoo.training.trainer import Trainer  # noqa: E402

DATA = {"fashion": "idx:/usr/share/datasets/fashion-mnist",
        "cifar": "cifar10:" + str(Path(__file__).resolve().parents[2] / "shared/data/cifar10_jpeg/cifar10_jpeg.tar.gz")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=sorted(DATA), default="fashion")
    p.add_argument("--data-spec", help="override the data spec (e.g. another path)")
    p.add_argument("--rows", nargs="+", default=["dcgan:non_saturating", "wgan_gp"])
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--features", help="feature extractor for FID/KID/PR (e.g. classifier:RUN)")
    p.add_argument("--samples", type=int, default=2000, help="generated images for the metrics")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=Path, default=Path("runs"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    spec = args.data_spec or DATA[args.data]
    data = load_dataset(spec)
    name = f"gan_images_{args.data}"
    result = {"command": " ".join(["python"] + sys.argv), "seed": args.seed, "data": spec,
              "budget": {"train_minutes_per_run": args.minutes}, "rows": []}
    if (RESULTS / f"{name}.json").exists():  # keep rows of other configurations measured earlier
        import json

        result["rows"] = json.loads((RESULTS / f"{name}.json").read_text())["rows"]
    for row in args.rows:
        model_name, _, loss = row.partition(":")
        cls = get_model_class(model_name)
        overrides = {**({"loss": loss} if loss else {}), "time_budget_s": str(args.minutes * 60), "steps": "100000000",
                     "eval_every": "-1", "sample_every": "0", "checkpoint_every": "1000000"}
        model_cfg, train_cfg = resolve_configs(cls, TrainConfig, args.data, overrides)
        torch.manual_seed(args.seed)
        model = cls(model_cfg, data.info)
        loss = loss or model_name
        result["rows"] = [r for r in result["rows"] if (r["model"], r["loss"]) != (model_name, loss)]
        run_dir = args.runs / f"{name}_{loss}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        write_json(run_dir / RUN_JSON, run_description(model_name, model, train_cfg, data, args.seed))
        trainer = Trainer(model, data, train_cfg, run_dir, model_name=model_name, seed=args.seed)
        t0 = time.perf_counter()
        last = trainer.fit()
        train_s = time.perf_counter() - t0
        grid = RESULTS / f"{name}_{loss}_samples.png"
        cmd_sample(run_dir, grid, n=64, seed=args.seed, device="cpu")
        run = load_run(run_dir, "cpu")
        sections = ["memorisation"] + (["quality"] if args.features else [])
        ev = evaluate(run, sections=sections, samples=args.samples, seed=args.seed, figure_dir=run_dir,
                      **({"features": args.features} if args.features else {}))
        write_json(run_dir / "eval.json", ev)
        result["rows"].append({"model": model_name, "loss": loss, "preset": args.data, "config": vars(model_cfg),
                               "parameters": sum(q.numel() for q in model.parameters()),
                               "steps": trainer.step, "epochs": trainer.batches / trainer.stream.per_epoch,
                               "train_seconds": train_s, "last_log": last, "eval": ev["metrics"],
                               "figure": grid.name})
        result["peak_rss_mb"] = peak_rss_mb()
        write_result(name, result)
        shown = {m["metric"]: round(m["value"], 4) for m in ev["metrics"]}
        print(f"{args.data} {loss}: {trainer.step} steps; {shown}", flush=True)


if __name__ == "__main__":
    main()
