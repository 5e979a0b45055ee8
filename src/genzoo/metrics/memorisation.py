"""Does a model copy its training images? Nearest-neighbour distances in pixel space.

For every generated sample s we find d_train(s), the Euclidean distance (pixels in [0, 1], flattened)
to the nearest TRAINING image, and d_test(s), the distance to the nearest held-out TEST image. Two
read-outs, each with its value under the null hypothesis "the samples are fresh draws from the data
distribution" (the test images are exactly such draws, which is what makes them a calibration):

* **Near copies.** Baseline b = median over test images t of d_train(t): how close a fresh image
  typically lands to the training set. A sample is a near copy when

      d_train(s) < near_copy_ratio * b           (default ratio 1/3),

  i.e. it sits at least three times closer to some training image than a typical unseen image
  does. ``near_copy_share`` is the share of samples flagged; ``test_near_copy_share`` applies the
  same rule to the test images themselves, the false-positive rate to expect from a model that
  does not copy (near duplicates between a data set's train and test splits show up here). The
  ratio is relative, so the rule reads the same for 28x28 grey and 32x32 RGB images. Measured on
  the Pokémon sprites (712 train, 80 test): b is an RMS difference of 0.35 per sub-pixel and even
  the closest test images lie at about 0.75 b, so the 1/3 rule flags none of them, while a training
  image plus small noise is flagged.

* **Closer to train than to test.** For a fresh draw, the nearest image of the union train + test is
  equally likely to be any of its members (exchangeability), so P[d_train < d_test] =
  n_train / (n_train + n_test) exactly. ``train_closer_share`` is the observed share of samples with
  d_train < d_test; ``train_closer_expected`` the null value and ``train_closer_z`` the binomial
  z-score. A model that reproduces training images drives the share to 1. (The z-score treats the
  samples as independent given the train and test sets; the sets' own randomness adds spread of a
  similar size, so read |z| of 2-3 as noise and only a large z as evidence.)

Pixel distance is a crude similarity (a one-pixel shift is "far"), so a low near-copy share does not
prove originality; a high one, with the figure of samples beside their nearest training images
(:func:`nearest_figure`), is strong evidence of memorisation (cf. Carlini et al. 2023, "Extracting
Training Data from Diffusion Models", arXiv:2301.13188, which also judges copies by l2 distance
relative to the neighbourhood).

Cost: O((S + T_b) N_train D + S N_test D) for S samples and T_b baseline test images, in
``chunk x chunk`` blocks (memory O(chunk^2 + chunk D)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageDraw

from genzoo.errors import GenzooError
from genzoo.metrics.distances import DEFAULT_CHUNK, knn
from genzoo.viz import grid, upscale_for

NEAR_COPY_RATIO = 1 / 3


def nearest_neighbours(
    queries, reference, chunk: int = DEFAULT_CHUNK, *, k: int = 1, device="cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean nearest reference row of each query: (distance (Nq,), index (Nq,)) float64 / int64.

    With ``k > 1`` both are (Nq, k), nearest first. Memory O(chunk^2 + chunk D) whatever the sizes.
    """
    d, i = knn(queries, reference, k, chunk=chunk, device=device)  # (Nq, k)
    return (d[:, 0], i[:, 0]) if k == 1 else (d, i)


@dataclass
class MemorisationReport:
    """Summary numbers (see the module docstring) plus per-sample arrays for figures."""

    n_samples: int
    n_train: int
    n_test: int
    n_baseline: int  # test images used for the baseline b
    median_d_train: float  # median over samples of d_train
    median_d_test: float  # median over samples of d_test
    baseline: float  # b: median over test images of their nearest-training distance
    near_copy_ratio: float
    threshold: float  # near_copy_ratio * baseline
    near_copy_share: float
    test_near_copy_share: float  # the same rule on the baseline test images (null value)
    train_closer_share: float
    train_closer_expected: float  # n_train / (n_train + n_test)
    train_closer_z: float
    d_train: np.ndarray = field(repr=False)  # (S,)
    d_test: np.ndarray = field(repr=False)  # (S,)
    nearest_train: np.ndarray = field(repr=False)  # (S,) index into train

    @property
    def rule(self) -> str:
        """The near-copy rule in words, to record next to ``near_copy_share``."""
        return (
            f"near copy: L2 to nearest training image < {self.near_copy_ratio:.3g} x the median "
            f"nearest-training distance of {self.n_baseline} test images (= {self.threshold:.4g})"
        )

    def to_dict(self) -> dict:
        """The scalar fields and ``rule`` (for JSON); the per-sample arrays are left out."""
        out = {k: v for k, v in self.__dict__.items() if not isinstance(v, np.ndarray)}
        out["rule"] = self.rule
        return out


def _flat_unit(x, what: str) -> torch.Tensor:
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim < 2:
        raise GenzooError(f"memorisation: {what} must be (N, D) or (N, C, H, W), got {tuple(t.shape)}")
    t = t.reshape(t.shape[0], -1)
    if not t.is_floating_point():
        raise GenzooError(f"memorisation: {what} must be floats in [0, 1], got {t.dtype}")
    if t.numel() and (t.min() < 0 or t.max() > 1):
        raise GenzooError(
            f"memorisation: {what} values must lie in [0, 1] (got {float(t.min()):.3g}..{float(t.max()):.3g})"
        )
    return t


