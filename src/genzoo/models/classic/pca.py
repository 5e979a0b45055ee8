"""Principal component analysis as a generative model: probabilistic PCA in the limit sigma -> 0.

Pearson 1901, "On lines and planes of closest fit to systems of points in space", Phil. Mag. 2(11):
559-572 (no arXiv); the probabilistic reading is Tipping & Bishop 1999 (sec. 3.3, the sigma -> 0 limit).

The q principal axes U_q of the sample covariance S = U L U^T (eigenvalues L in decreasing order)
span the images as v = mu + W z with W = U_q L_q^(1/2) and z ~ N(0, I): the Gaussian restricted to
the principal subspace, PPCA's fit with sigma^2 sent to zero. That distribution lives on a
q-dimensional subspace, so it gives no probability to a D-dimensional image: ``pca`` is a latent
model, not a likelihood model (``genzoo eval`` reports no likelihood; ``ppca`` is the model with one).

* code: the whitened component scores z = L_q^(-1/2) U_q^T (v - mu) (the least-squares fit of the
  image by the q axes), so ``traverse`` over dims 0 and 1 sweeps the two leading eigenfaces in
  units of their standard deviation;
* sampling: z ~ N(0, I), v = mu + W z, the nearest level;
* completion: the least-squares fit of the known sub-pixels by the q axes (the sigma -> 0 limit of
  the Gaussian conditional), plus a draw from the posterior of z that the known pixels leave free.

Numerically the limit is taken at a fixed tiny noise ``noise`` (sigma^2, squared [0, 1] units), which
keeps the posterior M = I + W^T W / sigma^2 invertible when fewer pixels than axes are known.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genzoo.models.base import ModelOutput
from genzoo.models.classic._linear import LinearFactorModel, Scatter
from genzoo.models.registry import register_model

WHOLE_SPLIT = LinearFactorModel.whole_split


@dataclass
class PCAConfig:
    components: int = 32  # q, the number of principal axes kept
    noise: float = 1e-6  # the sigma^2 at which the sigma -> 0 limit is taken

    def __post_init__(self):
        if self.components < 1:
            raise ValueError("components must be >= 1")
        if not self.noise > 0:
            raise ValueError("noise must be > 0 (the limit is taken at a small positive sigma^2)")


def _full_fit(components: int) -> dict:
    return {
        "components": components,
        "batch_size": WHOLE_SPLIT,
        "steps": 1,
        "checkpoint_every": 1,
        "sample_every": 1,
        "log_every": 1,
    }


@register_model("pca")
class PCA(LinearFactorModel):
    """The principal subspace with a Gaussian on it; no likelihood (a degenerate density)."""

    paper = (
        "Pearson 1901, On lines and planes of closest fit to systems of points in space "
        "(Phil. Mag. 2:559-572; no arXiv)"
    )
    Config = PCAConfig
    presets = {
        "tiny": {"components": 2},
        "mnist": _full_fit(64),
        "fashion": _full_fit(64),
        "faces": _full_fit(64),
    }

    def __init__(self, config: PCAConfig, info):
        super().__init__(config, info)
        self.noise.fill_(config.noise)

    @torch.no_grad()
    def update(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        """The principal axes of ``batch["x"]``; the loss is the mean squared reconstruction error per image
        (squared [0, 1] units summed over sub-pixels) of the projection onto them."""
        v = self._unit(batch["x"])  # (B, D)
        scatter = Scatter(v)
        lam, vec = scatter.top(self.latent_dim)
        self.mean.copy_(scatter.mean)
        self.weight.copy_(vec * lam.sqrt())  # (D, q) U_q L_q^(1/2)
        self.noise.fill_(self.config.noise)
        self.initialised.fill_(True)
        err = torch.tensor(scatter.trace - float(lam.sum()), dtype=torch.float64)  # the discarded variance
        return ModelOutput(
            err,
            {"reconstruction_error": err.item(), "explained_variance": float(lam.sum()) / max(scatter.trace, 1e-300)},
        )
