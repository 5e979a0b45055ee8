"""InfoGAN (Chen, Duan, Houthooft, Schulman, Sutskever & Abbeel 2016, "InfoGAN: Interpretable
Representation Learning by Information Maximizing Generative Adversarial Nets", arXiv:1606.03657):
the GAN game plus a term that keeps a latent code c readable from G(z, c), with no labels at all.

The information-regularised game (eq. 3, 6) is min_{G,Q} max_D V(D, G) - lambda L_I(G, Q) with the
variational lower bound of the mutual information (eq. 4-5, :mod:`genzoo.losses.conditional`)

    L_I(G, Q) = E_{c ~ P(c), x ~ G(z, c)} log Q(c | x) + H(c) <= I(c; G(z, c)).

The code c here is one uniform categorical code over ``categories`` values (the paper's 10 for MNIST)
and ``continuous_codes`` codes uniform on [-1, 1] (the paper's 2: rotation and width of digits); Q is a
head sharing D's body (one hidden LeakyReLU layer of ``q_hidden`` units, as in the paper), giving the
categorical logits and, for the continuous codes, the means of a factored Gaussian with unit variance.
Q belongs to the discriminator's player: it is fitted on each D update (maximising L_I on the detached
fakes) while G maximises L_I on its own update; lambda = ``info_weight`` (1, as in the paper), times
``continuous_weight`` for the continuous codes' term (the paper uses a smaller lambda for continuous codes,
to keep their differential-entropy term on the scale of the GAN objective).

The code as genzoo's code and condition. The model's code z (``latent_dim`` numbers) is
[c_continuous (``continuous_codes``), noise (the rest)]: z[0], z[1], ... are the continuous codes, drawn
U(-1, 1) by ``prior`` (the noise N(0, I)), so ``genzoo traverse --dims 0 1 --range -2 2`` sweeps them as
in the paper's Fig. 2; the categorical code is the model's *condition*: ``sample --condition k`` draws
category k (default: the categories in turn), ``decode(z)`` without a condition uses category 0.
Logged: ``mi_bound_categorical`` (at most log K), ``code_accuracy`` (Q's argmax is c) and
``q_continuous_mse``.

Presets: ``mnist`` is the paper's MNIST setting (62 noise variables + 2 continuous codes, 10
categories; D lr 2e-4, G lr 1e-3, Adam beta1 0.5, batches of 64) on DCGAN's conv nets (the paper's
additional 1024-unit layers left out); ``fashion`` the same; ``tiny`` for tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from genzoo.errors import GenzooError
from genzoo.losses.conditional import categorical_mi_bound, gaussian_code_log_likelihood
from genzoo.losses.gan import discriminator_loss, generator_loss
from genzoo.models.gan.cgan import ConditionalGAN
from genzoo.models.gan.gan import GANConfig
from genzoo.models.registry import register_model
from genzoo.nn.conditional_gan_nets import AuxiliaryDiscriminator, LabelledGenerator


@dataclass
class InfoGANConfig(GANConfig):
    categories: int = 10  # values of the categorical code (the condition)
    continuous_codes: int = 2  # the first dims of z, uniform on [-1, 1]
    info_weight: float = 1.0  # lambda of the mutual-information bound
    # the continuous codes' share of lambda (the paper takes a smaller lambda for continuous codes)
    continuous_weight: float = 1.0
    q_hidden: int = 128  # Q's hidden layer on D's features (0: linear)

    def __post_init__(self):
        super().__post_init__()
        if self.categories < 2:
            raise ValueError(f"categories must be >= 2, got {self.categories}")
        if not 0 <= self.continuous_codes <= self.latent_dim:
            raise ValueError(f"continuous_codes must be 0-{self.latent_dim} (latent_dim), got {self.continuous_codes}")
        if self.info_weight < 0 or self.q_hidden < 0 or self.continuous_weight < 0:
            raise ValueError("info_weight, continuous_weight and q_hidden must be >= 0")
        if self.loss == "ebgan" or self.unrolled_steps:
            raise ValueError("infogan takes the logistic, hinge and Wasserstein losses without unrolling")


PAPER = {
    "arch": "conv",
    "latent_dim": 64,
    "continuous_codes": 2,
    "categories": 10,
    "base_channels": 64,
    "optim": "adam",
    "d_lr": 2e-4,
    "g_lr": 1e-3,
    "betas": (0.5, 0.999),
    "batch_size": 64,
}


@register_model("infogan")
class InfoGAN(ConditionalGAN):
    """A GAN whose codes (one categorical, some continuous) are kept recoverable by a Q head on D."""

    paper = (
        "Chen, Duan, Houthooft, Schulman, Sutskever & Abbeel 2016, InfoGAN: Interpretable Representation "
        "Learning by Information Maximizing Generative Adversarial Nets, arXiv:1606.03657"
    )
    Config = InfoGANConfig
    uses_labels: ClassVar[bool] = False
    presets = {
        "tiny": {
            "latent_dim": 4,
            "continuous_codes": 1,
            "categories": 3,
            "g_hidden": (16,),
            "d_hidden": (16,),
            "q_hidden": 8,
            "batch_size": 8,
            "lr": 1e-3,
        },
        "mnist": dict(PAPER),
        "fashion": dict(PAPER),
    }
    discriminator: AuxiliaryDiscriminator

    @property
    def num_conditions(self) -> int:
        return self.config.categories

    def check_condition(self, condition) -> None:
        if condition is not None and torch.is_tensor(condition):
            k = self.config.categories
            bad = condition[(condition < 0) | (condition >= k)]
            if len(bad):
                raise GenzooError(
                    f"condition {int(bad[0])} out of range: {self.name}'s categorical code takes 0-{k - 1}"
                )

    # -- codes ----------------------------------------------------------------------------------------
    def prior(self, n, generator=None):
        z = torch.randn(n, self.latent_dim, generator=generator, device=self.device, dtype=self.dtype)
        l_ = self.config.continuous_codes
        u = torch.rand(n, l_, generator=generator, device=self.device, dtype=self.dtype)  # (n, L)
        return torch.cat([2 * u - 1, z[:, l_:]], dim=1)  # (n, D): [c_continuous, noise]

    def fake_condition(self, y, n):
        return torch.randint(self.config.categories, (n,), device=self.device)  # c_cat ~ uniform

    def build_generator(self):
        k = self.config.categories
        return LabelledGenerator(self.inner_generator(k), k, 0)  # [z, one_hot(c)]

    def build_discriminator(self) -> AuxiliaryDiscriminator:
        cfg = self.config
        return AuxiliaryDiscriminator(self.inner_discriminator(), cfg.categories + cfg.continuous_codes, cfg.q_hidden)

    # -- the bound ------------------------------------------------------------------------------------
    def information(self, q: torch.Tensor, z: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """L_I without the constant H(c_continuous): Q's outputs (B, K + L) for codes z, c -> (bound, metrics)."""
        k, l_ = self.config.categories, self.config.continuous_codes
        bound = categorical_mi_bound(q[:, :k], c)
        metrics = {
            "mi_bound_categorical": bound.item(),
            "code_accuracy": (q[:, :k].argmax(1) == c).float().mean().item(),
        }
        if l_:
            bound = bound + self.config.continuous_weight * gaussian_code_log_likelihood(q[:, k:], z[:, :l_])
            metrics["q_continuous_mse"] = F.mse_loss(q[:, k:], z[:, :l_]).item()
        return bound, metrics

    def discriminator_terms(self, real, y, fake, z, c, batch):
        cfg = self.config
        out_real = self.discriminator(real)  # (B,)
        out_fake, q = self.discriminator.both(fake)  # (B,), (B, K + L)
        bound, metrics = self.information(q, z, c)
        loss = discriminator_loss(cfg.loss, out_real, out_fake) - cfg.info_weight * bound
        return self.with_penalty(loss, self.discriminator, real, fake, metrics), out_real, out_fake, metrics

    def generator_terms(self, fake, z, c, real, y, batch):
        out, q = self.discriminator.both(fake)
        bound, metrics = self.information(q, z, c)
        return generator_loss(self.config.loss, out) - self.config.info_weight * bound, out, metrics
