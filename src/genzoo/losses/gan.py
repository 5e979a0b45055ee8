"""GAN losses as small named pieces: one discriminator loss and one generator loss per name.

Every function takes the discriminator's outputs, one value per image: logits l (the probability
"real" is D = sigmoid(l)), critic values f, or energies E. Means are over the batch; r are outputs on
real images x, g on generated images G(z).

* ``minimax`` (Goodfellow et al. 2014, arXiv:1406.2661, eq. 1): D maximises
  E log D(x) + E log(1 - D(G(z))), i.e. minimises  E softplus(-r) + E softplus(g);
  G minimises E log(1 - D(G(z))) = -E softplus(g)  (the saturating loss, exactly as in eq. 1).
* ``non_saturating`` (same paper, Sec. 3): D as above; G minimises -E log D(G(z)) = E softplus(-g).
* ``wasserstein`` (Arjovsky et al. 2017, arXiv:1701.07875, Algorithm 1): the critic minimises
  E f(G(z)) - E f(x); G minimises -E f(G(z)). The Lipschitz constraint is weight clipping, done by the
  model after each critic step, not here.
* ``wgan_gp`` (Gulrajani et al. 2017, arXiv:1704.00028, Algorithm 1): the Wasserstein losses plus
  lambda E (||grad f(x_hat)||_2 - 1)^2 at x_hat = eps x + (1 - eps) G(z), one eps ~ U[0, 1] per sample
  (:func:`gradient_penalty`).
* ``hinge`` (Lim & Ye 2017, arXiv:1705.02894): D minimises E relu(1 - r) + E relu(1 + g);
  G minimises -E g.
* ``least_squares`` (Mao et al. 2017, arXiv:1611.04076, eq. 2 with a = 0, b = c = 1, written as CycleGAN
  writes it, Zhu et al. 2017 Sec. 4, i.e. without the 1/2): D minimises E (r - 1)^2 + E g^2; G minimises
  E (g - 1)^2. D's outputs are raw scores.
* ``ebgan`` (Zhao et al. 2016, arXiv:1609.03126, eq. 1-2): the discriminator is an autoencoder whose
  energy E(x) is its reconstruction error; D minimises E(x) + relu(m - E(G(z))) (margin m), G minimises
  E(G(z)), optionally plus the pulling-away term (:func:`pulling_away`, the paper's "repelling
  regularizer") on the encoder codes of the fake batch.

All log-sigmoids are written with softplus (log sigmoid(l) = -softplus(-l), log(1 - sigmoid(l)) =
-softplus(l)), which stay finite for any logit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

LossName = Literal["minimax", "non_saturating", "wasserstein", "wgan_gp", "hinge", "ebgan", "least_squares"]


# -- discriminator losses: (outputs on real (B,), outputs on fake (B,)) -> scalar --------------------
def d_logistic(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-E log D(x) - E log(1 - D(G(z))) from logits."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def d_wasserstein(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E f(G(z)) - E f(x): minus the critic's estimate of the Wasserstein-1 distance."""
    return fake.mean() - real.mean()


