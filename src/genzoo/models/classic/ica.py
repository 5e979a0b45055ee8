"""Independent component analysis by FastICA, as a generative model with fitted source priors.

Hyvarinen 1999, "Fast and robust fixed-point algorithms for independent component analysis",
IEEE Trans. Neural Networks 10(3):626-634 (no arXiv). The model on the unit view v (D numbers):

    v = mu + A s + eps,  s_j ~ p_j independent, unit variance,  eps ~ N(0, sigma^2 I),

the noisy ICA model of the paper's sec. VI with Gaussian noise in all D dimensions, so that it gives
images of any dimension a likelihood (square noiseless ICA needs an invertible D x D mixing, which
images with always-black pixels do not have). It is fitted in three closed-form stages:

1. PPCA (Tipping & Bishop 1999): mu, sigma^2, the principal axes U_q, eigenvalues L_q.
2. FastICA on the whitened data y = L_q^(-1/2) U_q^T (v - mu): the symmetric fixed-point iteration
   (eq. 20 with the log cosh contrast, g = tanh, followed by symmetric decorrelation
   B <- (B B^T)^(-1/2) B, eq. 21) for an orthogonal unmixing B, s = B y. ``iterations`` steps per
   update, continuing from the last update's B (a random rotation at the first, from torch's global RNG).
3. Each source's prior p_j, chosen by maximum likelihood on the training sources among three
   unit-variance shapes: Gaussian, logistic (sech^2, scale sqrt(3)/pi) and Laplace (scale 1/sqrt(2)).

The mixing is PPCA's loading matrix rotated by B: A = U_q (L_q - sigma^2 I)^(1/2) B^T, so the model's
covariance is exactly PPCA's, and ICA differs from PPCA only in the non-Gaussian, axis-aligned source
prior. Sources are ordered by decreasing excess kurtosis and signed so that each has positive skew;
``encode`` gives E_q[s] and the columns of A are the "ICA components" (``traverse`` sweeps them).

Likelihood: the ELBO of :mod:`genzoo.models.classic._linear` with the Gaussian q(s | v) that the
Gaussian-prior posterior gives (E_q[log p_j(s_j)] is closed-form for Gaussian and Laplace sources,
Gauss-Hermite for logistic ones), on discrete and continuous data alike. Completion draws from that
same Gaussian q given the known pixels (exact for Gaussian sources, an approximation otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genzoo.models.base import ModelOutput
from genzoo.models.classic._linear import F64, LinearFactorModel, LinearLikelihood, Scatter, ppca_fit
from genzoo.models.registry import register_model
from genzoo.nn.gaussian import LOG_2PI

WHOLE_SPLIT = LinearFactorModel.whole_split
GAUSSIAN, LOGISTIC, LAPLACE = 0, 1, 2
PRIOR_NAMES = ("gaussian", "logistic", "laplace")
LOGISTIC_SCALE = math.sqrt(3) / math.pi  # unit variance: Var = (pi a)^2 / 3
LAPLACE_SCALE = 1 / math.sqrt(2)  # unit variance: Var = 2 b^2


@dataclass
class ICAConfig:
    components: int = 32  # q, the number of sources (after PCA to q dimensions)
    iterations: int = 200  # FastICA fixed-point steps per update
    tol: float = 1e-6  # stop early when every unmixing row moves by less (1 - |cos|)
    reg: float = 1e-4  # floor on sigma^2, in squared [0, 1] units
    quadrature: int = 16  # Gauss-Hermite nodes of the likelihood bound

    def __post_init__(self):
        if self.components < 1:
            raise ValueError("components must be >= 1")
        if self.iterations < 1:
            raise ValueError("iterations must be >= 1")
        if not self.tol >= 0:
            raise ValueError("tol must be >= 0")
        if not self.reg > 0:
            raise ValueError("reg must be > 0 (it keeps the noise variance positive)")
        if not 1 <= self.quadrature <= 256:
            raise ValueError("quadrature must be 1-256 nodes")


def _full_fit(components: int, steps: int = 1) -> dict:
    return {
        "components": components,
        "batch_size": WHOLE_SPLIT,
        "steps": steps,
        "checkpoint_every": steps,
        "sample_every": steps,
        "log_every": 1,
    }


def log_source_density(s: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
    """log p_j(s_j) elementwise for unit-variance Gaussian / logistic / Laplace sources; ``kind`` (q,)."""
    gauss = -0.5 * (s * s + LOG_2PI)
    u = s / LOGISTIC_SCALE
    logistic = -u - 2 * torch.nn.functional.softplus(-u) - math.log(LOGISTIC_SCALE)
    laplace = -s.abs() / LAPLACE_SCALE - math.log(2 * LAPLACE_SCALE)
    return torch.where(kind == GAUSSIAN, gauss, torch.where(kind == LOGISTIC, logistic, laplace))


def symmetric_decorrelation(b: torch.Tensor) -> torch.Tensor:
    """(B B^T)^(-1/2) B: the orthogonal matrix nearest to B (Hyvarinen 1999, eq. 21)."""
    lam, vec = torch.linalg.eigh(b @ b.T)
    return (vec / lam.clamp_min(1e-300).sqrt()) @ vec.T @ b


def fastica(y: torch.Tensor, b: torch.Tensor, iterations: int, tol: float) -> tuple[torch.Tensor, int]:
    """Symmetric FastICA with g = tanh on whitened data y (N, q) from the unmixing b (q, q).

    b <- E[g(b y) y^T] - diag(E[g'(b y)]) b, then symmetric decorrelation; returns (b, steps taken).
    """
    b = symmetric_decorrelation(b)
    for step in range(1, iterations + 1):
        u = y @ b.T  # (N, q)
        g = torch.tanh(u)
        new = g.T @ y / len(y) - (1 - g * g).mean(0).unsqueeze(1) * b
        new = symmetric_decorrelation(new)
        moved = float((1 - (new * b).sum(1).abs()).abs().max())
        b = new
        if moved < tol:
            return b, step
    return b, iterations


@register_model("ica")
class ICA(LinearLikelihood, LinearFactorModel):
    """Noisy ICA: PPCA's covariance, FastICA's rotation, a fitted prior per source (no gradients)."""

    paper = (
        "Hyvarinen 1999, Fast and robust fixed-point algorithms for independent component analysis "
        "(IEEE Trans. Neural Networks 10:626-634; no arXiv)"
    )
    Config = ICAConfig
    gaussian_prior = False

    # buffers (fitted by FastICA), made in __init__
    unmixing: torch.Tensor  # (q, q) B
    source_kind: torch.Tensor  # (q,) long: GAUSSIAN, LOGISTIC or LAPLACE per source

    presets = {
        "tiny": {"components": 2, "iterations": 5},
        "mnist": _full_fit(64),
        "fashion": _full_fit(64),
        "faces": _full_fit(64),
    }

    def __init__(self, config: ICAConfig, info):
        super().__init__(config, info)
        q = config.components
        self.register_buffer("unmixing", torch.eye(q, dtype=F64))  # (q, q) B, rows = whitened source filters
        self.register_buffer("source_kind", torch.full((q,), GAUSSIAN, dtype=torch.long))  # (q,) prior per source
        self._set_likelihood()

    # -- the source prior ----------------------------------------------------------------------
    def prior(self, n, generator=None):
        """s_j ~ p_j, by inverting each CDF at a uniform draw."""
        q = self.latent_dim
        u = torch.rand(n, q, generator=generator, device=self.device, dtype=F64).clamp(1e-12, 1 - 1e-12)
        gauss = torch.randn(n, q, generator=generator, device=self.device, dtype=F64)
        logistic = LOGISTIC_SCALE * torch.log(u / (1 - u))
        c = u - 0.5
        laplace = -LAPLACE_SCALE * torch.sign(c) * torch.log1p(-2 * c.abs())
        kind = self.source_kind
        return torch.where(kind == GAUSSIAN, gauss, torch.where(kind == LOGISTIC, logistic, laplace))

    def log_prior(self, z):
        return log_source_density(z, self.source_kind).sum(-1)

    def expected_log_prior(self, mean, var):
        """E[log p_j(s_j)], s_j ~ N(mean_j, var_j): Gaussian and Laplace (folded-normal mean) in closed
        form, logistic by Gauss-Hermite quadrature."""
        sd = var.clamp_min(0).sqrt()  # (q,)
        gauss = -0.5 * (mean * mean + var + LOG_2PI)
        z = mean / sd
        abs_mean = sd * math.sqrt(2 / math.pi) * torch.exp(-0.5 * z * z) + mean * (1 - 2 * torch.special.ndtr(-z))
        laplace = -abs_mean / LAPLACE_SCALE - math.log(2 * LAPLACE_SCALE)
        nodes = self._nodes.to(self.device).view(-1, 1, 1)
        pts = mean + nodes * sd  # (n, B, q)
        u = pts / LOGISTIC_SCALE
        logistic = (
            (-u - 2 * torch.nn.functional.softplus(-u)) * self._log_weights.to(self.device).exp().view(-1, 1, 1)
        ).sum(0) - math.log(LOGISTIC_SCALE)
        kind = self.source_kind
        return torch.where(kind == GAUSSIAN, gauss, torch.where(kind == LOGISTIC, logistic, laplace)).sum(-1)

    # -- fitting -------------------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        """PPCA, then FastICA on the whitened batch, then a prior per source; the loss is the mean negative
        log-likelihood of the batch's estimated sources under their priors (nats per image)."""
        v = self._unit(batch["x"])  # (B, D)
        s = Scatter(v)
        q = self.latent_dim
        w, sigma2, lam, axes = ppca_fit(s, q, self.config.reg)
        y = (v - s.mean) @ axes / lam.clamp_min(1e-12).sqrt()  # (B, q) whitened
        b = self.unmixing
        if not bool(self.initialised):
            b = torch.linalg.qr(torch.randn(q, q, dtype=F64))[0].to(self.device)  # a random rotation
        b, steps = fastica(y, b, self.config.iterations, self.config.tol)
        src = y @ b.T  # (B, q)
        # order by decreasing excess kurtosis, sign for positive skew (a canonical permutation and sign)
        kurt = (src**4).mean(0) - 3
        order = torch.argsort(kurt, descending=True)
        sign = torch.sign((src**3).mean(0))
        sign[sign == 0] = 1
        b = (b * sign.unsqueeze(1))[order]
        src = (src * sign)[:, order]
        ll = torch.stack(
            [
                log_source_density(src, torch.full((q,), k, device=self.device)).mean(0)
                for k in (GAUSSIAN, LOGISTIC, LAPLACE)
            ]
        )  # (3, q)
        self.source_kind.copy_(ll.argmax(0))
        self.unmixing.copy_(b)
        self.mean.copy_(s.mean)
        self.weight.copy_(w @ b.T)  # (D, q) A = U_q (L_q - sigma^2)^(1/2) B^T
        self.noise.fill_(float(sigma2))
        self.initialised.fill_(True)
        nll = -ll.max(0).values.sum()
        counts = torch.bincount(self.source_kind, minlength=3)
        return ModelOutput(
            nll,
            {
                "source_nll_nats": nll.item(),
                "fastica_steps": float(steps),
                **{f"{name}_sources": float(c) for name, c in zip(PRIOR_NAMES, counts)},
            },
        )
