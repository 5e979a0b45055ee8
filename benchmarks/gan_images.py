"""GANs on images: DCGAN with the non-saturating loss and with WGAN-GP, same budget, same measurement.

    python benchmarks/gan_images.py --data fashion --minutes 8 --threads 1
    python benchmarks/gan_images.py --data cifar --minutes 8 --threads 1 --rows dcgan:non_saturating
    python benchmarks/gan_images.py --data fashion --preset fashion_cpu --cpu-seconds 1200 \
        --rows dcgan:non_saturating dcgan:hinge --features classifier:runs/fashion_classifier --samples 2000

Each row is ``MODEL`` or ``MODEL:LOSS`` (default: ``dcgan:non_saturating`` and ``wgan_gp``, whose
critic uses layer norm as the gradient penalty requires). Each trains (``--preset fashion`` or
``cifar``, or ``--preset``) for the wall-clock budget, or for ``--cpu-seconds`` of process CPU time
(user + system, all threads: 10 minutes on 2 cores is 1200, a budget other jobs on a shared machine do
not shrink; training runs in chunks of ``--chunk`` steps and stops after the chunk that passes it),
through genzoo's Trainer, save a 64-sample grid, then run ``genzoo eval``'s
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
from _common import RESULTS, cpu_seconds, peak_rss_mb, write_result  # noqa: E402
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
    p.add_argument("--preset", help="model preset (default: the data's name)")
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--cpu-seconds", type=float, default=0.0, help="training budget in process CPU seconds")
    p.add_argument("--chunk", type=int, default=100, help="steps between CPU-budget checks")
    p.add_argument("--name", help="result name (default gan_images_DATA[_PRESET])")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a config value for every row (e.g. ema=0.999: sample from averaged weights)")
    p.add_argument("--features", help="feature extractor for FID/KID/PR (e.g. classifier:RUN)")
    p.add_argument("--samples", type=int, default=2000, help="generated images for the metrics")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=Path, default=Path("runs"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    spec = args.data_spec or DATA[args.data]
    data = load_dataset(spec)
    preset = args.preset or args.data
    name = args.name or f"gan_images_{args.data}" + (f"_{preset}" if args.preset else "")
    budget = ({"train_cpu_seconds_per_run": args.cpu_seconds, "threads": args.threads} if args.cpu_seconds
              else {"train_minutes_per_run": args.minutes})
    result = {"command": " ".join(["python"] + sys.argv), "seed": args.seed, "data": spec, "budget": budget,
              "rows": []}
    if (RESULTS / f"{name}.json").exists():  # keep rows of other configurations measured earlier
        import json

        result["rows"] = json.loads((RESULTS / f"{name}.json").read_text())["rows"]
    for row in args.rows:
        model_name, _, loss = row.partition(":")
        cls = get_model_class(model_name)
        limit = ({"steps": str(args.chunk)} if args.cpu_seconds
                 else {"time_budget_s": str(args.minutes * 60), "steps": "100000000"})
        overrides = {**({"loss": loss} if loss else {}), **limit,
                     "eval_every": "-1", "sample_every": "0", "checkpoint_every": "1000000",
                     **dict(kv.split("=", 1) for kv in args.sets)}
        model_cfg, train_cfg = resolve_configs(cls, TrainConfig, preset, overrides)
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
        t0, c0 = time.perf_counter(), cpu_seconds()
        last = trainer.fit()
        while args.cpu_seconds and cpu_seconds() - c0 < args.cpu_seconds:
            trainer.cfg.steps += args.chunk
            last = trainer.fit()
        train_s, train_cpu = time.perf_counter() - t0, cpu_seconds() - c0
        grid = RESULTS / f"{name}_{loss}_samples.png"
        cmd_sample(run_dir, grid, n=64, seed=args.seed, device="cpu")
        run = load_run(run_dir, "cpu")
        sections = ["memorisation"] + (["quality"] if args.features else [])
        ev = evaluate(run, sections=sections, samples=args.samples, seed=args.seed, figure_dir=run_dir,
                      **({"features": args.features} if args.features else {}))
        write_json(run_dir / "eval.json", ev)
        result["rows"].append({"model": model_name, "loss": loss, "preset": preset, "sets": args.sets,
                               "config": vars(model_cfg), "train_config": vars(train_cfg),
                               "parameters": sum(q.numel() for q in model.parameters()),
                               "steps": trainer.step, "epochs": trainer.batches / trainer.stream.per_epoch,
                               "train_seconds": train_s, "train_cpu_seconds": train_cpu, "last_log": last, "eval": ev["metrics"],
                               "figure": grid.name})
        result["peak_rss_mb"] = peak_rss_mb()
        write_result(name, result)
        shown = {m["metric"]: round(m["value"], 4) for m in ev["metrics"]}
        print(f"{args.data} {loss}: {trainer.step} steps; {shown}", flush=True)


if __name__ == "__main__":
    main()
