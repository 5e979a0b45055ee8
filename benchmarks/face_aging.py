"""Face aging on UTKFace with the age-conditional GAN: a genzoo age-group classifier (its accuracy on real
held-out faces stated) judges whether aged faces land in their target group, and a distance test asks
whether each aged face stays closer to its source than to a different person of the target group. Every
training gets a fixed budget of process CPU seconds (calibrated steps).

    nice -n 10 python benchmarks/face_aging.py --size 32

Writes benchmarks/results/face_aging.json and face_aging.png (rows: a held-out face, then that face
decoded under each age group 0-18 ... 60+).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

from _common import RESULTS, cpu_seconds, peak_rss_mb, write_result  # noqa: E402
from genzoo.data import load_dataset  # noqa: E402
from genzoo.data.continuous import to_unit  # noqa: E402
from genzoo.data.faces import AGE_GROUPS  # noqa: E402
from genzoo.viz import grid, save_png  # noqa: E402
from translation import train, trained  # noqa: E402  (the calibrated CPU-budget training shared by the benchmarks)

UTKFACE = Path(__file__).resolve().parents[2] / "shared" / "data" / "utkface" / "utkface64.tar"


@torch.no_grad()
def predict(clf, x: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels (N,), penultimate features (N, hidden)) of the classifier."""
    labels, feats = [], []
    for i in range(0, len(x), batch):
        u = to_unit(x[i : i + batch], clf.info)
        f = clf.features(u)
        feats.append(f)
        labels.append(clf.logits_from_features(f).argmax(1))
    return torch.cat(labels), torch.cat(feats)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--classifier-budget", type=float, default=60.0)
    ap.add_argument("--gan-budget", type=float, default=200.0)
    ap.add_argument("--faces", type=int, default=120, help="held-out faces aged")
    ap.add_argument("--ip-steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=str(UTKFACE), help="the UTKFace .tar or folder")
    ap.add_argument(
        "--stage",
        choices=("all", "train", "eval"),
        default="all",
        help="train: only the training named by --only (parallel processes); eval: measure --runs",
    )
    ap.add_argument("--only", choices=("classifier", "age_cgan"), help="with --stage train")
    ap.add_argument("--runs", help="folder of the runs (default: a new temporary folder)")
    args = ap.parse_args()
    c_start, t_start = cpu_seconds(), time.perf_counter()
    tmp = Path(args.runs) if args.runs else Path(tempfile.mkdtemp(prefix="genzoo_aging_"))
    c0 = cpu_seconds()
    data = load_dataset(f"utkface:{args.data}", size=args.size)
    load_cpu = cpu_seconds() - c0
    print(f"loaded {len(data.x)} faces in {load_cpu:.0f} CPU-s", flush=True)
    todo = [args.only] if args.stage == "train" else ["classifier", "age_cgan"]
    if args.stage != "eval":
        for item in todo:
            if item == "classifier":
                train(
                    "classifier",
                    None,
                    data,
                    tmp / "classifier",
                    args.classifier_budget,
                    args.seed,
                    {"channels": "32,64,128", "hidden": "128", "batch_size": "64", "lr": "1e-3"},
                )
            else:
                train("age_cgan", "faces", data, tmp / "age_cgan", args.gan_budget, args.seed)
        if args.stage == "train":
            return
    clf, clf_info = trained(tmp / "classifier")
    x_test, y_test = data.images("test"), data.batch("test", list(range(data.size("test"))))["y"]
    pred, _ = predict(clf, x_test)
    clf_acc = float((pred == y_test).float().mean())
    print(f"classifier accuracy on real test faces: {clf_acc:.3f}", flush=True)
    gan, gan_info = trained(tmp / "age_cgan")
    k = len(AGE_GROUPS)
    g = torch.Generator().manual_seed(args.seed)
    pick = torch.randperm(len(x_test), generator=g)[: args.faces]
    faces, source = x_test[pick], y_test[pick]
    target = (source + 1 + torch.randint(k - 1, (len(pick),), generator=g)) % k  # another group, uniformly
    c0, t0 = cpu_seconds(), time.perf_counter()
    z, _ = gan.optimise_codes(faces, source, steps=args.ip_steps)
    with torch.no_grad():
        aged = gan.decode(z, target)
        recon = gan.decode(z, source)
    age_cpu, age_wall = cpu_seconds() - c0, time.perf_counter() - t0
    pred_aged, f_aged = predict(clf, aged)
    pred_recon, _ = predict(clf, recon)
    _, f_faces = predict(clf, faces)
    in_target = float((pred_aged == target).float().mean())
    recon_in_source = float((pred_recon == source).float().mean())
    # identity: d(face, its aged version) against d(face, a different real person of the target group)
    others = []
    for t_grp, i in zip(target.tolist(), pick.tolist()):
        pool = torch.nonzero((y_test == t_grp) & (torch.arange(len(y_test)) != i)).flatten()
        if len(pool) == 0:  # (only in a small subset lacking the group) any other face
            pool = torch.nonzero(torch.arange(len(y_test)) != i).flatten()
        others.append(int(pool[torch.randint(len(pool), (1,), generator=g)]))
    other = x_test[torch.tensor(others)]
    _, f_other = predict(clf, other)
    px = lambda a, b: (to_unit(a, data.info) - to_unit(b, data.info)).flatten(1).norm(dim=1)  # noqa: E731
    closer_px = float((px(faces, aged) < px(faces, other)).float().mean())
    closer_feat = float(((f_faces - f_aged).norm(dim=1) < (f_faces - f_other).norm(dim=1)).float().mean())
    # the figure: 8 faces, each original then decoded under every group
    show = list(range(8))
    tiles = []
    for i in show:
        zi = z[i : i + 1].expand(k, -1)
        with torch.no_grad():
            row = gan.decode(zi, torch.arange(k))
        tiles.append(data.info.to_rgb(faces[i : i + 1])[0])
        tiles.extend(data.info.to_rgb(row))
    fig = RESULTS / "face_aging.png"
    save_png(grid(np.stack(tiles), ncols=k + 1, scale=2), fig)
    write_result(
        "face_aging",
        {
            "protocol": (
                f"UTKFace (utkface:PATH --size {args.size}), age groups {[n for _, n in AGE_GROUPS]}; every tenth face "
                "held out (2,371). Classifier: genzoo classifier (convs 32-64-128, 128 features) on the training "
                f"faces. Aging: {args.faces} random held-out faces, each to a different group drawn uniformly; "
                f"code = encoder, then {args.ip_steps} Adam steps of the pixel-wise latent optimisation under the "
                "face's true group (the paper's PW-Opt; no face-recognition net), decoded under the target group. "
                "Identity: the aged face is closer to its source than a random other held-out person of the target "
                "group, in pixels ([0, 1] L2) and in the classifier's feature space. Fixed CPU-second budgets."
            ),
            "size": args.size,
            "seed": args.seed,
            "budgets_cpu_s": {"classifier": args.classifier_budget, "age_cgan": args.gan_budget},
            "load_cpu_seconds": round(load_cpu, 1),
            "classifier_accuracy_real_test": round(clf_acc, 4),
            "chance_accuracy_majority": round(float(torch.bincount(y_test, minlength=k).max() / len(y_test)), 4),
            "aged_in_target_group": round(in_target, 4),
            "reconstruction_in_source_group": round(recon_in_source, 4),
            "aged_closer_to_source_pixels": round(closer_px, 4),
            "aged_closer_to_source_classifier_features": round(closer_feat, 4),
            "targets": {"aged_in_target_group": 0.70, "aged_closer_to_source": 0.80},
            "aging_cpu_seconds_per_face": round(age_cpu / args.faces, 4),
            "aging_faces_per_wall_second": round(args.faces / age_wall, 3),
            "trainings": {"classifier": clf_info, "age_cgan": gan_info},
            "figure": fig.name,
            "training_cpu_seconds": round(clf_info["cpu_seconds"] + gan_info["cpu_seconds"], 1),
            "evaluation_cpu_seconds": round(cpu_seconds() - c_start, 1),
            "evaluation_wall_seconds": round(time.perf_counter() - t_start, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        },
    )
    print("done", flush=True)


if __name__ == "__main__":
    main()
