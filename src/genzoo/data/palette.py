"""Colour palettes for discrete image models: k-means in RGB and nearest-colour quantisation.

Autoregressive models over palette indices (the lecture's Pokémon set, ``folder:PATH``) need
every image as a grid of indices into one shared palette. :func:`kmeans_palette` fits that
palette (Lloyd's algorithm, k-means++ seeding, Arthur & Vassilvitskii 2007) and
:func:`quantize` maps RGB pixels to the index of the nearest palette colour (squared
Euclidean distance in RGB).

Both work on distinct colours (k-means weights each by how often it occurs), so the distance
work grows with the number of distinct colours, not pixels, and runs in bounded chunks.
"""

from __future__ import annotations

import numpy as np

from genzoo.data.kmeans import kmeans_pp
from genzoo.errors import GenzooError

_CHUNK_ELEMENTS = 1 << 22  # points x centres per distance block (32 MiB of float64)
_LUT_PIXELS = 1 << 20  # from this many pixels on, colours go through a 2^24-entry table; also the chunk size


def kmeans_palette(
    pixels: np.ndarray,
    k: int,
    seed: int = 0,
    iters: int = 25,
    max_points: int = 200_000,
) -> np.ndarray:
    """Fit a palette of at most ``k`` colours to ``pixels`` (M, 3) uint8 -> (k', 3) uint8.

    If the pixels hold at most ``k`` distinct colours, those colours are returned exactly
    (``k' < k`` when there are fewer). Otherwise k-means runs on a random subsample of at most
    ``max_points`` pixels drawn with ``numpy.random.default_rng(seed)``: k-means++ seeding,
    then at most ``iters`` Lloyd iterations (stopping early when no assignment changes).
    Centres are rounded to integers; should two round to the same colour they are merged,
    so ``k'`` may then be slightly below ``k``. The result is sorted lexicographically
    (R, then G, then B) and is the same for the same inputs and seed.
    """
    pixels = _as_rgb(pixels, "pixels").reshape(-1, 3)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise GenzooError(f"kmeans_palette: k must be a positive integer, got {k!r}")
    if len(pixels) == 0:
        raise GenzooError("kmeans_palette: no pixels to fit a palette to")
    distinct = _distinct_codes(pixels)
    if len(distinct) <= k:
        return _decode(distinct)  # already sorted: code order is lexicographic RGB order

    rng = np.random.default_rng(seed)
    if len(pixels) > max_points:
        pixels = pixels[np.sort(rng.choice(len(pixels), size=max_points, replace=False))]
    codes = _encode(pixels)  # (m,)
    colours, counts = np.unique(codes, return_counts=True)
    points = _decode(colours).astype(np.float64)  # (P, 3) distinct colours of the sample
    weights = counts.astype(np.float64)  # (P,)
    if len(points) <= k:  # the sample happened to miss colours: its colours are the answer
        return _decode(colours)

    centres = points[kmeans_pp(points, k, rng, weights)]  # (k, 3)
    assign = None
    for _ in range(iters):
        new_assign, dist = _nearest(points, centres)
        if assign is not None and np.array_equal(new_assign, assign):
            break
        assign = new_assign
        centres = _update_centres(points, weights, assign, dist, centres)
    palette = np.clip(np.rint(centres), 0, 255).astype(np.uint8)
    return np.unique(palette, axis=0)  # lexicographic order, duplicates merged


