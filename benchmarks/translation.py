"""Facades translation, both directions, on the 106 held-out pairs: the L1-only U-Net, pix2pix and CycleGAN
(trained on shuffled halves: the pairing thrown away) -> L1, PSNR, SSIM to the ground truth and the Frechet
distance in a genzoo feature space (the code of an autoencoder trained on the training split's images of
the output domain). Every training gets a fixed budget of process CPU seconds (calibrated steps).

    nice -n 10 python benchmarks/translation.py --size 64

Writes benchmarks/results/translation.json and translation_<direction>.png (rows: input | L1 | pix2pix |
CycleGAN | target).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

from _common import RESULTS, cpu_seconds, peak_rss_mb, write_result  # noqa: E402
from genzoo.data import ImageDataset, load_dataset  # noqa: E402
from genzoo.data.paired import unpaired_halves  # noqa: E402
from genzoo.features import build_extractor  # noqa: E402
from genzoo.io import write_json  # noqa: E402
from genzoo.metrics.distances import frechet_distance  # noqa: E402
from genzoo.metrics.translation import l1_error, psnr, ssim  # noqa: E402
from genzoo.models.registry import get_model_class, resolve_configs  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402
from genzoo.training.run import load_run  # noqa: E402
from genzoo.training.trainer import Trainer  # noqa: E402
from genzoo.viz import grid, save_png  # noqa: E402

FACADES = Path(__file__).resolve().parents[2] / "shared" / "data" / "facades"
DIRECTIONS = {"labels_to_photo": "BtoA", "photo_to_labels": "AtoB"}  # the files are photo | label map


def calibrate(model, data, batch_size: int, rounds: int = 2) -> float:
    """CPU seconds of one training round (every player once), measured on a copy after one warm-up round."""
    m = copy.deepcopy(model)
    opts = {p: torch.optim.Adam(m.player_parameters(p), 1e-4) for p in m.schedule}
    batch = data.batch("train", list(range(batch_size)))
    rng = torch.get_rng_state()
    for i in range(rounds + 1):
        if i == 1:
            c0 = cpu_seconds()
        for p in m.schedule:
            opts[p].zero_grad()
            m.player_loss(p, batch).loss.backward()
            opts[p].step()
    torch.set_rng_state(rng)
    return (cpu_seconds() - c0) / rounds


def train(name: str, preset: str, data, run_dir: Path, budget: float, seed: int = 0, overrides=None) -> tuple:
    cls = get_model_class(name)
    model_cfg, cfg = resolve_configs(cls, TrainConfig, preset, overrides or {})
    torch.manual_seed(seed)
    model = cls(model_cfg, data.info)
    per_step = calibrate(model, data, cfg.batch_size)
    steps = max(1, int(budget / per_step))
    cfg = dataclasses.replace(
        cfg, steps=steps, epochs=0.0, checkpoint_every=steps, log_every=50, sample_every=0, eval_every=-1
    )
    torch.manual_seed(seed)
    c0, t0 = cpu_seconds(), time.perf_counter()
    trainer = Trainer(model, data, cfg, run_dir, model_name=name, seed=seed, quiet=True)
    last = trainer.fit()
    cpu, wall = cpu_seconds() - c0, time.perf_counter() - t0
    info = {
        "model": name,
        "preset": preset,
        "overrides": overrides or {},
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": steps,
        "batch_size": cfg.batch_size,
        "epochs": steps * cfg.batch_size / data.size("train"),
        "cpu_seconds": round(cpu, 1),
        "wall_seconds": round(wall, 1),
        "cpu_seconds_per_step": round(cpu / steps, 4),
        "wall_seconds_per_step": round(wall / steps, 4),
        "train_images_per_cpu_second": round(steps * cfg.batch_size / cpu, 2),
        "last_log": {k: round(v, 4) for k, v in last.items() if isinstance(v, float)},
    }
    print(f"  {name}/{preset}: {steps} steps, {cpu:.0f} CPU-s, {wall:.0f} s wall", flush=True)
    write_json(Path(run_dir) / "bench_info.json", info)
    return model.eval(), info


def trained(run_dir: Path) -> tuple:
    """A run trained by an earlier ``--stage train`` process: (model, training info)."""
    return load_run(run_dir).model.eval(), json.loads((Path(run_dir) / "bench_info.json").read_text())


def feature_net(data, run_dir: Path, budget: float):
    """An autoencoder on the training split's output-domain images; its code is the feature space."""
    targets = ImageDataset(spec=f"{data.spec}#targets", x=data.target, info=data.info, splits=dict(data.splits))
    _, info = train("autoencoder", None, targets, run_dir, budget, overrides={"latent_dim": "32", "batch_size": "32"})
    return build_extractor(f"autoencoder:{run_dir}"), info


