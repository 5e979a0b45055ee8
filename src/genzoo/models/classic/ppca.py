"""Probabilistic PCA: PCA as the maximum-likelihood fit of a linear-Gaussian latent model.

Tipping & Bishop 1999, "Probabilistic Principal Component Analysis", J. R. Stat. Soc. B
61(3):611-622 (no arXiv). The model (eq. 2-3) on the unit view v of an image (D numbers):

    v = mu + W z + eps,  z ~ N(0, I_q),  eps ~ N(0, sigma^2 I_D),  so  v ~ N(mu, W W^T + sigma^2 I).

Its maximum-likelihood fit is closed-form (eq. 7-8): mu the sample mean; with S = U L U^T the
sample covariance, sigma^2 = (sum of the D - q smallest eigenvalues) / (D - q) and
W = U_q (L_q - sigma^2 I)^(1/2) (the rotation R of eq. 7 is taken as I, so the columns of W are
the principal axes in decreasing order of variance: ``traverse`` over dims 0 and 1 sweeps the two
leading "eigenfaces"). ``update(batch)`` computes this fit on the batch, so the presets hand it the
whole training split in one batch; a second update on the same batch changes nothing.

The code of an image is its posterior mean E[z | v] = M^-1 W^T (v - mu) / sigma^2 (eq. 6).
Likelihood: the exact Gaussian density on continuous data; on discrete images a lower bound on the
probability of the image's bins (the ELBO of :mod:`genzoo.models.classic._linear`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genzoo.models.base import ModelOutput
from genzoo.models.classic._linear import LinearFactorModel, LinearLikelihood, Scatter, ppca_fit
from genzoo.models.registry import register_model

WHOLE_SPLIT = LinearFactorModel.whole_split


@dataclass
class PPCAConfig:
    components: int = 32  # q, the number of principal components kept
    reg: float = 1e-4  # floor on sigma^2, in squared [0, 1] units (sigma^2 when q equals the dimension)
    quadrature: int = 16  # Gauss-Hermite nodes of the discrete likelihood bound

    def __post_init__(self):
        if self.components < 1:
            raise ValueError("components must be >= 1")
        if not self.reg > 0:
            raise ValueError("reg must be > 0 (it keeps the noise variance positive)")
        if not 1 <= self.quadrature <= 256:
            raise ValueError("quadrature must be 1-256 nodes")


def _full_fit(components: int, **extra) -> dict:
    return {
        "components": components,
        "batch_size": WHOLE_SPLIT,
        "steps": 1,
        "checkpoint_every": 1,
        "sample_every": 1,
        "log_every": 1,
        **extra,
    }


@register_model("ppca")
class PPCA(LinearLikelihood, LinearFactorModel):
    """Probabilistic PCA, fitted in closed form (no gradients)."""

    paper = (
        "Tipping & Bishop 1999, Probabilistic Principal Component Analysis (J. R. Stat. Soc. B 61:611-622; no arXiv)"
    )
    Config = PPCAConfig
    presets = {
        "tiny": {"components": 2},
        # one closed-form fit on the whole training split (binarized MNIST: ~5 s on 2 cores)
        "mnist": _full_fit(64),
        "fashion": _full_fit(64),
        # Olivetti faces (360 training faces of 4,096 pixels): the leading eigenfaces
        "faces": _full_fit(64),
    }

    def __init__(self, config: PPCAConfig, info):
        super().__init__(config, info)
        self._set_likelihood()

    @torch.no_grad()
    def update(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        """The closed-form maximum-likelihood fit to ``batch["x"]``; the loss is the Gaussian density's
        mean NLL on the batch after the fit (the fitted objective, in nats of the unit view)."""
        v = self._unit(batch["x"])  # (B, D)
        scatter = Scatter(v)
        w, sigma2, _, _ = ppca_fit(scatter, self.latent_dim, self.config.reg)
        self.mean.copy_(scatter.mean)
        self.weight.copy_(w)
        self.noise.fill_(float(sigma2))
        self.initialised.fill_(True)
        nll = -self.gaussian_log_density(v).mean()
        return ModelOutput(nll, {"density_nll_nats": nll.item(), "sigma": math.sqrt(float(sigma2))})