def d_hinge(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def d_least_squares(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E (D(x) - 1)^2 + E D(G(z))^2 from raw scores (LSGAN)."""
    return ((real - 1) ** 2).mean() + (fake**2).mean()


def d_energy(real: torch.Tensor, fake: torch.Tensor, margin: float) -> torch.Tensor:
    """E E(x) + E relu(m - E(G(z))) from energies (EBGAN eq. 1)."""
    return real.mean() + F.relu(margin - fake).mean()


# -- generator losses: outputs on fake (B,) -> scalar --------------------------------------------------
def g_saturating(fake: torch.Tensor) -> torch.Tensor:
    """E log(1 - D(G(z))) from logits: the minimax game's own generator loss."""
    return -F.softplus(fake).mean()


def g_non_saturating(fake: torch.Tensor) -> torch.Tensor:
    """-E log D(G(z)) from logits."""
    return F.softplus(-fake).mean()


def g_critic(fake: torch.Tensor) -> torch.Tensor:
    """-E f(G(z)): raise the critic's (or hinge discriminator's) score of the fakes."""
    return -fake.mean()


def g_least_squares(fake: torch.Tensor) -> torch.Tensor:
    """E (D(G(z)) - 1)^2 from raw scores (LSGAN)."""
    return ((fake - 1) ** 2).mean()


def g_energy(fake: torch.Tensor) -> torch.Tensor:
    """E E(G(z)) (EBGAN eq. 2, without the pulling-away term)."""
    return fake.mean()


@dataclass(frozen=True)
class GANLoss:
    """One named loss: the two players' functions and what the discriminator outputs.

    ``output``: ``"logit"`` (D(x) = sigmoid(output)), ``"critic"`` (an unbounded score) or
    ``"energy"`` (an autoencoder's reconstruction error, low for real data) or ``"score"`` (a raw
    least-squares score, 1 for real and 0 for fake).
    """

    discriminator: Callable[..., torch.Tensor]
    generator: Callable[[torch.Tensor], torch.Tensor]
    output: Literal["logit", "critic", "energy", "score"]
    penalty: bool = False  # add the WGAN-GP gradient penalty to the critic's loss


LOSSES: dict[str, GANLoss] = {
    "minimax": GANLoss(d_logistic, g_saturating, "logit"),
    "non_saturating": GANLoss(d_logistic, g_non_saturating, "logit"),
    "wasserstein": GANLoss(d_wasserstein, g_critic, "critic"),
    "wgan_gp": GANLoss(d_wasserstein, g_critic, "critic", penalty=True),
    "hinge": GANLoss(d_hinge, g_critic, "logit"),
    "ebgan": GANLoss(d_energy, g_energy, "energy"),
    "least_squares": GANLoss(d_least_squares, g_least_squares, "score"),
}


def discriminator_loss(name: str, real: torch.Tensor, fake: torch.Tensor, *, margin: float = 1.0) -> torch.Tensor:
    """The discriminator's loss ``name`` from its outputs on real and fake images (no penalty term)."""
    loss = LOSSES[name]
    if loss.output == "energy":
        return loss.discriminator(real, fake, margin)
    return loss.discriminator(real, fake)


def generator_loss(name: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss ``name`` from the discriminator's outputs on fake images."""
    return LOSSES[name].generator(fake)


class GradientPenalty(NamedTuple):
    penalty: torch.Tensor  # E (||grad f(x_hat)|| - 1)^2, differentiable w.r.t. the critic
    norms: torch.Tensor  # (B,) ||grad f(x_hat_i)||_2 per sample
    eps: torch.Tensor  # (B,) the interpolation weights used


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    eps: torch.Tensor | None = None,
) -> GradientPenalty:
    """WGAN-GP's penalty at x_hat_i = eps_i x_i + (1 - eps_i) G(z)_i, eps_i ~ U[0, 1] drawn per sample.

    The gradient of sum_i f(x_hat_i) w.r.t. x_hat has row i equal to grad f(x_hat_i) only when the
    critic treats samples independently (no batch norm, no minibatch features): the models refuse
    those options with this loss.
    """
    b = real.shape[0]
    if eps is None:
        eps = torch.rand(b, device=real.device, dtype=real.dtype)  # (B,)
    w = eps.view(b, *([1] * (real.dim() - 1)))  # (B, 1, 1, 1)
    x_hat = w * real + (1 - w) * fake  # (B, C, H, W); keeps any graph to G (an unrolled critic needs it)
    if not x_hat.requires_grad:
        x_hat.requires_grad_(True)
    out = critic(x_hat)  # (B,)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)  # (B, C, H, W)
    norms = grad.flatten(1).norm(dim=1)  # (B,)
    return GradientPenalty(((norms - 1) ** 2).mean(), norms, eps)


def pulling_away(codes: torch.Tensor) -> torch.Tensor:
    """EBGAN's repelling regularizer (the pulling-away term): mean over ordered pairs i != j of cos^2(s_i, s_j).

    ``codes`` (B, K); 0 for a batch of one.
    """
    b = codes.shape[0]
    if b < 2:
        return codes.sum() * 0
    s = codes.flatten(1)
    s = s / s.norm(dim=1, keepdim=True).clamp_min(1e-12)  # (B, K)
    cos2 = (s @ s.T) ** 2  # (B, B)
    return (cos2.sum() - cos2.diagonal().sum()) / (b * (b - 1))
