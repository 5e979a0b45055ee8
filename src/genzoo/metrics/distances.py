"""Distances between two sets of features: Fréchet, kernel (KID), precision/recall, density/coverage.

Every function takes feature arrays ``(N, D)`` -- numpy or torch, any float dtype -- and never holds
more than a block of pairwise distances at once beyond the inputs themselves, so 50,000 features of
dimension 2048 are fine; Gaussian statistics need not even keep the features.

* Fréchet distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a
  Local Nash Equilibrium", arXiv:1706.08500): the 2-Wasserstein distance between the
  Gaussians fitted to the two sets,

      d^2 = ||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^{1/2}).

  C1 C2 is not symmetric, but it is similar to the symmetric PSD matrix M = S C2 S with S = C1^{1/2}
  (C1 C2 = S (S C2 S) S^{-1} when C1 is invertible; by continuity the eigenvalues agree for singular
  C1 too), so Tr (C1 C2)^{1/2} = sum_i sqrt(lambda_i(M)). Both square roots come from symmetric
  eigendecompositions whose eigenvalues below the solver's rounding level (D eps max|lambda|, negative
  ones included) are set to zero; no scipy.sqrtm, no complex parts to discard, and singular
  covariances (fewer samples than dimensions) need no added epsilon.
  :class:`GaussianStats` accumulates mean and covariance over batches in float64.

* Kernel distance / KID (Binkowski, Sutherland, Arbel & Gretton 2018, "Demystifying MMD GANs",
  arXiv:1801.01401): the unbiased estimator of MMD^2 with the cubic polynomial kernel
  k(x, y) = (x.y / d + 1)^3 on m-sample subsets,

      MMD_u^2 = sum_{i!=j} [k(x_i,x_j) + k(y_i,y_j)] / (m(m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2,

  averaged over random subsets (without replacement inside a subset). Unbiased, so it can be negative
  and is zero in expectation when both sets come from one distribution.

* Precision / recall (Kynkäänniemi, Karras, Laine, Lehtinen & Aila 2019, "Improved Precision and
  Recall Metric for Assessing Generative Models", arXiv:1904.06991): each set's manifold is
  the union of closed balls around its points with radius the distance to the k-th nearest other
  point of the same set; precision = share of fake points inside the real manifold, recall = share of
  real points inside the fake manifold.

* Density / coverage (Naeem, Oh, Uh, Choi & Yoo 2020, "Reliable Fidelity and Diversity Metrics for
  Generative Models", arXiv:2002.09797): with B(x_i) the ball of radius NND_k(x_i) around
  real point i,

      density  = 1/(k M) sum_j sum_i 1[y_j in B(x_i)]      (can exceed 1)
      coverage = 1/N sum_i 1[exists j: y_j in B(x_i)].

  Balls are closed (distance <= radius) here as in the precision/recall definition.

Cost: with N real and M fake points of dimension D, the k-NN radii cost O(N^2 D) (and O(M^2 D) for
the fake radii), the cross tests O(N M D); memory beyond the inputs is O(chunk^2 + chunk D) for any
N, M (distances come from ``torch.cdist`` on ``chunk x chunk`` blocks in float64, on ``device``).
Rough CPU speed: a 4,000 x 4,000 k-NN search in 2048-d takes ~3 s on one core, so precision/recall
on 50,000 + 50,000 features is ~30 core-minutes (seconds on a GPU with ``device="cuda"``).
"""

from __future__ import annotations

import numpy as np
import torch

from genzoo.errors import GenzooError

DEFAULT_CHUNK = 2048