def measure(outputs: torch.Tensor, targets: torch.Tensor, extractor) -> dict:
    u_out, u_t = outputs.double() / 255, targets.double() / 255
    f_out = extractor.features(u_out.float()).astype(np.float64)
    f_t = extractor.features(u_t.float()).astype(np.float64)
    fd = frechet_distance(f_out.mean(0), np.cov(f_out, rowvar=False), f_t.mean(0), np.cov(f_t, rowvar=False))
    return {
        "l1": round(float(l1_error(u_out, u_t).mean()), 4),
        "psnr_db": round(float(psnr(u_out, u_t).mean()), 3),
        "ssim": round(float(ssim(u_out, u_t).mean()), 4),
        "frechet": round(fd, 3),
    }


def translate_all(fn, x: torch.Tensor, batch: int = 16) -> tuple[torch.Tensor, float]:
    t0 = time.perf_counter()
    out = torch.cat([fn(x[i : i + batch], i) for i in range(0, len(x), batch)])
    return out, len(x) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--ae-budget", type=float, default=30.0)
    ap.add_argument("--l1-budget", type=float, default=100.0)
    ap.add_argument("--pix2pix-budget", type=float, default=150.0)
    ap.add_argument("--cyclegan-budget", type=float, default=240.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--stage",
        choices=("all", "train", "eval"),
        default="all",
        help="train: only the trainings named by --only (parallel processes); eval: measure --runs",
    )
    ap.add_argument("--only", choices=("cyclegan", *DIRECTIONS), help="with --stage train")
    ap.add_argument("--runs", help="folder of the runs (default: a new temporary folder)")
    ap.add_argument(
        "--models", nargs="+", default=["ae", "l1_unet", "pix2pix"], help="with --stage train --only DIRECTION"
    )
    args = ap.parse_args()
    c_start, t_start = cpu_seconds(), time.perf_counter()
    tmp = Path(args.runs) if args.runs else Path(tempfile.mkdtemp(prefix="genzoo_translation_"))
    datas = {d: load_dataset(f"paired:{FACADES}", size=args.size, direction=s) for d, s in DIRECTIONS.items()}
    todo = [args.only] if args.stage == "train" else ["cyclegan", *DIRECTIONS]
    if args.stage != "eval":
        for item in todo:
            print(item, flush=True)
            if item == "cyclegan":
                # A = label maps of the first 200 training pairs, B = photos of the other 200: G does labels -> photo
                train(
                    "cyclegan",
                    "cpu",
                    unpaired_halves(datas["labels_to_photo"]),
                    tmp / "cyclegan",
                    args.cyclegan_budget,
                    args.seed,
                )
                continue
            data = datas[item]
            targets = ImageDataset(spec=f"{data.spec}#targets", x=data.target, info=data.info, splits=dict(data.splits))
            if "ae" in args.models:
                ae_options = {"latent_dim": "32", "batch_size": "32"}
                train("autoencoder", None, targets, tmp / f"ae_{item}", args.ae_budget, args.seed, ae_options)
            if "l1_unet" in args.models:
                train("pix2pix", "cpu_l1", data, tmp / f"l1_unet_{item}", args.l1_budget, args.seed)
            if "pix2pix" in args.models:
                train("pix2pix", "cpu", data, tmp / f"pix2pix_{item}", args.pix2pix_budget, args.seed)
        if args.stage == "train":
            return
    results: dict = {"trainings": {}, "test": {}, "translate_images_per_s": {}}
    cyc, results["trainings"]["cyclegan"] = trained(tmp / "cyclegan")
    figures = {}
    for direction, data in datas.items():
        extractor = build_extractor(f"autoencoder:{tmp / f'ae_{direction}'}")
        results["trainings"][f"features_{direction}"] = json.loads(
            (tmp / f"ae_{direction}" / "bench_info.json").read_text()
        )
        x, t = data.images("test"), data.targets("test")  # the 106 held-out pairs
        models = {}
        for key in ("l1_unet", "pix2pix"):
            models[key], results["trainings"][f"{key}_{direction}"] = trained(tmp / f"{key}_{direction}")
        fns = {
            "l1_unet": lambda xb, i, m=models["l1_unet"]: m.translate(
                xb, generator=torch.Generator().manual_seed(args.seed + i)
            ),
            "pix2pix": lambda xb, i, m=models["pix2pix"]: m.translate(
                xb, generator=torch.Generator().manual_seed(args.seed + i)
            ),
            "cyclegan": (lambda xb, i: cyc.translate(xb))
            if direction == "labels_to_photo"
            else (lambda xb, i: cyc.translate_back(xb)),
        }
        outs = {}
        rows = {}
        for key, fn in fns.items():
            outs[key], ips = translate_all(fn, x)
            rows[key] = measure(outs[key], t, extractor)
            results["translate_images_per_s"][f"{key}_{direction}"] = round(ips, 2)
        rows["reference_train_targets"] = measure(
            data.targets("train", list(range(len(t)))), t, extractor
        )  # real vs real
        results["test"][direction] = rows
        results["features"] = (
            "autoencoder codes (32-d), one autoencoder per output domain, trained on its 400 training images"
        )
        pick = list(range(0, len(x), len(x) // 6))[:6]
        tiles = []
        for i in pick:
            for img in (x[i], outs["l1_unet"][i], outs["pix2pix"][i], outs["cyclegan"][i], t[i]):
                tiles.append(data.info.to_rgb(img[None])[0])
        fig = RESULTS / f"translation_{direction}.png"
        save_png(grid(np.stack(tiles), ncols=5, scale=2), fig)
        figures[direction] = fig.name
        print(direction, rows, flush=True)
    write_result(
        "translation",
        {
            "protocol": (
                f"CMP Facades at {args.size}x{args.size} (paired:facades --size {args.size}); train on the 400 "
                "training pairs, measure on the 106 test pairs; L1 = mean |output - target| in [0, 1]; PSNR (peak 1) "
                "and SSIM (Gaussian 11x11, sigma 1.5) per image, averaged; Frechet distance between the 106 outputs "
                "and the 106 targets in the feature space named under 'features'; 'reference_train_targets' is 106 "
                "real training targets against the test targets (the floor of that distance). CycleGAN: A = label "
                "maps of the first 200 training pairs, B = photos of the other 200 (no pairs); pix2pix outputs drawn "
                "with dropout noise seeded per batch. Each training: a fixed CPU-second budget, steps calibrated from "
                "two measured rounds; nice -n 10, torch threads 1."
            ),
            "size": args.size,
            "budgets_cpu_s": {
                k: getattr(args, k) for k in ("ae_budget", "l1_budget", "pix2pix_budget", "cyclegan_budget")
            },
            "seed": args.seed,
            "figures": figures,
            "training_cpu_seconds": round(sum(v["cpu_seconds"] for v in results["trainings"].values()), 1),
            "evaluation_cpu_seconds": round(cpu_seconds() - c_start, 1),
            "evaluation_wall_seconds": round(time.perf_counter() - t_start, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            **results,
        },
    )


if __name__ == "__main__":
    main()
