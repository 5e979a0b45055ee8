"""Mode collapse on the classic 2-D mixtures, for GAN losses and options, over several seeds, with learning curves.

    python benchmarks/mode_collapse.py --steps 20000 --seeds 0 1 2 --jobs 2         # the default rows
    python benchmarks/mode_collapse.py --only "non_saturating (papers')" --mixtures ring8 --steps 20000
    python benchmarks/mode_collapse.py --plot --name mode_collapse                   # curves -> PNG only

Protocol (VEEGAN, Srivastava et al. 2017, arXiv:1705.07761, Sec. 5.1): train on ``mixture:ring8``
(8 Gaussians on a circle of radius 2, sigma 0.02) and ``mixture:grid25`` (25 Gaussians on
{-4,-2,0,2,4}^2, sigma 0.05); draw 2,500 samples; a sample is high quality when within 3 sigma
of a centre; a mode is covered when >= 20 high-quality samples fall on it; also the KL of the
histogram of high-quality samples over modes from uniform. Mean and spread over seeds.

Every run goes through genzoo's own Trainer with the model's ``ring``/``grid`` preset (the unrolled
GAN paper's nets: 256-d z, 128-unit layers, batches of 512); a row names the loss, its options and
its optimiser: learning rates per player, and a schedule applied by a trainer callback
(``constant``, or ``linear`` decay to zero over the run). ``sn`` in a row puts spectral
normalisation (Miyato et al. 2018, arXiv:1802.05957) on every linear layer of the discriminator.
Every ``--curve-every`` generator steps a callback draws the 2,500 evaluation samples (a fixed
generator) and records modes covered and the high-quality share: the learning curves. The result
JSON is rewritten after every run, so a partial sweep is never lost; ``--jobs 2`` runs two seeds at
once (one torch thread each).
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, LRSchedule, cpu_seconds, write_result  # noqa: E402
from genzoo.data import load_dataset  # noqa: E402
from genzoo.data.toy import mode_report  # noqa: E402
from genzoo.models.registry import get_model_class, resolve_configs  # noqa: E402
from genzoo.training.callbacks import Callback  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402
from genzoo.training.trainer import Trainer  # noqa: E402

PAPERS_LR = {"d_lr": 1e-4, "g_lr": 1e-4}  # the presets' Adam rate (Metz et al. 2016, Appendix A)
# (row name, model, overrides, optimiser: d_lr, g_lr, schedule, sn)
CONFIGS = [
    ("non_saturating (papers')", "gan", {"loss": "non_saturating"}, {**PAPERS_LR, "schedule": "constant"}),
    ("minimax (papers')", "gan", {"loss": "minimax"}, {**PAPERS_LR, "schedule": "constant"}),
    ("unrolled k=5 (papers')", "unrolled_gan", {}, {**PAPERS_LR, "schedule": "constant"}),
    ("wgan_gp (authors' toy)", "wgan_gp", {}, {**PAPERS_LR, "schedule": "constant"}),
    ("hinge", "gan", {"loss": "hinge"}, {**PAPERS_LR, "schedule": "constant"}),
    ("non_saturating, lr 1e-3 constant", "gan", {"loss": "non_saturating"},
     {"d_lr": 1e-3, "g_lr": 1e-3, "schedule": "constant"}),
    ("non_saturating, lr 1e-3 linear decay", "gan", {"loss": "non_saturating"},
     {"d_lr": 1e-3, "g_lr": 1e-3, "schedule": "linear"}),
    ("non_saturating + SN, lr 1e-3 linear decay", "gan", {"loss": "non_saturating"},
     {"d_lr": 1e-3, "g_lr": 1e-3, "schedule": "linear", "sn": True}),
    ("hinge + SN, lr 1e-3 linear decay", "gan", {"loss": "hinge"},
     {"d_lr": 1e-3, "g_lr": 1e-3, "schedule": "linear", "sn": True}),
    ("wgan_gp, lr 1e-3 linear decay", "wgan_gp", {}, {"d_lr": 1e-3, "g_lr": 1e-3, "schedule": "linear"}),
]

# Srivastava et al. 2017 (VEEGAN), Table 1: modes covered (of 8 / 25) and % high-quality samples.
PUBLISHED = {
    "source": "Srivastava et al. 2017, VEEGAN, arXiv:1705.07761, Table 1",
    "ring8": {"GAN": {"modes": 1.0, "high_quality_pct": 99.3}, "ALI": {"modes": 2.8, "high_quality_pct": 0.13},
              "Unrolled GAN": {"modes": 7.6, "high_quality_pct": 35.6},
              "VEEGAN": {"modes": 8.0, "high_quality_pct": 52.9}},
    "grid25": {"GAN": {"modes": 3.3, "high_quality_pct": 0.5}, "ALI": {"modes": 15.8, "high_quality_pct": 1.6},
               "Unrolled GAN": {"modes": 23.6, "high_quality_pct": 16.0},
               "VEEGAN": {"modes": 24.6, "high_quality_pct": 40.0}},
}
PRESET = {"ring8": "ring", "grid25": "grid"}
EVAL_SAMPLES = 2500


class ModeCurve(Callback):
    """Every ``every`` rounds: modes covered and high-quality share of 2,500 samples from a fixed generator."""

    def __init__(self, mixture: str, every: int, seed: int):
        self.mixture, self.every, self.seed, self.points = mixture, every, seed, []

    def on_step_end(self, trainer, record) -> None:
        if self.every and (trainer.step % self.every == 0 or trainer.is_final_step):
            rep = evaluate(trainer.model, self.mixture, self.seed)
            self.points.append({"step": trainer.step, "modes": rep["modes"], "high_quality": rep["high_quality"]})


def evaluate(model, mixture: str, seed: int) -> dict:
    g = torch.Generator().manual_seed(10_000 + seed)
    pts = model.sample(EVAL_SAMPLES, generator=g).reshape(EVAL_SAMPLES, -1)[:, :2].numpy()
    return mode_report(pts, mixture)


def spectral_norm_linears(module: torch.nn.Module) -> None:
    for m in list(module.modules()):
        if isinstance(m, torch.nn.Linear):
            torch.nn.utils.parametrizations.spectral_norm(m)


def one_run(task: tuple) -> dict:
    model_name, mixture, overrides, optim, seed, steps, curve_every, batch_size = task
    torch.set_num_threads(1)
    data = load_dataset(f"mixture:{mixture}")
    cls = get_model_class(model_name)
    sets = {"steps": str(steps), "sample_every": "0", "eval_every": "-1", "checkpoint_every": str(steps),
            "log_every": str(max(1, steps // 50)), "batch_size": str(batch_size),
            "d_lr": str(optim["d_lr"]), "g_lr": str(optim["g_lr"]), **overrides}
    model_cfg, train_cfg = resolve_configs(cls, TrainConfig, PRESET[mixture], sets)
    torch.manual_seed(seed)
    model = cls(model_cfg, data.info)
    if optim.get("sn"):
        spectral_norm_linears(model.discriminator)
    curve = ModeCurve(mixture, curve_every, seed)
    c0, t0 = cpu_seconds(), time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, data, train_cfg, Path(tmp), model_name=model_name, seed=seed, quiet=True,
                          callbacks=[LRSchedule(optim["schedule"], steps), curve])
        trainer.fit()
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    rep = evaluate(model, mixture, seed)
    rep.update(seed=seed, seconds=seconds, cpu_seconds=cpu, steps=trainer.step, curve=curve.points)
    return rep


def summarise(runs: list[dict]) -> dict:
    def ms(key, scale=1.0):
        # the KL of an empty mode histogram (no high-quality sample) is undefined (NaN): left out, counted
        vals = [r[key] * scale for r in runs if r[key] is not None and math.isfinite(r[key])]
        if not vals:
            return {"mean": None, "std": None, "min": None, "max": None, "undefined_runs": len(runs)}
        return {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0,
                "min": min(vals), "max": max(vals), "undefined_runs": len(runs) - len(vals)}

    return {"modes": ms("modes"), "high_quality_pct": ms("high_quality", 100.0),
            "kl_from_uniform": ms("kl_from_uniform"), "wall_seconds_per_run": ms("seconds"),
            "cpu_seconds_per_run": ms("cpu_seconds"), "n_seeds": len(runs),
            "all_modes_every_seed": all(r["modes"] == r["n_modes"] for r in runs),
            "target_met_every_seed": all(r["modes"] == r["n_modes"] and r["high_quality"] >= 0.9 for r in runs)}


def add_row(rows: list[dict], row: dict) -> list[dict]:
    """``rows`` with ``row`` (one mixture and configuration) in it: the seeds of an earlier row of the same
    mixture, configuration and length stay beside the new ones (a seed measured again is replaced)."""
    key = (row["mixture"], row["row"])
    old = next((r for r in rows if (r["mixture"], r["row"]) == key), None)
    runs = row["runs"]
    if old is not None and old.get("steps") == row["steps"]:
        seeds = {r["seed"] for r in runs}
        runs = [r for r in old["runs"] if r["seed"] not in seeds] + runs
    runs = sorted(runs, key=lambda r: r["seed"])
    return [r for r in rows if (r["mixture"], r["row"]) != key] + [{**row, **summarise(runs), "runs": runs}]


def merge(name: str, others: list[str]) -> None:
    """The rows of ``others`` (same protocol, written by sweeps run side by side) added to result ``name``."""
    result = json.loads((RESULTS / f"{name}.json").read_text())
    result["merged_from"] = result.get("merged_from", [])
    for other in others:
        extra = json.loads((RESULTS / f"{other}.json").read_text())
        for row in extra["rows"]:
            result["rows"] = add_row(result["rows"], row)
        result["merged_from"].append({"name": other, "command": extra["command"], "date": extra["date"]})
    for key in ("benchmark", "date", "genzoo_version", "hardware"):  # write_result records them anew
        result.pop(key, None)
    write_result(name, result)


def plot(name: str) -> None:
    import matplotlib  # optional heavy dependency: only for the figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = json.loads((RESULTS / f"{name}.json").read_text())
    mixtures = sorted({r["mixture"] for r in result["rows"]}, reverse=True)
    fig, axes = plt.subplots(2, len(mixtures), figsize=(6.5 * len(mixtures), 7), squeeze=False)
    for j, mixture in enumerate(mixtures):
        rows = [r for r in result["rows"] if r["mixture"] == mixture]
        for i, r in enumerate(rows):
            colour = f"C{i % 10}"
            for k, run in enumerate(r["runs"]):
                steps = [p["step"] for p in run.get("curve", [])]
                label = r["row"] if k == 0 else None
                axes[0, j].plot(steps, [p["modes"] for p in run["curve"]], color=colour, alpha=0.7, label=label)
                axes[1, j].plot(steps, [100 * p["high_quality"] for p in run["curve"]], color=colour, alpha=0.7)
        axes[0, j].set_title(f"{mixture}: modes covered (each line one seed)")
        axes[1, j].set_title(f"{mixture}: high-quality samples (%)")
        axes[1, j].set_xlabel("generator steps")
        axes[1, j].axhline(90, color="grey", lw=0.5, ls="--")
        axes[0, j].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}_curves.png", dpi=90)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20000, help="generator steps (training rounds) per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--mixtures", nargs="+", default=["ring8", "grid25"], choices=["ring8", "grid25"])
    p.add_argument("--only", nargs="+", help="row names to run (exact)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--curve-every", type=int, default=1000)
    p.add_argument("--jobs", type=int, default=1, choices=[1, 2], help="seeds run at once (one thread each)")
    p.add_argument("--name", default="mode_collapse")
    p.add_argument("--plot", action="store_true", help="only draw the curves of an existing result")
    p.add_argument("--merge", nargs="+", metavar="NAME",
                   help="add the rows of these results (runs made at once under other names) to --name, then draw")
    args = p.parse_args()
    if args.merge:
        merge(args.name, args.merge)
    if args.plot or args.merge:
        plot(args.name)
        return
    torch.set_num_threads(1)
    configs = [c for c in CONFIGS if not args.only or c[0] in args.only]
    if args.only and len(configs) != len(args.only):
        p.error(f"unknown rows; valid: {[c[0] for c in CONFIGS]}")
    result = {"command": " ".join(["python"] + sys.argv),
              "protocol": {"samples": EVAL_SAMPLES, "high_quality": "within 3 sigma of a centre",
                           "covered": ">= 20 high-quality samples on the mode",
                           "kl": "KL(histogram of high-quality samples over modes || uniform), nats",
                           "nets": "the models' ring/grid presets (256-d z, 128-unit layers)",
                           "batch_size": args.batch_size},
              "published": PUBLISHED, "rows": []}
    path = RESULTS / f"{args.name}.json"
    if path.exists():  # rows of an earlier sweep stay; a row measured again replaces its seeds
        result["rows"] = json.loads(path.read_text())["rows"]
    pool = multiprocessing.get_context("fork").Pool(args.jobs) if args.jobs > 1 else None
    for mixture in args.mixtures:
        for row, model_name, overrides, optim in configs:
            tasks = [(model_name, mixture, overrides, optim, seed, args.steps, args.curve_every, args.batch_size)
                     for seed in args.seeds]
            runs = pool.map(one_run, tasks) if pool else [one_run(t) for t in tasks]
            for rep in runs:
                print(f"{mixture:7s} {row:42s} seed {rep['seed']}: {rep['modes']}/{rep['n_modes']} modes, "
                      f"{100 * rep['high_quality']:.1f}% HQ ({rep['seconds']:.0f} s wall, "
                      f"{rep['cpu_seconds']:.0f} CPU-s)", flush=True)
            result["rows"] = add_row(result["rows"], {
                "mixture": mixture, "row": row, "model": model_name, "overrides": overrides, "optimiser": optim,
                "preset": PRESET[mixture], "steps": args.steps, "runs": runs})
            write_result(args.name, result)
    if pool:
        pool.close()
    os.environ.setdefault("MPLBACKEND", "Agg")
    plot(args.name)


if __name__ == "__main__":
    main()
