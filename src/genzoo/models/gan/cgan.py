"""Conditional GAN (Mirza & Osindero 2014, "Conditional Generative Adversarial Nets", arXiv:1411.1784):
the GAN game with both players given the class label y (eq. 2):

    min_G max_D  E_{x,y} log D(x | y) + E_{z,y} log(1 - D(G(z | y) | y)).

G reads [z, e(y)], a learned label embedding beside the noise; D reads the label too, either by
concatenation (``d_condition=concat``: e(y) joins the flattened image for MLP nets, or is repeated as
extra input channels for conv nets, as in the paper) or through Miyato & Koyama's projection
(``d_condition=projection``, arXiv:1802.05637, eq. 3: D(x, y) = psi(phi(x)) + e(y)^T phi(x)). The fakes
of a batch are drawn for the real batch's labels, so both sides see the same class mix. Any logistic,
hinge or Wasserstein loss of :mod:`genzoo.losses.gan` applies, with clipping or the gradient penalty.

:class:`ConditionalGAN` is also the shared core of the GANs that use labels or codes (ACGAN, InfoGAN,
the semi-supervised GAN): it draws z and the fakes' condition, runs the two players and logs the GAN
core's metrics (``d_real``, ``d_fake``, ``g_grad_norm``, ``sample_spread``); each paper's module
overrides only the loss terms it changes (:meth:`ConditionalGAN.discriminator_terms`,
:meth:`ConditionalGAN.generator_terms`).

Sampling: ``condition`` is the class per image (default: the classes in turn); ``decode(z)`` without a
condition draws class 0, so traversals and interpolations hold the class fixed. The data must carry
class labels (``info.num_classes >= 2``); a batch without them, or with labels hidden by
``--labels-per-class``, is a one-line error.

Presets: ``mnist`` is the paper's MNIST model in spirit (z of 100, one 1200-unit layer in G; D of 240
units; LeakyReLU in place of maxout, Adam in place of SGD with momentum); ``fashion`` and ``cifar``
(CPU-sized) use DCGAN's conv nets with the projection discriminator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from genzoo.data.base import ImageInfo
from genzoo.errors import GenzooError
from genzoo.losses.gan import discriminator_loss, generator_loss, gradient_penalty
from genzoo.models.base import ModelOutput
from genzoo.models.gan.gan import GAN, GANConfig, sample_spread
from genzoo.models.registry import register_model
from genzoo.nn.conditional_gan_nets import (
    ConcatDiscriminator,
    InnerDiscriminator,
    LabelledGenerator,
    ProjectionDiscriminator,
    classes_in_turn,
)
from genzoo.nn.gan_nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator


@dataclass
class CGANConfig(GANConfig):
    embed_dim: int = 50  # label embedding width (G's input beside z; D's extra inputs with concat)
    d_condition: Literal["concat", "projection"] = "concat"  # how D reads the label

    def __post_init__(self):
        super().__post_init__()
        if self.embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1, got {self.embed_dim}")
        if self.d_condition not in ("concat", "projection"):
            raise ValueError(f"d_condition must be concat or projection, got {self.d_condition!r}")
        if self.loss == "ebgan" or self.unrolled_steps:
            raise ValueError(
                "the conditional GANs take the logistic, hinge and Wasserstein losses without "
                "unrolling (loss=ebgan and unrolled_steps are not supported)"
            )


class ConditionalGAN(GAN):
    """The GAN core with a condition per image: labels (``uses_labels``) or codes drawn by the model."""

    uses_labels: ClassVar[bool] = True  # training batches must carry every label
    family = "gan"

    def __init__(self, config, info):
        if self.uses_labels and info.num_classes < 2:
            raise GenzooError(
                f"{self.name}: the data has no class labels (num_classes = {info.num_classes}); "
                "a conditional GAN needs labelled data (idx with labels files, cifar10, a folder "
                "of class subfolders)"
            )
        super().__init__(config, info)

    @property
    def conditional(self) -> bool:
        return True

    @property
    def num_conditions(self) -> int:
        return self.info.num_classes

    # -- the condition ------------------------------------------------------------------------------
    def batch_labels(self, batch) -> torch.Tensor | None:
        """The real batch's labels (B,), refused by name when absent or partly hidden."""
        if not self.uses_labels:
            return None
        y = batch.get("y")
        if y is None:
            raise GenzooError(f"{self.name}: the batch has no class labels 'y'; train it on labelled data")
        if "labelled" in batch and not bool(batch["labelled"].all()):
            raise GenzooError(
                f"{self.name}: some training labels are hidden (--labels-per-class); only ssgan "
                "trains on partly labelled data"
            )
        return y.to(self.device)

    def fake_condition(self, y: torch.Tensor | None, n: int) -> torch.Tensor:
        """The condition of the n fakes of a batch: the real batch's labels."""
        if y is None:  # batch_labels gives None only when a subclass draws its own condition
            raise GenzooError(f"{self.name}: the fakes' condition is the real batch's labels, and it has none")
        return y

    def generate(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.generator(z, condition)  # (B, C', H, W)

    def decode_unit(self, z, condition=None):
        self.check_condition(condition)
        if condition is None:
            condition = torch.zeros(len(z), dtype=torch.long, device=z.device)
        y = self.generate(z, condition.to(z.device))
        return y if self.info.continuous else (y + 1) / 2

    def default_condition(self, n: int) -> torch.Tensor:
        return classes_in_turn(n, self.num_conditions)

    def _sample(self, n, *, generator=None, temperature=1.0, condition=None, progress=False):
        if condition is None:
            condition = self.default_condition(n)
        return super()._sample(n, generator=generator, temperature=temperature, condition=condition)

    # -- networks -----------------------------------------------------------------------------------
    def inner_discriminator(self, in_shape=None) -> InnerDiscriminator:
        """The unconditional D of ``arch`` for images of ``in_shape`` (default: the data's)."""
        cfg = self.config
        shape = in_shape or self.shape
        if cfg.arch == "conv":
            return DCGANDiscriminator(shape, cfg.base_channels, cfg.norm, cfg.minibatch_features)
        return MLPDiscriminator(shape, cfg.d_hidden, cfg.minibatch_features)

    def inner_generator(self, extra: int) -> nn.Module:
        """The generator of ``arch`` reading ``latent_dim + extra`` inputs."""
        cfg = self.config
        if cfg.arch == "conv":
            return DCGANGenerator(cfg.latent_dim + extra, self.shape, cfg.base_channels, tanh=self.squash)
        return MLPGenerator(cfg.latent_dim + extra, self.shape, cfg.g_hidden, tanh=self.squash)

    def build_generator(self) -> nn.Module:
        return LabelledGenerator(
            self.inner_generator(self.config.embed_dim), self.info.num_classes, self.config.embed_dim
        )

    def build_discriminator(self) -> nn.Module:
        cfg, (c, h, w) = self.config, self.shape
        k = self.info.num_classes
        if cfg.d_condition == "projection":
            return ProjectionDiscriminator(self.inner_discriminator(), k)
        if cfg.arch == "conv":
            return ConcatDiscriminator(self.inner_discriminator((c + cfg.embed_dim, h, w)), k, cfg.embed_dim, True)
        return ConcatDiscriminator(self.inner_discriminator((c * h * w + cfg.embed_dim, 1, 1)), k, cfg.embed_dim, False)

    # -- the game -----------------------------------------------------------------------------------
    def discriminator_terms(self, real, y, fake, z, c, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """D's loss on (real, labels y) and (fakes from codes z, condition c) -> (loss, out_real, out_fake, metrics)."""
        cfg = self.config
        out_real, out_fake = self.discriminator(real, y), self.discriminator(fake, c)  # (B,), (B,)
        loss = discriminator_loss(cfg.loss, out_real, out_fake)
        metrics: dict = {}
        loss = self.with_penalty(loss, lambda x: self.discriminator(x, y), real, fake, metrics)
        return loss, out_real, out_fake, metrics

    def with_penalty(
        self, loss: torch.Tensor, critic, real: torch.Tensor, fake: torch.Tensor, metrics: dict
    ) -> torch.Tensor:
        """``loss`` plus the gradient penalty of ``critic`` (Gulrajani et al. 2017) when the loss asks for one."""
        if not self.gan_loss.penalty:
            return loss
        gp = gradient_penalty(critic, real, fake).penalty
        metrics["gp"] = gp.item()
        return loss + self.config.gp_weight * gp

    def generator_terms(self, fake, z, c, real, y, batch) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """G's loss for its fakes under condition c -> (loss, out_fake, metrics)."""
        out = self.discriminator(fake, c)  # (B,)
        return generator_loss(self.config.loss, out), out, {}

    def player_loss(self, player, batch):
        real = self.real_input(batch["x"])  # (B, C', H, W)
        y = self.batch_labels(batch)  # (B,) or None
        z = self.prior(len(real))  # (B, D): the global RNG, which the trainer seeds and checkpoints
        c = self.fake_condition(y, len(real))  # (B,) or a code
        if player == "discriminator":
            with torch.no_grad():
                fake = self.generate(z, c)  # (B, C', H, W)
            loss, out_real, out_fake, extra = self.discriminator_terms(real, y, fake, z, c, batch)
            metrics = {"d_real": self._shown(out_real), "d_fake": self._shown(out_fake), **extra}
            if self.gan_loss.output == "critic":
                metrics["wasserstein"] = (out_real.mean() - out_fake.mean()).item()
            return ModelOutput(loss, metrics)
        if player != "generator":
            raise GenzooError(f"{self.name} has players discriminator and generator, not {player!r}")
        fake = self.generate(z, c)  # (B, C', H, W)
        loss, out_fake, extra = self.generator_terms(fake, z, c, real, y, batch)
        (grad,) = torch.autograd.grad(loss, fake, retain_graph=True)  # (B, C', H, W)
        metrics = {
            "d_fake": self._shown(out_fake),
            "g_grad_norm": (grad.flatten(1).norm(dim=1).mean() * len(fake)).item(),
            "sample_spread": sample_spread(fake.detach(), real),
            **extra,
        }
        return ModelOutput(loss, metrics)


# MNIST-sized nets in the spirit of the paper (Sec. 4.1), and CPU-sized conv presets.
PAPER_MNIST = {
    "latent_dim": 100,
    "embed_dim": 100,
    "g_hidden": (1200,),
    "d_hidden": (240,),
    "optim": "adam",
    "d_lr": 2e-4,
    "g_lr": 2e-4,
    "betas": (0.5, 0.999),
    "batch_size": 100,
}
CONV = {
    "arch": "conv",
    "latent_dim": 100,
    "embed_dim": 50,
    "base_channels": 32,
    "d_condition": "projection",
    "optim": "adam",
    "d_lr": 2e-4,
    "g_lr": 2e-4,
    "betas": (0.5, 0.999),
    "batch_size": 64,
}
LABELLED_TEST_INFO = ImageInfo(channels=1, height=4, width=4, num_values=5, num_classes=3)
TINY = {"latent_dim": 4, "embed_dim": 3, "g_hidden": (16,), "d_hidden": (16,), "batch_size": 8, "lr": 1e-3}


@register_model("cgan")
class CGAN(ConditionalGAN):
    """The label enters G (embedding beside z) and D (concatenated, or projected onto D's features)."""

    paper = "Mirza & Osindero 2014, Conditional Generative Adversarial Nets, arXiv:1411.1784"
    Config = CGANConfig
    presets = {
        "tiny": dict(TINY),
        "tiny_conv": {**TINY, "arch": "conv", "base_channels": 4, "d_condition": "projection"},
        "mnist": dict(PAPER_MNIST),
        "fashion": dict(CONV),
        "cifar": {**CONV, "base_channels": 64},
    }
    test_info = LABELLED_TEST_INFO  # the shared suite builds it for labelled data