def quantize(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest palette colour for every pixel: (..., 3) uint8 -> (...).

    The result is ``uint8`` for palettes of up to 256 colours and ``int32`` otherwise (the
    storage width of :func:`genzoo.data.base.storage_dtype`). Ties go to the lower index.
    """
    rgb = _as_rgb(rgb, "rgb")
    palette = _as_rgb(np.asarray(palette), "palette").reshape(-1, 3)
    if len(palette) == 0:
        raise GenzooError("quantize: empty palette")
    out_dtype = np.uint8 if len(palette) <= 256 else np.int32
    flat = rgb.reshape(-1, 3)
    pal = palette.astype(np.float64)
    if len(flat) < _LUT_PIXELS:  # few pixels: quantise each distinct colour once via a sort
        colours, inverse = np.unique(_encode(flat), return_inverse=True)
        nearest, _ = _nearest(_decode(colours).astype(np.float64), pal)
        return nearest.astype(out_dtype)[inverse.reshape(-1)].reshape(rgb.shape[:-1])
    distinct = _distinct_codes(flat)  # many pixels: a lookup table over all 2^24 colours
    lut = np.zeros(1 << 24, dtype=out_dtype)
    lut[distinct] = _nearest(_decode(distinct).astype(np.float64), pal)[0]
    out = np.empty(len(flat), dtype=out_dtype)
    for start in range(0, len(flat), _LUT_PIXELS):
        out[start : start + _LUT_PIXELS] = lut[_encode(flat[start : start + _LUT_PIXELS])]
    return out.reshape(rgb.shape[:-1])


def _as_rgb(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 0 or a.shape[-1] != 3:
        raise GenzooError(f"{name}: expected RGB values with a last axis of 3, got shape {a.shape}")
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.integer) or a.size and (a.min() < 0 or a.max() > 255):
            raise GenzooError(f"{name}: expected integers 0-255 (uint8), got dtype {a.dtype}")
        a = a.astype(np.uint8)
    return a


def _encode(rgb: np.ndarray) -> np.ndarray:
    """(M, 3) uint8 -> (M,) int32 codes ``R<<16 | G<<8 | B``; code order is lexicographic RGB."""
    codes = rgb[:, 0].astype(np.int32)
    codes <<= 8
    codes |= rgb[:, 1]
    codes <<= 8
    codes |= rgb[:, 2]
    return codes


def _decode(codes: np.ndarray) -> np.ndarray:
    """(M,) codes -> (M, 3) uint8."""
    codes = np.asarray(codes, dtype=np.int32)
    return np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], axis=1).astype(np.uint8)


def _distinct_codes(rgb: np.ndarray) -> np.ndarray:
    """Sorted distinct codes of (M, 3) pixels; for many pixels a 16 MiB presence table beats a sort."""
    if len(rgb) < _LUT_PIXELS:
        return np.unique(_encode(rgb))
    present = np.zeros(1 << 24, dtype=bool)
    for start in range(0, len(rgb), _LUT_PIXELS):
        present[_encode(rgb[start : start + _LUT_PIXELS])] = True
    return np.flatnonzero(present).astype(np.int32)


def _nearest(points: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of, and squared distance to, the nearest centre for every point, in chunks.

    ``argmin_k |x - c_k|^2 = argmin_k (|c_k|^2 - 2 x.c_k)``: one matrix product per chunk.
    """
    n = len(points)
    assign = np.empty(n, dtype=np.int64)
    neg2_ct = -2.0 * centres.T  # (3, K)
    c_norm = (centres * centres).sum(1)  # (K,)
    step = max(1, _CHUNK_ELEMENTS // max(len(centres), 1))
    for start in range(0, n, step):
        score = points[start : start + step] @ neg2_ct  # (chunk, K)
        score += c_norm
        assign[start : start + step] = score.argmin(1)
    dist = ((points - centres[assign]) ** 2).sum(1)  # (P,) exact squared distances
    return assign, dist


def _update_centres(
    points: np.ndarray, weights: np.ndarray, assign: np.ndarray, dist: np.ndarray, old: np.ndarray
) -> np.ndarray:
    """Weighted means of the clusters; an empty cluster takes the point farthest from its centre."""
    k = len(old)
    mass = np.bincount(assign, weights=weights, minlength=k)  # (k,)
    sums = np.stack([np.bincount(assign, weights=weights * points[:, c], minlength=k) for c in range(3)], 1)
    centres = old.copy()
    filled = mass > 0
    centres[filled] = sums[filled] / mass[filled, None]
    empty = np.flatnonzero(~filled)
    if len(empty):
        far = np.argsort(-dist, kind="stable")[: len(empty)]
        centres[empty] = points[far]
    return centres