def _np64(x) -> np.ndarray:
    """Any array-like -> float64 numpy (a torch tensor is detached and moved to the CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _rows(x, what: str) -> torch.Tensor:
    """Validated (N, D) features as a CPU tensor, keeping float32/float64 (no full float64 copy)."""
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if not t.is_floating_point():
        t = t.double()
    if t.ndim != 2:
        raise GenzooError(f"{what}: features must be (N, D), got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise GenzooError(f"{what}: no features")
    if not torch.isfinite(t).all():
        raise GenzooError(f"{what}: features hold NaN or infinity")
    return t


def _same_dim(a, b, what: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise GenzooError(
            f"{what}: feature dimensions differ ({a.shape[1]} vs {b.shape[1]}); "
            "were both sets embedded by the same extractor?"
        )


# --------------------------------------------------------------------------------------------------
# Gaussian statistics and the Fréchet distance


class GaussianStats:
    """Mean and covariance of features seen in batches, in float64, without keeping the features.

    Sums are taken around a fixed ``shift`` (the first batch's mean) so that ``sum (x-s)(x-s)^T``
    does not cancel catastrophically when the mean is large compared with the spread:

        mean = s + S1 / n,     cov = (S2 - S1 S1^T / n) / (n - 1)     (unbiased, like ``np.cov``)

    with S1 = sum (x - s), S2 = sum (x - s)(x - s)^T. Memory is O(D^2) whatever the number of rows.
    """

    def __init__(self, dim: int | None = None):
        self.dim = dim
        self.count = 0
        self.shift: np.ndarray | None = None  # (D,)
        self.sum: np.ndarray | None = None  # (D,)    S1
        self.outer: np.ndarray | None = None  # (D, D) S2

    def update(self, feats) -> GaussianStats:
        """Add a batch of features ``(B, D)``; returns ``self``."""
        x = _rows(feats, "GaussianStats.update").double().numpy()  # (B, D)
        if self.dim is None:
            self.dim = x.shape[1]
        if x.shape[1] != self.dim:
            raise GenzooError(f"GaussianStats.update: expected dimension {self.dim}, got {x.shape[1]}")
        if self.shift is None:
            self.shift = x.mean(axis=0)
            self.sum = np.zeros(self.dim)
            self.outer = np.zeros((self.dim, self.dim))
        xc = x - self.shift  # (B, D)
        self.count += x.shape[0]
        self.sum += xc.sum(axis=0)
        self.outer += xc.T @ xc  # (D, D)
        return self

    @classmethod
    def of(cls, feats) -> GaussianStats:
        """Statistics of one array of features."""
        return cls().update(feats)

    def merge(self, other: GaussianStats) -> GaussianStats:
        """Statistics of the union of both sets (e.g. per-worker stats); returns a new object."""
        if other.count == 0:
            return self._copy()
        if self.count == 0:
            return other._copy()
        if self.dim != other.dim:
            raise GenzooError(f"GaussianStats.merge: dimensions differ ({self.dim} vs {other.dim})")
        shift, s1, s2 = self._sums()
        other_shift, other_s1, other_s2 = other._sums()
        out = self._copy()
        delta = other_shift - shift  # (D,) re-centre other's sums on self.shift
        out.count += other.count
        out.sum = s1 + other_s1 + other.count * delta
        out.outer = (
            s2 + other_s2 + np.outer(other_s1, delta) + np.outer(delta, other_s1) + other.count * np.outer(delta, delta)
        )
        return out

    def _sums(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(shift, S1, S2); the first :meth:`update` sets all three."""
        if self.shift is None or self.sum is None or self.outer is None:
            raise GenzooError("GaussianStats: no features were added")
        return self.shift, self.sum, self.outer

    def _copy(self) -> GaussianStats:
        out = GaussianStats(self.dim)
        out.count = self.count
        if self.shift is not None:
            shift, s1, s2 = self._sums()
            out.shift, out.sum, out.outer = shift.copy(), s1.copy(), s2.copy()
        return out

    @property
    def mean(self) -> np.ndarray:
        if self.count == 0:
            raise GenzooError("GaussianStats: no features were added")
        shift, s1, _ = self._sums()
        return shift + s1 / self.count

    @property
    def cov(self) -> np.ndarray:
        if self.count < 2:
            raise GenzooError(f"GaussianStats: a covariance needs at least 2 features, got {self.count}")
        _, s1, s2 = self._sums()
        c = (s2 - np.outer(s1, s1) / self.count) / (self.count - 1)
        return (c + c.T) / 2

    def state(self) -> dict[str, np.ndarray]:
        """Plain arrays (for ``np.savez``); :meth:`from_state` rebuilds the object exactly."""
        if self.count == 0:
            raise GenzooError("GaussianStats: no features were added")
        shift, s1, s2 = self._sums()
        return {"count": np.asarray(self.count, dtype=np.int64), "shift": shift, "sum": s1, "outer": s2}

    @classmethod
    def from_state(cls, state) -> GaussianStats:
        shift = np.asarray(state["shift"], dtype=np.float64)
        out = cls(shift.shape[0])
        out.count = int(state["count"])
        out.shift = shift
        out.sum = np.asarray(state["sum"], dtype=np.float64)
        out.outer = np.asarray(state["outer"], dtype=np.float64)
        d = out.dim
        if out.sum.shape != (d,) or out.outer.shape != (d, d) or out.count < 1:
            raise GenzooError("GaussianStats.from_state: inconsistent shapes or count")
        return out


def _clip_noise(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a symmetric PSD matrix with rounding noise set to 0.

    A symmetric eigensolver returns eigenvalues with absolute error about D * eps * max|w|; any
    value below that (negative ones included) cannot be told from 0. Zeroing them matters for
    singular covariances (fewer samples than dimensions): sqrt() would turn each 1e-16-sized
    ghost into a 1e-8-sized contribution to the trace, D of them.
    """
    tol = w.shape[0] * np.finfo(np.float64).eps * max(float(np.abs(w).max(initial=0.0)), 1e-300)
    return np.where(w > tol, w, 0.0)


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix."""
    w, v = np.linalg.eigh((c + c.T) / 2)  # (D,), (D, D)
    return (v * np.sqrt(_clip_noise(w))) @ v.T


def trace_sqrt_product(cov1, cov2) -> float:
    """Tr (C1 C2)^{1/2} = sum_i sqrt(lambda_i(S C2 S)), S = C1^{1/2}; both symmetric PSD."""
    s = _psd_sqrt(_np64(cov1))  # (D, D)
    m = s @ _np64(cov2) @ s  # (D, D), symmetric PSD up to rounding
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(_clip_noise(lam)).sum())


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^{1/2}) for two Gaussians; >= 0.

    Covariances must be symmetric PSD (singular is fine). The exact value is >= 0; a result within
    rounding of zero (below 1e-12 times the traces) is returned as 0.
    """
    mu1, mu2, c1, c2 = _np64(mu1), _np64(mu2), _np64(cov1), _np64(cov2)
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or c1.shape != (d, d) or c2.shape != (d, d):
        raise GenzooError(
            f"frechet_distance: shapes do not agree: mu {mu1.shape} / {mu2.shape}, cov {c1.shape} / {c2.shape}"
        )
    diff = mu1 - mu2
    tr1, tr2 = float(np.trace(c1)), float(np.trace(c2))
    value = float(diff @ diff) + tr1 + tr2 - 2.0 * trace_sqrt_product(c1, c2)
    if value < 0 and -value <= 1e-12 * max(tr1 + tr2, 1.0) * d:
        return 0.0
    return value


def frechet_distance_stats(a: GaussianStats, b: GaussianStats) -> float:
    """:func:`frechet_distance` of two accumulated feature sets (FID when the features are Inception's)."""
    if a.dim != b.dim:
        raise GenzooError(f"frechet_distance: feature dimensions differ ({a.dim} vs {b.dim})")
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)


