"""Pokémon likelihood within a CPU budget: tune on a validation part of the training sprites, then measure test.

    python benchmarks/pokemon_recipe.py --model pixelcnn --preset pokemon --cpu-seconds 1200 --valid   # tuning
    python benchmarks/pokemon_recipe.py --model pixelcnn --preset pokemon --cpu-seconds 1200           # final

With ``--valid`` the 712 training sprites are split once more: every 10th of them (72, fixed) is the
validation part, the model trains on the other 640, and the validation bits/dim is measured every
``--eval-every`` steps (the trained and, with ``ema``, the averaged weights); the test sprites are not
touched. Without it the model trains on all 712 and the test bits/dim is measured once, at the end.

The budget is process CPU time (user + system, all threads; ``_common.cpu_seconds``): 10 minutes on 2
cores is 1200 CPU-seconds, a budget other jobs on a shared machine do not shrink. Training runs in chunks
of ``--eval-every`` steps (the data order is a pure function of seed and batch index, so chunks change
nothing) and stops after the chunk that passes the budget; evaluation time is not counted.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, cpu_seconds, write_result  # noqa: E402
from genzoo.cli import cmd_complete, cmd_sample  # noqa: E402
from genzoo.data import load_dataset  # noqa: E402
from genzoo.io import write_json  # noqa: E402
from genzoo.metrics.likelihood import dataset_nll  # noqa: E402
from genzoo.models.registry import get_model_class, resolve_configs  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402
from genzoo.training.run import RUN_JSON, run_description  # noqa: E402
from genzoo.training.trainer import Trainer  # noqa: E402


def with_validation(data, every: int = 10):
    """The data set with every ``every``-th training image moved into a ``valid`` split (test unchanged)."""
    train = data.splits["train"]
    keep = torch.ones(len(train), dtype=torch.bool)
    keep[::every] = False
    splits = {"train": train[keep], "valid": train[~keep], "test": data.splits["test"]}
    return dataclasses.replace(data, splits=splits)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="pixelcnn")
    p.add_argument("--preset", default="small")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--cpu-seconds", type=float, default=1200.0, help="training budget in process CPU seconds")
    p.add_argument("--steps", type=int, default=0, help="a fixed number of steps instead of the CPU budget")
    p.add_argument("--eval-every", type=int, default=200, help="steps between validation measurements")
    p.add_argument("--valid", action="store_true", help="tune: train on 640, measure the 72 validation sprites")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", help="result name (default pokemon_recipe_MODEL_PRESET[_valid])")
    p.add_argument("--run", type=Path, help="run folder (default runs/bench_NAME)")
    p.add_argument("--from-log", type=Path, help="record the curve a run stopped early printed (its stdout)")
    args = p.parse_args()
    if args.from_log:  # a run stopped before its budget: the rows it printed, marked partial
        rows = [ast.literal_eval(ln) for ln in args.from_log.read_text().splitlines() if ln.startswith("{")]
        print(write_result(args.name, {"command": " ".join(["python"] + sys.argv), "seed": args.seed,
                                       "partial": True, "stopped_at": rows[-1], "model": {"name": args.model,
                                       "preset": args.preset, "sets": args.sets}, "curve": rows}))
        return

    torch.set_num_threads(args.threads)
    name = args.name or f"pokemon_recipe_{args.model}_{args.preset}" + ("_valid" if args.valid else "")
    run_dir = args.run or Path("runs") / f"bench_{name}"
    if run_dir.exists():
        raise SystemExit(f"{run_dir} exists; remove it or pass --run")
    data = load_dataset("pokemon")
    if args.valid:
        data = with_validation(data)
    cls = get_model_class(args.model)
    sets = dict(s.split("=", 1) for s in args.sets)
    overrides = {"steps": str(args.eval_every), "eval_every": "-1", "checkpoint_every": "100000",
                 "sample_every": "0", **sets}
    model_cfg, train_cfg = resolve_configs(cls, TrainConfig, args.preset, overrides)
    torch.manual_seed(args.seed)
    model = cls(model_cfg, data.info)
    trainer = Trainer(model, data, train_cfg, run_dir, model_name=args.model, seed=args.seed, quiet=True)
    run_dir.mkdir(parents=True)
    write_json(run_dir / RUN_JSON, run_description(args.model, model, train_cfg, data, args.seed))
    split = "valid" if args.valid else "test"
    bits = data.info.dims * math.log(2)
    curve: list[dict] = []
    c0, w0, eval_cpu = cpu_seconds(), time.perf_counter(), 0.0
    while True:
        trainer.fit()
        train_cpu = cpu_seconds() - c0 - eval_cpu
        done = (trainer.step >= args.steps) if args.steps else train_cpu >= args.cpu_seconds
        row = {"step": trainer.step, "epoch": trainer.batches / trainer.stream.per_epoch, "train_cpu_s": train_cpu,
               "wall_s": time.perf_counter() - w0}
        if args.valid or done:
            e0 = cpu_seconds()
            row[f"{split}_bits_per_dim"] = dataset_nll(trainer.eval_model, data, split)["nll_nats"] / bits
            if trainer.ema is not None:
                row[f"{split}_bits_per_dim_raw"] = dataset_nll(trainer.model, data, split)["nll_nats"] / bits
            eval_cpu += cpu_seconds() - e0
        curve.append(row)
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
        if args.valid and not done:  # the curve so far, so that a run cut short still leaves what it measured
            write_result(name, {"command": " ".join(["python"] + sys.argv), "seed": args.seed, "partial": True,
                                "model": {"name": args.model, "preset": args.preset, **vars(model_cfg)},
                                "train_config": vars(train_cfg), "curve": curve})
        if done:
            break
        trainer.cfg.steps += args.eval_every
    last = curve[-1]
    result = {
        "command": " ".join(["python"] + sys.argv),
        "seed": args.seed,
        "data": "pokemon" + (" (train minus every 10th training sprite; valid = those 72)" if args.valid else ""),
        "split_measured": split,
        "budget": {"cpu_seconds_asked": None if args.steps else args.cpu_seconds, "steps_asked": args.steps or None,
                   "train_cpu_seconds": last["train_cpu_s"], "wall_seconds": last["wall_s"],
                   "steps": trainer.step, "epochs": last["epoch"], "threads": args.threads},
        "model": {"name": args.model, "preset": args.preset, **vars(model_cfg),
                  "parameters": sum(q.numel() for q in model.parameters())},
        "train_config": vars(train_cfg),
        f"{split}_bits_per_dim": last[f"{split}_bits_per_dim"],
        "curve": curve,
    }
    if not args.valid:
        test = dataset_nll(trainer.eval_model, data, "test")
        result["test"] = {"n_images": test["n_images"], "nll_nats": test["nll_nats"],
                          "bits_per_dim": test["bits_per_dim"]}
        cmd_sample(run_dir, RESULTS / f"{name}_samples.png", n=64, seed=0, device="cpu")
        cmd_complete(run_dir, RESULTS / f"{name}_completion.png", mask="bottom-half", images="test:0-7",
                     samples=4, device="cpu")
        result["figures"] = [f"{name}_samples.png", f"{name}_completion.png"]
    path = write_result(name, result)
    print(f"{name}: {split} {last[f'{split}_bits_per_dim']:.4f} bits/dim after {trainer.step} steps, "
          f"{last['train_cpu_s']:.0f} CPU-s, {last['wall_s']:.0f} s wall -> {path}")


if __name__ == "__main__":
    main()
