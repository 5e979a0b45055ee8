"""Mode collapse on the classic 2-D mixtures, for every GAN loss and option, over several seeds.

    python benchmarks/mode_collapse.py --steps 4000 --seeds 0 1 2 3 4 --threads 1
    python benchmarks/mode_collapse.py --only unrolled --mixtures ring8     # one row

Protocol (VEEGAN, Srivastava et al. 2017, arXiv:1705.07761, Sec. 5.1): train on ``mixture:ring8``
(8 Gaussians on a circle of radius 2, sigma 0.02) and ``mixture:grid25`` (25 Gaussians on
{-4,-2,0,2,4}^2, sigma 0.05); draw 2,500 samples; a sample is high quality when within 3 sigma
of a centre; a mode is covered when >= 20 high-quality samples fall on it; also the KL of the
histogram of high-quality samples over modes from uniform. Mean and spread over seeds. Every run
goes through genzoo's own Trainer with the model's ``ring``/``grid`` preset (same nets and batch
for every row: they differ only in loss and option) and, by default, one learning rate of 1e-3
for both players in every row -- 10x the papers' toy rates, because a CPU budget allows a few
thousand steps where the papers ran tens of thousands. The result JSON is rewritten after every
run, so a partial sweep is never lost.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from genzoo.data import load_dataset  # noqa: E402
from genzoo.data.toy import mode_report  # noqa: E402
from genzoo.models.registry import get_model_class, resolve_configs  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402
from genzoo.training.trainer import Trainer  # noqa: E402

# (row name, model, overrides). Every loss and option of the GAN-core issue.
CONFIGS = [
    ("minimax", "gan", {"loss": "minimax"}),
    ("non_saturating", "gan", {"loss": "non_saturating"}),
    ("unrolled (k=5)", "unrolled_gan", {}),
    ("hinge", "gan", {"loss": "hinge"}),
    ("wasserstein (clip)", "wgan", {}),
    ("ebgan", "ebgan", {}),
    ("wgan_gp", "wgan_gp", {}),
    ("minibatch discrimination", "gan", {"loss": "non_saturating", "minibatch_features": "32"}),
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


def one_run(model_name: str, mixture: str, overrides: dict, seed: int, steps: int) -> dict:
    data = load_dataset(f"mixture:{mixture}")
    cls = get_model_class(model_name)
    sets = {"steps": str(steps), "sample_every": "0", "eval_every": "-1", "checkpoint_every": str(steps),
            "log_every": str(max(1, steps // 50)), **overrides}
    model_cfg, train_cfg = resolve_configs(cls, TrainConfig, PRESET[mixture], sets)
    torch.manual_seed(seed)
    model = cls(model_cfg, data.info)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, data, train_cfg, Path(tmp), model_name=model_name, seed=seed, quiet=True)
        t0 = time.perf_counter()
        trainer.fit()
        seconds = time.perf_counter() - t0
    g = torch.Generator().manual_seed(10_000 + seed)
    pts = model.sample(2500, generator=g).reshape(2500, -1)[:, :2].numpy()
    rep = mode_report(pts, mixture)
    rep.update(seed=seed, seconds=seconds, steps=trainer.step)
    return rep


def summarise(runs: list[dict]) -> dict:
    def ms(key, scale=1.0):
        vals = [r[key] * scale for r in runs]
        return {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0,
                "min": min(vals), "max": max(vals)}

    return {"modes": ms("modes"), "high_quality_pct": ms("high_quality", 100.0),
            "kl_from_uniform": ms("kl_from_uniform"), "n_seeds": len(runs),
            "all_modes_every_seed": all(r["modes"] == r["n_modes"] for r in runs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4000, help="training rounds per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--mixtures", nargs="+", default=["ring8", "grid25"], choices=["ring8", "grid25"])
    p.add_argument("--only", nargs="+", help="substrings of row names to run")
    p.add_argument("--lr", type=float, default=1e-3, help="both players' learning rate, every row (0 = presets')")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="mode_collapse")
    p.add_argument("--keep", action="store_true", help="keep finished rows of an earlier result of this name")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    configs = [c for c in CONFIGS if not args.only or any(o in c[0] for o in args.only)]
    result = {"command": " ".join(["python"] + sys.argv), "seeds": args.seeds,
              "budget": {"steps_per_run": args.steps, "lr_both_players": args.lr or "presets'",
                         "batch_size": args.batch_size},
              "protocol": {"samples": 2500, "high_quality": "within 3 sigma of a centre",
                           "covered": ">= 20 high-quality samples on the mode",
                           "kl": "KL(histogram of high-quality samples over modes || uniform), nats"},
              "published": PUBLISHED, "rows": []}
    import json

    from _common import RESULTS

    earlier: dict[tuple[str, str], list[dict]] = {}
    if args.keep and (RESULTS / f"{args.name}.json").exists():
        old = json.loads((RESULTS / f"{args.name}.json").read_text())
        result["rows"] = old["rows"]  # finished rows (each records its own seeds)
        earlier = {(r["mixture"], r["row"]): r["runs"] for r in result["rows"]}
    for mixture in args.mixtures:
        for row, model_name, overrides in configs:
            runs = list(earlier.get((mixture, row), []))  # --keep: run only the seeds not measured yet
            todo = [seed for seed in args.seeds if seed not in {r["seed"] for r in runs}]
            if not todo:
                continue
            lr = {"d_lr": str(args.lr), "g_lr": str(args.lr)} if args.lr else {}
            lr["batch_size"] = str(args.batch_size)
            for seed in todo:
                rep = one_run(model_name, mixture, {**overrides, **lr}, seed, args.steps)
                runs.append(rep)
                print(f"{mixture:7s} {row:26s} seed {seed}: {rep['modes']}/{rep['n_modes']} modes, "
                      f"{100 * rep['high_quality']:.1f}% high quality, KL {rep['kl_from_uniform']:.3f} "
                      f"({rep['seconds']:.0f} s)", flush=True)
            result["rows"] = [r for r in result["rows"] if not (r["mixture"] == mixture and r["row"] == row)]
            result["rows"].append({"mixture": mixture, "row": row, "model": model_name, "overrides": overrides,
                                   "preset": PRESET[mixture], **summarise(runs), "runs": runs})
            write_result(args.name, result)


if __name__ == "__main__":
    main()