# --------------------------------------------------------------------------------------------------
# Kernel distance (KID)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3 for all pairs: (n, d), (m, d) -> (n, m)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel between equal-size samples (m, d), (m, d)."""
    m = x.shape[0]
    if m < 2 or y.shape[0] != m:
        raise GenzooError(f"mmd2_unbiased: need two samples of one size >= 2, got {m} and {y.shape[0]}")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)  # (m, m)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def kernel_distance(f1, f2, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: (mean, std) of :func:`mmd2_unbiased` over ``n_subsets`` random subset pairs.

    Each subset draws ``m = min(subset_size, N1, N2)`` rows of each set without replacement
    (subsets overlap one another). ``std`` is the spread of the per-subset estimates (ddof=1), as
    reported by Binkowski et al.; it is not the standard error of the mean. Cost:
    O(n_subsets m^2 D) time, O(m^2 + m D) memory.
    """
    x, y = _rows(f1, "kernel_distance"), _rows(f2, "kernel_distance")
    _same_dim(x, y, "kernel_distance")
    if n_subsets < 1:
        raise GenzooError(f"kernel_distance: n_subsets must be >= 1, got {n_subsets}")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise GenzooError(f"kernel_distance: subsets need >= 2 rows, got {m}")
    rng = np.random.default_rng(seed)
    values = np.empty(n_subsets)
    for s in range(n_subsets):
        ix = torch.from_numpy(rng.choice(x.shape[0], m, replace=False))
        iy = torch.from_numpy(rng.choice(y.shape[0], m, replace=False))
        values[s] = mmd2_unbiased(x[ix].double().numpy(), y[iy].double().numpy())
    std = float(values.std(ddof=1)) if n_subsets > 1 else 0.0
    return float(values.mean()), std


# --------------------------------------------------------------------------------------------------
# Nearest neighbours in blocks, and the manifold metrics


def knn(
    queries, reference, k: int = 1, *, chunk: int = DEFAULT_CHUNK, device="cpu", dtype=torch.float64
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest reference rows (Euclidean) of every query: distances and indices, (Nq, k) each.

    Sorted nearest first (among equal distances the order is torch.topk's). Streams over
    ``chunk x chunk`` blocks, each moved to ``device`` in ``dtype``, keeping a running top-k, so
    memory is O(chunk (chunk + k + D)) beyond the inputs; time O(Nq Nr D). Distances come from
    ``torch.cdist`` (matrix-product form), exact up to rounding of order eps * ||x||^2.
    """
    q, r = _rows(queries, "knn queries"), _rows(reference, "knn reference")  # (Nq, D), (Nr, D)
    _same_dim(q, r, "knn")
    if not 1 <= k <= r.shape[0]:
        raise GenzooError(f"knn: k must be in 1..{r.shape[0]} (reference size), got {k}")
    if chunk < 1:
        raise GenzooError(f"knn: chunk must be >= 1, got {chunk}")
    out_d = torch.empty(q.shape[0], k, dtype=torch.float64)
    out_i = torch.empty(q.shape[0], k, dtype=torch.long)
    for qs in range(0, q.shape[0], chunk):
        qb = q[qs : qs + chunk].to(device, dtype)  # (b, D)
        best_d = torch.empty((qb.shape[0], 0), dtype=dtype, device=device)  # (b, <=k)
        best_i = torch.empty((qb.shape[0], 0), dtype=torch.long, device=device)
        for rs in range(0, r.shape[0], chunk):
            d = torch.cdist(qb, r[rs : rs + chunk].to(device, dtype))  # (b, c)
            idx = torch.arange(rs, rs + d.shape[1], device=device).expand(d.shape[0], -1)  # (b, c)
            cand_d, cand_i = torch.cat([best_d, d], 1), torch.cat([best_i, idx], 1)  # (b, kk + c)
            best_d, pos = torch.topk(cand_d, min(k, cand_d.shape[1]), dim=1, largest=False)  # (b, kk)
            best_i = torch.gather(cand_i, 1, pos)
        out_d[qs : qs + chunk], out_i[qs : qs + chunk] = best_d.cpu().double(), best_i.cpu()
    return out_d.numpy(), out_i.numpy()


