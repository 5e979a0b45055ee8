"""Factor analysis fitted by EM.

Rubin & Thayer 1982, "EM algorithms for ML factor analysis", Psychometrika 47(1):69-76 (no arXiv).
The model on the unit view v of an image (D numbers):

    v = mu + W z + eps,  z ~ N(0, I_q),  eps ~ N(0, Psi),  Psi = diag(psi_1 .. psi_D),

PPCA with a separate noise variance for every sub-pixel (so a pixel that is always black costs no
variance of the others). mu is the sample mean; W and Psi are fitted by Rubin & Thayer's EM on the
sample covariance S (eq. 5-6 of the paper, written with the Woodbury identity so that nothing D x D
is inverted):

    E:  beta = W^T (W W^T + Psi)^-1 = M^-1 W^T Psi^-1,  M = I + W^T Psi^-1 W
        E[z z^T] averaged over the data: C_zz = I - beta W + beta S beta^T
    M:  W' = S beta^T C_zz^-1,   Psi' = diag(S - W' beta S), each psi_d floored at ``reg``.

Each step never lowers the Gaussian log-likelihood (the floor is the exact constrained maximiser
of the expected complete-data log-likelihood in psi_d, so flooring keeps it monotone). EM starts,
at the first update, from the closed-form PPCA fit of the same batch (Tipping & Bishop 1999).
``update(batch)`` runs ``iterations`` EM steps on the batch: the presets hand it the whole training
split. The code of an image is E[z | v]; the likelihood is the ELBO of
:mod:`genzoo.models.classic._linear` on discrete images, the exact density on continuous data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genzoo.models.base import ModelOutput
from genzoo.models.classic._linear import F64, LinearFactorModel, LinearLikelihood, Scatter, ppca_fit
from genzoo.models.registry import register_model

WHOLE_SPLIT = LinearFactorModel.whole_split


@dataclass
class FactorAnalysisConfig:
    components: int = 32  # q, the number of factors
    iterations: int = 10  # EM steps per update
    reg: float = 1e-4  # floor on every psi_d, in squared [0, 1] units
    quadrature: int = 16  # Gauss-Hermite nodes of the discrete likelihood bound

    def __post_init__(self):
        if self.components < 1:
            raise ValueError("components must be >= 1")
        if self.iterations < 1:
            raise ValueError("iterations must be >= 1")
        if not self.reg > 0:
            raise ValueError("reg must be > 0 (it keeps every noise variance positive)")
        if not 1 <= self.quadrature <= 256:
            raise ValueError("quadrature must be 1-256 nodes")


def _em(components: int, steps: int, iterations: int) -> dict:
    return {
        "components": components,
        "iterations": iterations,
        "batch_size": WHOLE_SPLIT,
        "steps": steps,
        "checkpoint_every": steps,
        "sample_every": steps,
        "log_every": 1,
    }


@register_model("factor_analysis")
class FactorAnalysis(LinearLikelihood, LinearFactorModel):
    """Factor analysis, fitted by EM (no gradients)."""

    paper = "Rubin & Thayer 1982, EM algorithms for ML factor analysis (Psychometrika 47:69-76; no arXiv)"
    Config = FactorAnalysisConfig
    presets = {
        "tiny": {"components": 2, "iterations": 2},
        # 5 updates of 20 EM steps on the whole training split
        "mnist": _em(64, 5, 20),
        "fashion": _em(64, 5, 20),
        "faces": _em(64, 5, 20),
    }

    def __init__(self, config: FactorAnalysisConfig, info):
        super().__init__(config, info)
        self._set_likelihood()

    def em_step(self, s: Scatter) -> None:
        """One EM step of Rubin & Thayer on the scatter ``s`` (the mean is already the sample mean)."""
        w, psi = self.weight, self.noise
        q = w.shape[1]
        wp = w / psi.unsqueeze(1)  # (D, q) Psi^-1 W
        m_inv = torch.cholesky_inverse(torch.linalg.cholesky(torch.eye(q, dtype=F64, device=w.device) + w.T @ wp))
        beta = m_inv @ wp.T  # (q, D)
        sb = s @ beta.T  # (D, q) S beta^T
        czz = m_inv + beta @ sb  # (q, q): I - beta W = M^-1
        w_new = torch.linalg.solve(czz, sb.T).T  # (D, q) S beta^T C_zz^-1 (C_zz symmetric)
        psi_new = (s.diag - (w_new * sb).sum(1)).clamp_min(self.config.reg)
        self.weight.copy_(w_new)
        self.noise.copy_(psi_new)

    @torch.no_grad()
    def update(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        """``iterations`` EM steps on ``batch["x"]`` (from the PPCA fit at the first update); the loss is the
        Gaussian density's mean NLL on the batch after them (the objective EM raises, nats of the unit view)."""
        v = self._unit(batch["x"])  # (B, D)
        s = Scatter(v)
        self.mean.copy_(s.mean)
        if not bool(self.initialised):
            w, sigma2, _, _ = ppca_fit(s, self.latent_dim, self.config.reg)
            self.weight.copy_(w)
            self.noise.fill_(float(sigma2))
            self.initialised.fill_(True)
        for _ in range(self.config.iterations):
            self.em_step(s)
        nll = -self.gaussian_log_density(v).mean()
        return ModelOutput(nll, {"density_nll_nats": nll.item(), "mean_noise_sd": math.sqrt(float(self.noise.mean()))})