def memorisation_report(
    samples,
    train,
    test,
    near_copy_ratio: float = NEAR_COPY_RATIO,
    *,
    n_baseline: int | None = 1000,
    seed: int = 0,
    chunk: int = DEFAULT_CHUNK,
    device="cpu",
) -> MemorisationReport:
    """Nearest-train vs nearest-test distances of generated samples; see the module docstring.

    ``samples``, ``train``, ``test``: float images in [0, 1], (N, D) or (N, C, H, W), one shape.
    ``n_baseline`` test images (a seeded random subset; None = all) set the baseline b.
    """
    s, tr, te = _flat_unit(samples, "samples"), _flat_unit(train, "train"), _flat_unit(test, "test")
    if not (s.shape[1] == tr.shape[1] == te.shape[1]):
        raise GenzooError(
            f"memorisation: pixel counts differ (samples {s.shape[1]}, train {tr.shape[1]}, test {te.shape[1]})"
        )
    if min(s.shape[0], tr.shape[0], te.shape[0]) == 0:
        raise GenzooError("memorisation: samples, train and test must all be non-empty")
    if not 0 < near_copy_ratio < 1:
        raise GenzooError(f"memorisation: near_copy_ratio must be in (0, 1), got {near_copy_ratio}")
    if n_baseline is not None and n_baseline < 1:
        raise GenzooError(f"memorisation: n_baseline must be >= 1 or None, got {n_baseline}")

    nb = te.shape[0] if n_baseline is None else min(n_baseline, te.shape[0])
    pick = np.sort(np.random.default_rng(seed).choice(te.shape[0], nb, replace=False))
    test_to_train, _ = nearest_neighbours(te[torch.from_numpy(pick)], tr, chunk, device=device)  # (nb,)
    baseline = float(np.median(test_to_train))
    threshold = near_copy_ratio * baseline

    d_train, idx = nearest_neighbours(s, tr, chunk, device=device)  # (S,), (S,)
    d_test, _ = nearest_neighbours(s, te, chunk, device=device)  # (S,)
    n = s.shape[0]
    p0 = tr.shape[0] / (tr.shape[0] + te.shape[0])
    closer = float((d_train < d_test).mean())
    return MemorisationReport(
        n_samples=n,
        n_train=tr.shape[0],
        n_test=te.shape[0],
        n_baseline=nb,
        median_d_train=float(np.median(d_train)),
        median_d_test=float(np.median(d_test)),
        baseline=baseline,
        near_copy_ratio=float(near_copy_ratio),
        threshold=threshold,
        near_copy_share=float((d_train < threshold).mean()),
        test_near_copy_share=float((test_to_train < threshold).mean()),
        train_closer_share=closer,
        train_closer_expected=p0,
        train_closer_z=(closer - p0) / math.sqrt(p0 * (1 - p0) / n),
        d_train=d_train,
        d_test=d_test,
        nearest_train=idx,
    )


def nearest_figure(
    samples_rgb: np.ndarray, train_rgb: np.ndarray, idx: np.ndarray, distances: np.ndarray | None = None
) -> Image.Image:
    """Rows of [sample | its nearest training image(s)]: "samples beside their nearest training images".

    ``samples_rgb`` (N, H, W, 3) uint8; ``train_rgb`` (M, H, W, 3) uint8 (the whole training set or
    any array that ``idx`` indexes); ``idx`` (N,) or (N, k) indices into ``train_rgb``; optional
    ``distances`` (N,) printed beside each row.
    """

    idx = np.asarray(idx).reshape(len(samples_rgb), -1)  # (N, k)
    if samples_rgb.ndim != 4 or samples_rgb.shape[-1] != 3 or train_rgb.shape[1:] != samples_rgb.shape[1:]:
        raise GenzooError(
            f"nearest_figure: need (N, H, W, 3) images of one size, got {samples_rgb.shape} and {train_rgb.shape}"
        )
    if idx.size and (idx.min() < 0 or idx.max() >= len(train_rgb)):
        raise GenzooError(f"nearest_figure: index out of range for {len(train_rgb)} training images")
    n, k = idx.shape
    tiles = np.concatenate([samples_rgb[:, None], train_rgb[idx]], axis=1)  # (N, k+1, H, W, 3)
    pad = 3
    body = grid(tiles.reshape(-1, *tiles.shape[2:]), ncols=k + 1, pad=pad)
    h = samples_rgb.shape[1]
    tile = h * upscale_for(h) + pad
    header, right = 16, (60 if distances is not None else 0)
    fig = Image.new("RGB", (body.width + right, body.height + header), (255, 255, 255))
    fig.paste(body, (0, header))
    draw = ImageDraw.Draw(fig)
    labels = ["sample"] + (["nearest train"] if k == 1 else [f"train #{j + 1}" for j in range(k)])
    for j, lab in enumerate(labels):
        draw.text((pad + j * tile, 2), lab[: max(4, tile // 6)], fill=(0, 0, 0))
    if distances is not None:
        for i, dist in enumerate(np.asarray(distances).reshape(-1)[:n]):
            draw.text((body.width + 2, header + pad + i * tile + tile // 2 - 6), f"d={dist:.2f}", fill=(0, 0, 0))
    return fig