def knn_radii(points, k: int, *, chunk: int = DEFAULT_CHUNK, device="cpu") -> np.ndarray:
    """Distance from each point to its k-th nearest OTHER point of the same set, (N,).

    The point itself is the 0-th neighbour (distance 0), so this is column k of the k+1 nearest;
    an exact duplicate counts as a neighbour at distance 0.
    """
    n = points.shape[0]
    if not 1 <= k < n:
        raise GenzooError(f"k-NN radius: k must be in 1..{n - 1} for {n} points, got {k}")
    d, _ = knn(points, points, k + 1, chunk=chunk, device=device)  # (N, k+1)
    return d[:, k]


def ball_counts(
    queries, centres, radii, *, chunk: int = DEFAULT_CHUNK, device="cpu", dtype=torch.float64
) -> np.ndarray:
    """For each query, how many closed balls B(centre_i, radius_i) contain it, (Nq,) int64."""
    q, c = _rows(queries, "ball_counts queries"), _rows(centres, "ball_counts centres")  # (Nq, D), (Nc, D)
    _same_dim(q, c, "ball_counts")
    rad = torch.as_tensor(np.asarray(radii, dtype=np.float64).reshape(-1))  # (Nc,)
    if rad.shape[0] != c.shape[0]:
        raise GenzooError(f"ball_counts: {c.shape[0]} centres but {rad.shape[0]} radii")
    counts = torch.zeros(q.shape[0], dtype=torch.long)
    for qs in range(0, q.shape[0], chunk):
        qb = q[qs : qs + chunk].to(device, dtype)  # (b, D)
        acc = torch.zeros(qb.shape[0], dtype=torch.long, device=device)
        for cs in range(0, c.shape[0], chunk):
            d = torch.cdist(qb, c[cs : cs + chunk].to(device, dtype))  # (b, c)
            acc += (d <= rad[cs : cs + chunk].to(device, dtype)).sum(1)
        counts[qs : qs + chunk] = acc.cpu()
    return counts.numpy()


