"""Scores computed from class probabilities p(y | x) of generated and held-out images.

* ``inception_score`` -- exp(E_x KL(p(y | x) || p(y))), p(y) the mean of p(y | x) over the part, computed
  on equal parts of the samples; mean and standard deviation over the parts (Salimans et al. 2016,
  arXiv:1606.03498; genzoo uses the data set's own classifier in place of Inception);
* ``class_histogram_scores`` -- the share of the K classes that are the most probable class of at least
  one sample (mode coverage, as counted on stacked MNIST by Metz et al. 2016) and KL(q || U) of that
  histogram from the uniform distribution.

The constants are the protocol's fixed choices, recorded beside every number computed with them.
"""

from __future__ import annotations

import math

import numpy as np

from genzoo.errors import GenzooError

PR_K = 3  # neighbours for precision / recall (Kynkäänniemi et al.)
DC_K = 5  # neighbours for density / coverage (Naeem et al.)
IS_SPLITS = 10  # parts of the samples for the Inception Score's mean and std (Salimans et al.)
KID_SUBSET = 1000  # rows per KID subset (Binkowski et al.), fewer when a set is smaller
REFERENCE_SEED = 0  # the fixed random subset of the split used when n is smaller than the split
MIN_IMAGES = DC_K + 1  # k-NN radii need k other points in each set


def inception_score(probs, splits: int = IS_SPLITS) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) on each of ``splits`` equal consecutive parts: (mean, std over parts).

    ``probs`` (N, K) rows of class probabilities. Parts are np.array_split's (sizes differ by at most
    one); the std has ddof 0, as in Salimans et al.'s code. Between 1 (every image gets the same
    distribution) and K (confident and evenly spread over the classes).
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) < splits or splits < 1:
        raise GenzooError(f"inception score: need (N, K) probabilities with N >= {splits} parts, got {p.shape}")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(0, keepdims=True)  # (1, K)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)  # (n, K)
        scores.append(math.exp(terms.sum(1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def class_histogram_scores(probs) -> dict:
    """Most-probable classes of (N, K) probabilities: share of classes seen, KL(histogram || uniform)."""
    p = np.asarray(probs)
    k = p.shape[1]
    counts = np.bincount(p.argmax(1), minlength=k)  # (K,)
    q = counts / counts.sum()
    nz = q > 0
    return {
        "classes_generated": float(nz.sum() / k),
        "n_classes_generated": int(nz.sum()),
        "n_classes": k,
        "class_kl_from_uniform": float((q[nz] * np.log(q[nz] * k)).sum()),
        "counts": counts.tolist(),
    }
