"""Autoregressive sampling speed: naive vs cached, against the teacher-forced floor.

    python benchmarks/sampling_speed.py                      # every autoregressive model, preset "small"
    python benchmarks/sampling_speed.py --models pixelcnn --batch 64

For each model and image shape (20x20 with 167 values: the Pokémon palette; 28x28 with 2 values:
binarized MNIST) it times, at batch 64 with untrained weights (speed does not depend on them):
one teacher-forced forward pass over the batch (the floor any sampler can approach), sampling with
the cached path, and sampling with the naive path (a full forward pass per sub-pixel), and checks
that both paths give identical samples. Medians over --repeats runs; naive runs once unless asked.
The naive path costs the same full forward pass for every sub-pixel, so it may be timed on the
first rows only (``--naive-rows``: a completion whose other rows are given) and scaled to the whole
image; the JSON says per row how naive was measured, and "identical" then compares those rows.
Targets (issue 12): cached sampling in the model's float32 (genzoo's default) >= 100x faster than
naive and <= 3x one teacher-forced float32 forward pass. ``--precision float64`` times the exact
path (cached == naive sample for sample) against the float64 forward pass instead. One torch thread
by default; the machine is shared, so every time is this process's CPU time (``--clock wall`` for
elapsed seconds on a quiet machine), which other jobs do not inflate.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from genzoo.data import ImageInfo  # noqa: E402
from genzoo.models.base import AutoregressiveModel  # noqa: E402
from genzoo.models.registry import available_models, make_config  # noqa: E402

SHAPES = {"20x20x167": ImageInfo(channels=1, height=20, width=20, num_values=167),
          "28x28x2": ImageInfo(channels=1, height=28, width=28, num_values=2)}


CLOCK = {"cpu": time.process_time, "wall": time.perf_counter}


def timed(fn, repeats: int, clock: str = "cpu") -> tuple[float, object]:
    """Median seconds of ``fn`` over ``repeats`` runs by ``clock`` (cpu: this process's CPU time, which other
    jobs on a shared machine do not inflate; with one thread it is the work done), and the last output."""
    now = CLOCK[clock]
    times, out = [], None
    for _ in range(repeats):
        t = now()
        out = fn()
        times.append(now() - t)
    return statistics.median(times), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*")
    p.add_argument("--preset", default="small")
    p.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--naive-repeats", type=int, default=1)
    p.add_argument("--naive-rows", type=lambda v: dict((k, int(r)) for k, r in (p.split("=") for p in v.split(","))),
                   default={"28x28x2": 4}, help="SHAPE=R,...: time naive on the first R rows only and scale "
                   "(default 28x28x2=4; shapes not named are timed in full)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=["float64", "float32"], default="float32",
                   help="the sampler's precision (float32, the model's, is genzoo's default; float64: cached == "
                        "naive exactly)")
    p.add_argument("--clock", choices=list(CLOCK), default="cpu", help="what a time is (default: CPU seconds)")
    p.add_argument("--name", default="sampling_speed")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    dtype = torch.float64 if args.precision == "float64" else torch.float32
    models = available_models()
    names = args.models or sorted(n for n, c in models.items() if issubclass(c, AutoregressiveModel))
    rows = []
    for name in names:
        cls = models[name]
        preset = args.preset if args.preset in cls.presets else "tiny"
        keys = {f.name for f in __import__("dataclasses").fields(cls.Config)}
        cfg = make_config(cls.Config, {k: v for k, v in cls.presets[preset].items() if k in keys})
        for shape in args.shapes:
            info = SHAPES[shape]
            torch.manual_seed(args.seed)
            model = cls(cfg, info).eval()
            x = torch.randint(0, info.num_values, (args.batch, *info.shape))
            with torch.no_grad():  # the floor, in the precision the sampler computes in (and in float32)
                # the teacher-forced pass the naive sampler repeats per sub-pixel (multiscale: both stages)
                forward = getattr(model, "logits", None) or model.ordered_logits
                forward(F.one_hot(x, info.num_values).float())  # warm-up: first-call allocations are not the floor
                forward32_s, _ = timed(lambda: forward(F.one_hot(x, info.num_values).float()), args.repeats, args.clock)
                model = model.to(dtype)
                forward(F.one_hot(x, info.num_values).to(dtype))
                forward_s, _ = timed(lambda: forward(F.one_hot(x, info.num_values).to(dtype)), args.repeats, args.clock)
            cached_s, cached = timed(lambda: model.sample(args.batch, generator=torch.Generator().manual_seed(1), precision=dtype),
                                     args.repeats, args.clock)
            rows_drawn = args.naive_rows.get(shape, 0)
            if rows_drawn:  # naive cost per sub-pixel is constant: draw the first rows, scale to the image
                known = torch.ones(info.shape, dtype=torch.bool)
                known[:, :rows_drawn] = False
                part_s, part = timed(lambda: model.complete(cached, known, generator=torch.Generator().manual_seed(1), precision=dtype,
                                                            naive=True), args.naive_repeats, args.clock)
                naive_s = part_s * info.height / rows_drawn
                ref = model.complete(cached, known, generator=torch.Generator().manual_seed(1), precision=dtype)
                identical = bool(torch.equal(part, ref))
            else:
                naive_s, naive = timed(lambda: model.sample(args.batch, generator=torch.Generator().manual_seed(1), precision=dtype,
                                                            naive=True), args.naive_repeats, args.clock)
                identical = bool(torch.equal(cached, naive))
            row = {"model": name, "preset": preset, "shape": shape, "batch": args.batch,
                   "precision": str(dtype).replace("torch.", ""), "forward_s": forward_s,
                   "forward_float32_s": forward32_s, "cached_s": cached_s, "naive_s": naive_s,
                   "naive_measured": "full" if not rows_drawn else f"first {rows_drawn} rows, scaled by H/rows",
                   "naive_over_cached": naive_s / cached_s, "cached_over_forward": cached_s / forward_s,
                   "cached_over_forward_float32": cached_s / forward32_s,
                   "identical_samples": identical}
            rows.append(row)
            print(f"{name:<20} {shape:<10} forward {forward_s * 1e3:8.1f} ms  cached {cached_s:7.2f} s  "
                  f"naive {naive_s:8.2f} s  naive/cached {row['naive_over_cached']:6.1f}x  "
                  f"cached/forward {row['cached_over_forward']:6.1f}x (float32 floor {row['cached_over_forward_float32']:5.1f}x)  "
                  f"identical={row['identical_samples']}",
                  flush=True)
            write_result(args.name, {"command": " ".join(["python"] + sys.argv), "seed": args.seed,
                                     "budget": {"repeats": args.repeats, "naive_repeats": args.naive_repeats}, "clock": args.clock,
                                     "targets": {"naive_over_cached_min": 100, "cached_over_forward_max": 3},
                                     "complete": False, "rows": rows})
    write_result(args.name, {"command": " ".join(["python"] + sys.argv), "seed": args.seed,
                             "budget": {"repeats": args.repeats, "naive_repeats": args.naive_repeats}, "clock": args.clock,
                             "targets": {"naive_over_cached_min": 100, "cached_over_forward_max": 3},
                             "complete": True, "rows": rows})


if __name__ == "__main__":
    main()