def precision_recall(real, fake, k: int = 3, *, chunk: int = DEFAULT_CHUNK, device="cpu") -> dict:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN radii.

    Returns ``{"precision", "recall", "k", "n_real", "n_fake"}``.
    Cost: O((N^2 + M^2 + 2 N M) D) time, O(chunk^2 + chunk D) memory beyond the inputs.
    """
    x, y = _rows(real, "precision_recall real"), _rows(fake, "precision_recall fake")
    _same_dim(x, y, "precision_recall")
    r_real = knn_radii(x, k, chunk=chunk, device=device)  # (N,)
    r_fake = knn_radii(y, k, chunk=chunk, device=device)  # (M,)
    precision = float((ball_counts(y, x, r_real, chunk=chunk, device=device) > 0).mean())
    recall = float((ball_counts(x, y, r_fake, chunk=chunk, device=device) > 0).mean())
    return {"precision": precision, "recall": recall, "k": k, "n_real": x.shape[0], "n_fake": y.shape[0]}


def density_coverage(real, fake, k: int = 5, *, chunk: int = DEFAULT_CHUNK, device="cpu") -> dict:
    """Density and coverage (Naeem et al. 2020) with balls around the REAL points.

    Returns ``{"density", "coverage", "k", "n_real", "n_fake"}``.
    Cost: O((N^2 + 2 N M) D) time, O(chunk^2 + chunk D) memory beyond the inputs.
    """
    x, y = _rows(real, "density_coverage real"), _rows(fake, "density_coverage fake")
    _same_dim(x, y, "density_coverage")
    r_real = knn_radii(x, k, chunk=chunk, device=device)  # (N,)
    density = float(ball_counts(y, x, r_real, chunk=chunk, device=device).sum() / (k * y.shape[0]))
    nearest_fake, _ = knn(x, y, 1, chunk=chunk, device=device)  # (N, 1)
    coverage = float((nearest_fake[:, 0] <= r_real).mean())
    return {"density": density, "coverage": coverage, "k": k, "n_real": x.shape[0], "n_fake": y.shape[0]}
