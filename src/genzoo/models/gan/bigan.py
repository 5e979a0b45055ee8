"""BiGAN (Donahue, Krähenbühl & Darrell 2016, "Adversarial Feature Learning", arXiv:1605.09782): an
encoder E joins the game, and the discriminator judges *pairs* -- data with its code (x, E(x)) against
generated data with its code (G(z), z). The objective (eq. 3) is

    min_{G,E} max_D  V(D, E, G) = E_x log D(x, E(x)) + E_z log(1 - D(G(z), z)),

whose optimum has E = G^{-1} (Theorem 2): the encoder learns to invert the generator without ever
seeing a pair (z, G(z)) as a regression target. D has an image path phi(x) (the conv or MLP trunk of
the GAN core), a code path psi(z) and joint layers over [phi(x), psi(z)]
(:class:`~genzoo.nn.conditional_gan_nets.JointDiscriminator`). The two players here are
``discriminator`` (D) and ``generator`` (G and E together, one optimiser); with ``loss=non_saturating``
(default) G and E minimise D's loss with the labels swapped, -E log(1 - D(x, E(x))) - E log D(G(z), z)
(the paper's practical choice, Sec. 3.4), with ``loss=minimax`` they minimise V itself.

``encode`` is E (``has_encoder``), so ``genzoo reconstruct`` shows G(E(x)), ``probe`` trains a linear
classifier on E(x) and ``interpolate`` between images uses their E codes. ALI (:mod:`genzoo.models.gan.ali`)
is the same game with a stochastic encoder. Logged beside the GAN metrics: ``d_real`` is D(x, E(x)),
``d_fake`` D(G(z), z) (probabilities), and ``code_error`` the mean squared error |E(G(z)) - z|^2 / D
of the encoder on generated images (how well E inverts G).

Presets: ``mnist`` is the paper's permutation-invariant MNIST setting in spirit (z of 50, 1024-unit
layers in G, E and D; Adam 2e-4, beta1 0.5, batches of 128); ``fashion`` and ``cifar`` use DCGAN's conv
trunks (CPU-sized); ``grid`` the 25-Gaussian mixture with the GAN core's 2-D nets and a 2-d code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from genzoo.errors import GenzooError
from genzoo.losses.gan import d_logistic
from genzoo.models.base import ModelOutput
from genzoo.models.gan.gan import GAN, GANConfig, sample_spread
from genzoo.models.registry import register_model
from genzoo.nn.conditional_gan_nets import Encoder, InnerDiscriminator, JointDiscriminator
from genzoo.nn.gan_nets import DCGANDiscriminator, MLPDiscriminator


@dataclass
class BiGANConfig(GANConfig):
    e_hidden: tuple[int, ...] = (256, 256)  # arch=mlp: E's hidden widths
    z_hidden: tuple[int, ...] = (256,)  # D's code path widths
    joint_hidden: tuple[int, ...] = (256,)  # D's joint layers over [phi(x), psi(z)]
    d_dropout: float = 0.0  # dropout before each of D's joint layers (ALI: 0.2)
    stochastic_encoder: bool = False  # ALI: E gives a Gaussian q(z | x), sampled by reparameterisation

    def __post_init__(self):
        super().__post_init__()
        self.e_hidden = tuple(int(h) for h in self.e_hidden)
        self.z_hidden = tuple(int(h) for h in self.z_hidden)
        self.joint_hidden = tuple(int(h) for h in self.joint_hidden)
        if (
            not self.e_hidden
            or not self.z_hidden
            or min(self.e_hidden + self.z_hidden + self.joint_hidden, default=1) < 1
        ):
            raise ValueError("e_hidden and z_hidden need at least one width; every width must be >= 1")
        if not 0 <= self.d_dropout < 1:
            raise ValueError(f"d_dropout must be in [0, 1), got {self.d_dropout}")
        if self.loss not in ("non_saturating", "minimax") or self.unrolled_steps or self.clip:
            raise ValueError(
                "bigan/ali play the logistic game: loss=non_saturating or minimax, without unrolling or clipping"
            )


@register_model("bigan")
class BiGAN(GAN):
    """G, an encoder E, and D over (image, code) pairs; E inverts G."""

    paper = "Donahue, Krähenbühl & Darrell 2016, Adversarial Feature Learning, arXiv:1605.09782"
    Config = BiGANConfig
    has_encoder: ClassVar[bool] = True
    player_modules: ClassVar[dict[str, str]] = {"discriminator": "discriminator", "generator": "generator"}
    presets = {
        "tiny": {
            "latent_dim": 4,
            "g_hidden": (16,),
            "d_hidden": (16,),
            "e_hidden": (16,),
            "z_hidden": (8,),
            "joint_hidden": (16,),
            "batch_size": 8,
            "lr": 1e-3,
        },
        "mnist": {
            "latent_dim": 50,
            "g_hidden": (1024, 1024),
            "d_hidden": (1024,),
            "e_hidden": (1024, 1024),
            "z_hidden": (1024,),
            "joint_hidden": (1024,),
            "optim": "adam",
            "d_lr": 2e-4,
            "g_lr": 2e-4,
            "betas": (0.5, 0.999),
            "batch_size": 128,
        },
        "fashion": {
            "arch": "conv",
            "latent_dim": 64,
            "base_channels": 32,
            "z_hidden": (256,),
            "joint_hidden": (512,),
            "optim": "adam",
            "d_lr": 2e-4,
            "g_lr": 2e-4,
            "betas": (0.5, 0.999),
            "batch_size": 64,
        },
        "cifar": {
            "arch": "conv",
            "latent_dim": 64,
            "base_channels": 64,
            "z_hidden": (512,),
            "joint_hidden": (1024,),
            "optim": "adam",
            "d_lr": 2e-4,
            "g_lr": 2e-4,
            "betas": (0.5, 0.999),
            "batch_size": 64,
        },
        "grid": {
            "latent_dim": 2,
            "g_hidden": (128, 128),
            "d_hidden": (128, 128),
            "e_hidden": (128, 128),
            "z_hidden": (128,),
            "joint_hidden": (128,),
            "optim": "adam",
            "d_lr": 1e-4,
            "g_lr": 1e-4,
            "betas": (0.5, 0.999),
            "batch_size": 512,
        },
    }

    def __init__(self, config, info):
        super().__init__(config, info)
        try:
            self.encoder = self.build_encoder()
        except GenzooError as e:
            raise GenzooError(f"{self.name}: {e}") from None

    # -- networks -------------------------------------------------------------------------------------
    def _trunk(self, hidden: tuple[int, ...]) -> InnerDiscriminator:
        cfg = self.config
        if cfg.arch == "conv":
            return DCGANDiscriminator(self.shape, cfg.base_channels, cfg.norm)
        return MLPDiscriminator(self.shape, hidden)

    def build_encoder(self) -> nn.Module:
        out = self.config.latent_dim * (2 if self.config.stochastic_encoder else 1)  # ALI: mean and log sigma
        return Encoder(self._trunk(self.config.e_hidden), out)

    def build_discriminator(self) -> nn.Module:
        cfg = self.config
        return JointDiscriminator(
            self._trunk(cfg.d_hidden), cfg.latent_dim, cfg.z_hidden, cfg.joint_hidden, cfg.d_dropout
        )

    def player_parameters(self, player):
        if player == "generator":  # G and E play together against D
            return [p for m in (self.generator, self.encoder) for p in m.parameters() if p.requires_grad]
        return super().player_parameters(player)

    # -- the encoder ----------------------------------------------------------------------------------
    def encoder_code(self, real: torch.Tensor, sample: bool) -> torch.Tensor:
        """E applied to D-space images (B, C', H, W) -> codes (B, D); ALI draws from q(z | x) when ``sample``."""
        out = self.encoder(real)  # (B, D) or (B, 2D)
        if not self.config.stochastic_encoder:
            return out
        mean, log_sigma = out.chunk(2, dim=1)  # (B, D) each
        if not sample:
            return mean
        return mean + log_sigma.clamp(-10, 5).exp() * torch.randn_like(mean)  # reparameterised draw

    def encode(self, x, condition=None, *, generator=None):
        """E(x): the encoder's code (ALI: the mean of q(z | x)), (B, latent_dim)."""
        self.check_condition(condition)
        return self.encoder_code(self.real_input(x.to(self.device)), sample=False)

    # -- the game -------------------------------------------------------------------------------------
    def player_loss(self, player, batch):
        real = self.real_input(batch["x"])  # (B, C', H, W)
        z = self.prior(len(real))  # (B, D)
        if player == "discriminator":
            with torch.no_grad():
                fake, code = self.generator(z), self.encoder_code(real, sample=True)  # (B, C', H, W), (B, D)
            out_real, out_fake = self.discriminator(real, code), self.discriminator(fake, z)  # (B,), (B,)
            loss = d_logistic(out_real, out_fake)
            return ModelOutput(loss, {"d_real": self._shown(out_real), "d_fake": self._shown(out_fake)})
        if player != "generator":
            raise GenzooError(f"{self.name} has players discriminator and generator, not {player!r}")
        fake, code = self.generator(z), self.encoder_code(real, sample=True)
        out_real, out_fake = self.discriminator(real, code), self.discriminator(fake, z)
        if self.config.loss == "minimax":
            loss = -d_logistic(out_real, out_fake)
        else:  # the labels swapped: (x, E(x)) should look generated, (G(z), z) real
            loss = d_logistic(out_fake, out_real)
        (grad,) = torch.autograd.grad(loss, fake, retain_graph=True)  # (B, C', H, W)
        with torch.no_grad():
            code_error = ((self.encoder_code(fake, sample=False) - z) ** 2).mean().item()
        metrics = {
            "d_real": self._shown(out_real),
            "d_fake": self._shown(out_fake),
            "g_grad_norm": (grad.flatten(1).norm(dim=1).mean() * len(fake)).item(),
            "sample_spread": sample_spread(fake.detach(), real),
            "code_error": code_error,
        }
        return ModelOutput(loss, metrics)
