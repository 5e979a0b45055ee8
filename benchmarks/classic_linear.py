"""The linear factor models and sparse coding: test likelihoods, component figures, fit times.

    python benchmarks/classic_linear.py likelihood --data binarized-mnist:../shared/data/binarized_mnist
    python benchmarks/classic_linear.py likelihood --data idx:/usr/share/datasets/fashion-mnist --name fashion
    python benchmarks/classic_linear.py faces --data olivetti:../shared/data/olivetti
    python benchmarks/classic_linear.py patches --data cifar-patches:../shared/data/cifar10_jpeg/cifar10_jpeg.tar.gz

``likelihood``: PPCA, factor analysis and ICA (each model's ``mnist`` preset: 64 components) fitted on the
whole training split, then the test split's ELBO (genzoo's ``log_prob`` for these models; every test
image) and an importance-sampled NLL with ``--k`` draws of the same q on the first ``--is-images`` test
images (a stochastic lower bound on log P whose expectation rises to log P as k grows; reported beside
the ELBO of the same images). The GMM (diagonal, 100 components, ``--gmm-steps`` full-batch EM steps,
exact likelihood) is the reference row. ``faces``: eigenfaces (PCA), FA loadings and ICA components on
Olivetti. ``patches``: sparse coding's dictionary on grey CIFAR-10 patches. Every fit is timed.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, peak_rss_mb, write_result  # noqa: E402
from genzoo.data import load_dataset  # noqa: E402
from genzoo.models.registry import get_model_class, make_config  # noqa: E402
from genzoo.viz import grid, labelled_grid, save_png  # noqa: E402


def build(name: str, info, preset: str | None = None, **over):
    cls = get_model_class(name)
    values = {k: v for k, v in (cls.presets.get(preset, {}) if preset else {}).items()
              if k in cls.Config.__dataclass_fields__}
    values.update(over)
    return cls(make_config(cls.Config, values), info), values


def signed_tiles(images: torch.Tensor) -> np.ndarray:
    """Float images (N, 1, H, W) -> RGB uint8, each scaled so that 0 is mid grey and its largest |value| the edge."""
    a = images[:, 0].double().numpy()
    a = a / np.maximum(np.abs(a).max(axis=(1, 2), keepdims=True), 1e-12)
    grey = np.clip(np.rint((a * 0.5 + 0.5) * 255), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, -1)


def fit(model, x) -> float:
    t = time.perf_counter()
    model.update({"x": x})
    return time.perf_counter() - t


def likelihood(args) -> dict:
    data = load_dataset(args.data)
    d = data.info.dims
    train, test = data.images("train"), data.images("test")
    is_x = test[:args.is_images]
    rows = []
    for name in ("ppca", "factor_analysis", "ica"):
        torch.manual_seed(args.seed)
        model, cfg = build(name, data.info, "mnist", quadrature=args.quadrature)
        seconds = fit(model, train)
        if name == "factor_analysis":  # the preset's 5 updates of 20 EM steps
            seconds += sum(fit(model, train) for _ in range(4))
        t = time.perf_counter()
        elbo = torch.cat([model.log_prob(test[i:i + 500]) for i in range(0, len(test), 500)])
        elbo_s = time.perf_counter() - t
        g = torch.Generator().manual_seed(args.seed)
        t = time.perf_counter()
        lw = torch.cat([model.log_weights(is_x[i:i + 50], args.k, generator=g) for i in range(0, len(is_x), 50)], 1)
        is_s = time.perf_counter() - t
        is_nll = -(torch.logsumexp(lw, 0) - math.log(args.k))  # (n,)
        row = {"model": name, "config": cfg, "fit_seconds": round(seconds, 2), "likelihood": model.likelihood,
               "test_negative_elbo_nats": -elbo.mean().item(),
               "test_negative_elbo_bpd": -elbo.mean().item() / (d * math.log(2)),
               "elbo_seconds": round(elbo_s, 1),
               "is": {"images": len(is_x), "k": args.k, "nll_nats": is_nll.mean().item(),
                      "nll_bpd": is_nll.mean().item() / (d * math.log(2)),
                      "negative_elbo_same_images_nats": -elbo[:len(is_x)].mean().item(),
                      "seconds": round(is_s, 1)}}
        if name == "ica":
            row["source_priors"] = {k: int((model.source_kind == i).sum()) for i, k in
                                    enumerate(("gaussian", "logistic", "laplace"))}
        rows.append(row)
        print(row, flush=True)
        write_result(f"classic_linear_{args.name}", {"data": args.data, "rows": rows, "partial": True,
                                                      "command": "python " + " ".join(sys.argv)})
        samples = model.sample(32, generator=torch.Generator().manual_seed(args.seed))
        save_png(grid(data.info.to_rgb(samples), ncols=8), RESULTS / f"classic_linear_{args.name}_{name}_samples.png")
    if args.gmm_steps:
        torch.manual_seed(args.seed)
        gmm, cfg = build("gmm", data.info, "mnist" if data.info.num_values == 2 else "fashion")
        t = time.perf_counter()
        for _ in range(args.gmm_steps):
            gmm.update({"x": train})
        seconds = time.perf_counter() - t
        ll = torch.cat([gmm.log_prob(test[i:i + 1000]) for i in range(0, len(test), 1000)])
        rows.append({"model": "gmm", "config": cfg, "em_steps": args.gmm_steps, "fit_seconds": round(seconds, 1),
                     "likelihood": gmm.likelihood, "test_nll_nats": -ll.mean().item(),
                     "test_nll_bpd": -ll.mean().item() / (d * math.log(2))})
        print(rows[-1], flush=True)
    return {"data": args.data, "train_images": len(train), "test_images": len(test), "dims": d, "rows": rows,
            "protocol": {"elbo": f"every test image, Gauss-Hermite with {args.quadrature} nodes",
                         "is": f"first {len(is_x)} test images, k={args.k} draws of q (the ELBO's Gaussian)"}}


def faces(args) -> dict:
    data = load_dataset(args.data)
    train = data.images("train")
    out = {"data": args.data, "train_images": len(train), "rows": []}
    figures = {}
    for name in ("pca", "factor_analysis", "ica"):
        torch.manual_seed(args.seed)
        model, cfg = build(name, data.info, "faces")
        seconds = fit(model, train)
        if name == "factor_analysis":
            seconds += sum(fit(model, train) for _ in range(4))
        comps = model.weight.T.reshape(-1, *data.info.shape)[:args.components]  # (n, 1, H, W)
        path = RESULTS / f"classic_linear_faces_{name}.png"
        what = {"pca": "eigenfaces (principal axes, largest variance first)",
                "factor_analysis": "factor loadings (columns of W after EM from the PPCA start)",
                "ica": "ICA components (columns of A, most kurtotic first)"}[name]
        save_png(labelled_grid(signed_tiles(comps), ncols=8, caption=f"{name}: {what}"), path)
        figures[name] = path.name
        row = {"model": name, "config": cfg, "fit_seconds": round(seconds, 2), "figure": path.name}
        test = data.images("test")
        if name == "pca":
            row["explained_variance"] = model.update({"x": train}).metrics["explained_variance"]
            rec = model.decode(model.encode(test[:8]))
            save_png(grid(np.concatenate([data.info.to_rgb(test[:8]), data.info.to_rgb(rec)]), ncols=8),
                     RESULTS / "classic_linear_faces_pca_reconstructions.png")
        else:
            row["test_negative_elbo_bpd"] = -model.log_prob(test).mean().item() / (data.info.dims * math.log(2))
        out["rows"].append(row)
        print(row, flush=True)
    mean = model.mean.view(1, *data.info.shape).float()
    save_png(grid(data.info.to_rgb((mean * 255).round().long()), ncols=1), RESULTS / "classic_linear_faces_mean.png")
    return out


def patches(args) -> dict:
    data = load_dataset(args.data)
    torch.manual_seed(args.seed)
    over = {"iterations": args.fista_iterations} if args.fista_iterations else {}
    model, cfg = build("sparse_coding", data.info, "patches", **over)
    g = torch.Generator().manual_seed(args.seed)
    n, curve = data.size("train"), []
    t = time.perf_counter()
    for step in range(args.steps):
        out = model.update(data.batch("train", torch.randint(0, n, (args.batch,), generator=g)))
        if step % 10 == 0 or step == args.steps - 1:
            curve.append({"step": step + 1, **{k: round(v, 5) for k, v in out.metrics.items()}})
            print(curve[-1], flush=True)
    seconds = time.perf_counter() - t
    for space in ("whitened", "pixel"):
        atoms = model.atoms(space)
        caption = f"sparse coding: {len(atoms)} atoms, {space} space"
        save_png(labelled_grid(signed_tiles(atoms), ncols=16, caption=caption),
                 RESULTS / f"classic_linear_patches_dictionary_{space}.png")
    test = data.images("test")[:2000]
    a = model.encode(test)
    y = model.whitened(test)
    resid = (y - a.double() @ model.dictionary.T).square().sum(1) / y.square().sum(1)
    return {"data": args.data, "config": cfg, "steps": args.steps, "batch": args.batch,
            "fit_seconds": round(seconds, 1),
            "updates_per_second": round(args.steps / seconds, 3), "curve": curve,
            "test": {"images": len(test), "active_fraction": (a != 0).float().mean().item(),
                     "relative_residual": resid.mean().item()},
            "figures": ["classic_linear_patches_dictionary_whitened.png",
                        "classic_linear_patches_dictionary_pixel.png"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=("likelihood", "faces", "patches"))
    p.add_argument("--data", required=True)
    p.add_argument("--name", default="mnist", help="result name for the likelihood part")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quadrature", type=int, default=8, help="Gauss-Hermite nodes of the ELBO")
    p.add_argument("--k", type=int, default=100, help="importance samples per image")
    p.add_argument("--is-images", type=int, default=500)
    p.add_argument("--gmm-steps", type=int, default=0, help="full-batch EM steps of the reference GMM (0: none)")
    p.add_argument("--components", type=int, default=32, help="components shown in the face figures")
    p.add_argument("--steps", type=int, default=200, help="sparse coding updates")
    p.add_argument("--batch", type=int, default=1000, help="sparse coding patches per update")
    p.add_argument("--fista-iterations", type=int, default=0, help="sparse coding: FISTA steps (0: the preset's)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    result = {"likelihood": likelihood, "faces": faces, "patches": patches}[args.part](args)
    name = f"classic_linear_{args.name if args.part == 'likelihood' else args.part}"
    result.update({"command": "python " + " ".join(sys.argv), "seed": args.seed, "threads": args.threads,
                   "wall_seconds": round(time.perf_counter() - t, 1), "peak_rss_mb": round(peak_rss_mb())})
    print(write_result(name, result))


if __name__ == "__main__":
    main()
