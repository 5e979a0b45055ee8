"""k-means++ seeding (Arthur & Vassilvitskii 2007, "k-means++: The Advantages of Careful Seeding",
SODA, sec. 2.2): the first centre is drawn with probability proportional to its weight, each next one
with probability proportional to weight x D(point)^2, D the distance to the nearest centre drawn so far.

One implementation serves the palette fit (:func:`genzoo.data.palette.kmeans_palette`, weighted
distinct colours) and the Gaussian mixture's first EM step (:mod:`genzoo.models.classic.gmm`, images).
"""

from __future__ import annotations

import numpy as np

_CHUNK_ELEMENTS = 1 << 22  # point coordinates per distance block (32 MiB of float64)


def _sq_dist(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Squared distances (P,) of ``points`` (P, D) to one ``centre`` (D,), exactly, in bounded blocks."""
    step = max(1, _CHUNK_ELEMENTS // max(points.shape[1], 1))
    return np.concatenate([((points[i : i + step] - centre) ** 2).sum(1) for i in range(0, len(points), step)])


def kmeans_pp(points: np.ndarray, k: int, rng: np.random.Generator, weights: np.ndarray | None = None) -> np.ndarray:
    """Indices (k,) into ``points`` (P, D) of k seeds, drawn with ``rng``; ``weights`` (P,) default to 1.

    Once every point coincides with a seed (all distances 0) the remaining seeds repeat the first one.
    """
    points = np.asarray(points, dtype=np.float64)
    weights = np.ones(len(points)) if weights is None else np.asarray(weights, dtype=np.float64)
    picks = np.empty(k, dtype=np.int64)
    picks[0] = rng.choice(len(points), p=weights / weights.sum())
    d2 = _sq_dist(points, points[picks[0]])  # (P,) squared distance to the nearest seed so far
    for j in range(1, k):
        mass = weights * d2
        total = mass.sum()
        if total <= 0:
            picks[j:] = picks[0]
            break
        picks[j] = rng.choice(len(points), p=mass / total)
        np.minimum(d2, _sq_dist(points, points[picks[j]]), out=d2)
    return picks
