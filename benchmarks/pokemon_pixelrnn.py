"""Pokémon creation with the lecture's PixelRNN: train for a budget, then measure.

    python benchmarks/pokemon_pixelrnn.py --preset lecture --steps 1500

Trains the preset on the 712 training sprites for a budget of steps (or --minutes), then records exact
test NLL (nats/image) and bits/dim on the 80 test sprites, training throughput (pixels/s,
optimiser time only), peak memory, and writes a sample grid and a completion figure.
Beside it, two reference points computed on the same split: the uniform model over 167
colours and independent per-position colour frequencies (add-one smoothed).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, peak_rss_mb, write_result  # noqa: E402

from genzoo.cli import cmd_complete, cmd_sample  # noqa: E402
from genzoo.data import load_dataset  # noqa: E402
from genzoo.metrics.likelihood import dataset_nll  # noqa: E402
from genzoo.registry import get_model_class, resolve_configs  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402
from genzoo.training.trainer import Trainer  # noqa: E402


def independent_pixels_bpd(data) -> float:
    """Test bits/dim of a model with one categorical per position, fitted on train."""
    k = data.info.num_values
    train = data.images("train").flatten(1)  # (N, D)
    counts = torch.ones(train.shape[1], k)
    counts.scatter_add_(1, train.t(), torch.ones_like(train.t(), dtype=torch.float))
    logp = (counts / counts.sum(1, keepdim=True)).log()  # (D, K)
    test = data.images("test").flatten(1)
    nll = -logp.gather(1, test.t()).sum(0).mean().item()
    return nll / (data.info.dims * math.log(2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="lecture")
    p.add_argument("--steps", type=int, default=1500, help="optimiser steps (the budget)")
    p.add_argument("--minutes", type=float, default=0.0, help="wall-clock budget instead of --steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--run", type=Path, default=Path("runs/bench_pokemon_pixelrnn"))
    args = p.parse_args()

    torch.manual_seed(args.seed)
    data = load_dataset("pokemon")
    cls = get_model_class("pixelrnn")
    budget = ({"time_budget_s": str(args.minutes * 60), "steps": "1000000"} if args.minutes
              else {"steps": str(args.steps)})
    overrides = {**budget, "eval_every": "-1",
                 "checkpoint_every": "100", "sample_every": "0"}
    model_cfg, train_cfg = resolve_configs(cls, TrainConfig, args.preset, overrides)
    model = cls(model_cfg, data.info)
    if args.run.exists():
        raise SystemExit(f"{args.run} exists; remove it or pass --run")
    trainer = Trainer(model, data, train_cfg, args.run, model_name="pixelrnn", seed=args.seed,
                      device=torch.device(args.device))
    from genzoo.training.run import RUN_JSON, run_description, write_json

    args.run.mkdir(parents=True)
    write_json(args.run / RUN_JSON, run_description("pixelrnn", model, train_cfg, data, args.seed))
    round_seconds: list[float] = []
    trainer.on_step = lambda t: round_seconds.append(t.last_round_seconds)
    t0 = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - t0
    test = dataset_nll(model, data, "test")
    train = dataset_nll(model, data, "train")
    rows = [json.loads(l) for l in (args.run / "metrics.jsonl").read_text().splitlines()]
    stem = f"pokemon_pixelrnn_{args.preset}"
    cmd_sample(args.run, 64, RESULTS / f"{stem}_samples.png", seed=0, device=args.device)
    cmd_complete(args.run, "bottom-half", RESULTS / f"{stem}_completion.png", images="test:0-7", samples=4,
                 device=args.device)
    result = {
        "command": " ".join(["python"] + sys.argv),
        "seed": args.seed,
        "budget": {"wall_minutes": args.minutes or None, "steps_asked": None if args.minutes else args.steps,
                   "steps": trainer.step, "epochs": trainer.batches / trainer.stream.per_epoch,
                   "batch_size": train_cfg.batch_size},
        "model": {"name": "pixelrnn", "preset": args.preset, **vars(model_cfg),
                  "parameters": sum(p.numel() for p in model.parameters())},
        "train_config": vars(train_cfg),
        "test": {"split": "test", "n_images": test["n_images"], "nll_nats": test["nll_nats"],
                 "bits_per_dim": test["bits_per_dim"]},
        "train_split": {"n_images": train["n_images"], "nll_nats": train["nll_nats"],
                        "bits_per_dim": train["bits_per_dim"]},
        "baselines_test_bits_per_dim": {"uniform_167": math.log2(data.info.num_values),
                                        "independent_pixels": independent_pixels_bpd(data)},
        "throughput_pixels_per_s": rows[-1]["pixels_per_s"],
        "median_step_seconds": statistics.median(round_seconds),
        "median_throughput_pixels_per_s": train_cfg.batch_size * data.info.dims / statistics.median(round_seconds),
        "train_seconds": trainer.train_seconds,
        "wall_seconds": wall,
        "peak_rss_mb": peak_rss_mb(),
        "curve": [{k: r[k] for k in ("step", "epoch", "loss", "bits_per_dim") if k in r} for r in rows],
        "figures": [f"{stem}_samples.png", f"{stem}_completion.png"],
    }
    path = write_result(stem, result)
    print(f"test {test['bits_per_dim']:.4f} bits/dim ({test['nll_nats']:.1f} nats/image) after {trainer.step} steps; "
          f"{result['median_throughput_pixels_per_s']:,.0f} px/s (median step); peak {result['peak_rss_mb']:.0f} MB -> {path}")


if __name__ == "__main__":
    main()
