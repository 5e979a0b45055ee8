"""The 2-D mixtures of the mode-collapse literature, as continuous data sets.

* ``mixture:ring8``  -- 8 Gaussians evenly spaced on a circle of radius 2, sigma = 0.02
  (Metz et al. 2016, arXiv:1611.02163, Sec. 3.1);
* ``mixture:grid25`` -- 25 Gaussians centred on {-4, -2, 0, 2, 4}^2, sigma = 0.05
  (Srivastava et al. 2017, VEEGAN, arXiv:1705.07761, Sec. 5.1).

Points are stored as (N, 2, 1, 1) float32 (``info.num_values == 0``: continuous), drawn
once from a fixed seed so every run sees the same 50,000 points; the split is the usual
every-tenth one. :func:`mode_report` scores generated points the way VEEGAN's Table 1 does.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from genzoo.data.base import ImageDataset, ImageInfo, every_tenth_split, reject_options
from genzoo.data.kinds import register_dataset
from genzoo.errors import choices_error

N_POINTS = 50_000
SEED = 1234


def ring8() -> tuple[np.ndarray, float]:
    angles = 2 * math.pi * np.arange(8) / 8
    return np.stack([2 * np.cos(angles), 2 * np.sin(angles)], 1), 0.02


def grid25() -> tuple[np.ndarray, float]:
    v = np.arange(-4, 5, 2, dtype=np.float64)
    return np.stack(np.meshgrid(v, v, indexing="ij"), -1).reshape(-1, 2), 0.05


MIXTURES = {"ring8": ring8, "grid25": grid25}


def mixture(name: str) -> tuple[np.ndarray, float]:
    """(centres (M, 2), sigma) of a named mixture."""
    if name not in MIXTURES:
        raise choices_error("mixture", name, MIXTURES)
    return MIXTURES[name]()


def draw_mixture(name: str, n: int, seed: int) -> np.ndarray:
    """``n`` points (n, 2) from the equal-weight mixture."""
    centres, sigma = mixture(name)
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(centres), n)
    return centres[which] + sigma * rng.standard_normal((n, 2))


@register_dataset("mixture", "mixture:ring8|grid25", "2-D Gaussian mixtures for mode-collapse tests (continuous)")
def load_mixture(spec: str, path: str, **options) -> ImageDataset:
    reject_options(spec, {k: v for k, v in options.items() if k != "palette"}, "the points are drawn, not images")
    pts = draw_mixture(path, N_POINTS, SEED)
    x = torch.from_numpy(pts).float().view(-1, 2, 1, 1)  # (N, 2, 1, 1)
    info = ImageInfo(channels=2, height=1, width=1, num_values=0)
    centres, sigma = mixture(path)
    return ImageDataset(
        spec=spec,
        x=x,
        info=info,
        splits=every_tenth_split(N_POINTS),
        meta={"centres": centres.tolist(), "sigma": sigma},
    )


def mode_report(points: np.ndarray, name: str, min_count: int = 20, k_sigma: float = 3.0) -> dict:
    """VEEGAN's protocol: a point is high quality within ``k_sigma`` sigma of a centre; a mode is
    covered when at least ``min_count`` high-quality points fall on it. Also the KL divergence of
    the histogram of high-quality points over modes from uniform (0 when perfectly balanced)."""
    centres, sigma = mixture(name)
    pts = np.asarray(points, dtype=np.float64).reshape(len(points), 2)
    d = np.sqrt(((pts[:, None, :] - centres[None]) ** 2).sum(-1))  # (N, M)
    nearest, dist = d.argmin(1), d.min(1)
    good = dist <= k_sigma * sigma
    counts = np.bincount(nearest[good], minlength=len(centres))
    m = len(centres)
    if good.any():
        p = counts / counts.sum()
        nz = p > 0
        kl = float((p[nz] * np.log(p[nz] * m)).sum())
    else:
        kl = float("nan")
    return {
        "modes": int((counts >= min_count).sum()),
        "n_modes": m,
        "high_quality": float(good.mean()),
        "kl_from_uniform": kl,
        "counts": counts.tolist(),
        "n_points": len(pts),
    }
