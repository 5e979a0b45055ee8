"""CycleGAN (Zhu, Park, Isola & Efros 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", arXiv:1703.10593): two generators G: A -> B and F: B -> A and two discriminators
D_B, D_A, trained without pairs.

The objective (eq. 3 and Sec. 5.2): L = L_GAN(G, D_B) + L_GAN(F, D_A) + lambda L_cyc + lambda_id L_id with

* L_GAN: the least-squares loss (Sec. 4, after Mao et al. 2017; ``loss = least_squares`` of
  :mod:`genzoo.losses.gan`): G minimises E (D_B(G(a)) - 1)^2, D_B minimises E (D_B(b) - 1)^2 + E D_B(G(a))^2,
  D's objective halved while it is optimised (Sec. 4);
* L_cyc = E |F(G(a)) - a|_1 + E |G(F(b)) - b|_1 (eq. 2), lambda = 10 (``cycle_weight``), each term the mean
  absolute difference per sub-pixel in [-1, 1] (:meth:`CycleGAN.cycle_loss`);
* L_id = E |G(b) - b|_1 + E |F(a) - a|_1 (Sec. 5.2, after Taigman et al. 2016), weight
  lambda_id = ``identity_weight`` x lambda, 0.5 x lambda in the paper (:meth:`CycleGAN.identity_loss`).

Networks (:mod:`genzoo.nn.translation_nets`): ResNet generators with instance norm (9 residual blocks
for 256x256, 6 for 128x128), 70x70 PatchGANs on single images, and a 50-image history pool per
discriminator (:class:`~genzoo.nn.translation_nets.HistoryPool`). Adam, lr 2e-4, betas (0.5, 0.999);
the learning rate stays constant for the first ``decay_start`` of the steps (100 of 200 epochs in the
paper) and then decays linearly to zero (:meth:`CycleGAN.lr_scale`).

Training on ``unpaired:PATH_A,PATH_B`` (or any data with ``target`` images: the pairing is never used);
players ``discriminator`` (D_A and D_B) then ``generator`` (G and F), the GAN core's schedule,
overrides and diagnostics. :meth:`CycleGAN.translate` is G (A -> B); ``translate_back`` is F.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from genzoo.errors import GenzooError
from genzoo.losses.gan import LossName, discriminator_loss, generator_loss
from genzoo.models.base import ModelOutput
from genzoo.models.gan.gan import sample_spread
from genzoo.models.gan.pix2pix import TranslationGAN, TranslationGANConfig
from genzoo.models.registry import register_model
from genzoo.nn.translation_nets import HistoryPool, PatchDiscriminator, ResnetGenerator


@dataclass
class CycleGANConfig(TranslationGANConfig):
    loss: LossName = "least_squares"
    cycle_weight: float = 10.0  # lambda of eq. 3
    identity_weight: float = 0.5  # lambda_id / lambda (Sec. 5.2); 0 turns the identity loss off
    blocks: int = 9  # residual blocks of each generator (9 for 256x256, 6 for 128x128)
    pool_size: int = 50  # the history pool of each discriminator; 0 shows D only the newest fakes
    decay_start: float = 0.5  # fraction of the steps at the constant rate; then linear decay to 0

    def __post_init__(self):
        super().__post_init__()
        if self.cycle_weight < 0 or self.identity_weight < 0:
            raise ValueError("cycle_weight and identity_weight must be >= 0")
        if self.blocks < 0 or self.pool_size < 0:
            raise ValueError("blocks and pool_size must be >= 0")
        if not 0 <= self.decay_start <= 1:
            raise ValueError(f"decay_start must be in [0, 1], got {self.decay_start}")


@register_model("cyclegan")
class CycleGAN(TranslationGAN):
    """Two ResNet generators, two PatchGANs, least squares, cycle and identity losses, history pools."""

    paper = (
        "Zhu, Park, Isola & Efros 2017, Unpaired Image-to-Image Translation using Cycle-Consistent "
        "Adversarial Networks, arXiv:1703.10593"
    )
    Config = CycleGANConfig
    player_modules: ClassVar[dict[str, str]] = {"discriminator": "discriminators", "generator": "generators"}
    presets = {
        "tiny": {"base_channels": 4, "blocks": 1, "d_layers": 1, "pool_size": 3, "batch_size": 4, "sample_every": 0},
        # the paper's nets for 256x256: 9 blocks, 70x70 PatchGANs, batch size 1, 200 epochs
        "paper": {"batch_size": 1, "epochs": 200, "sample_every": 0},
        # CPU-sized: 64x64 images (--size 64), quarter-width nets, 6 blocks (the paper's 128x128 generator)
        "cpu": {"base_channels": 16, "blocks": 6, "batch_size": 4, "sample_every": 0},
    }

    def build(self) -> None:
        cfg, c = self.config, self.info.channels
        self.generators = nn.ModuleDict(
            {
                "ab": ResnetGenerator(c, c, cfg.base_channels, cfg.blocks),
                "ba": ResnetGenerator(c, c, cfg.base_channels, cfg.blocks),
            }
        )
        self.discriminators = nn.ModuleDict(
            {
                "a": PatchDiscriminator(c, self.size, cfg.base_channels, cfg.d_layers),
                "b": PatchDiscriminator(c, self.size, cfg.base_channels, cfg.d_layers),
            }
        )
        self.pools = nn.ModuleDict(
            {"a": HistoryPool(cfg.pool_size, self.info.shape), "b": HistoryPool(cfg.pool_size, self.info.shape)}
        )

    def translate_unit(self, x, condition=None):
        return self.generators["ab"](x)

    def translate_back(self, x: torch.Tensor) -> torch.Tensor:
        """F: B -> A on discrete images."""
        with torch.no_grad():
            return self.discrete(self.generators["ba"](self.unit(x)))

    def lr_scale(self, step: int, total: int) -> float:
        """1 for the first ``decay_start`` of the steps, then linearly down to 0 at the last step."""
        start = int(self.config.decay_start * total)
        if step < start or total <= start:
            return 1.0
        return 1.0 - (step - start) / (total - start)

    # -- the losses -----------------------------------------------------------------------------------
    def cycle_loss(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """E |F(G(a)) - a|_1 + E |G(F(b)) - b|_1, means per sub-pixel of [-1, 1] images (eq. 2)."""
        g, f = self.generators["ab"], self.generators["ba"]
        return (f(g(a)) - a).abs().mean() + (g(f(b)) - b).abs().mean()

    def identity_loss(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """E |G(b) - b|_1 + E |F(a) - a|_1 (Sec. 5.2)."""
        return (self.generators["ab"](b) - b).abs().mean() + (self.generators["ba"](a) - a).abs().mean()

    def player_loss(self, player, batch):
        cfg = self.config
        a, b = self.pair(batch)  # (B, C, H, W) each, in [-1, 1]; no correspondence is used
        g, f = self.generators["ab"], self.generators["ba"]
        d_a, d_b = self.discriminators["a"], self.discriminators["b"]
        if player == "discriminator":
            with torch.no_grad():
                fake_b, fake_a = self.pools["b"].query(g(a)), self.pools["a"].query(f(b))
            real_b, out_fake_b = d_b(b).flatten(), d_b(fake_b).flatten()
            real_a, out_fake_a = d_a(a).flatten(), d_a(fake_a).flatten()
            loss = 0.5 * (
                discriminator_loss(cfg.loss, real_b, out_fake_b) + discriminator_loss(cfg.loss, real_a, out_fake_a)
            )
            return ModelOutput(
                loss,
                {
                    "d_real": self._shown(torch.cat([real_a, real_b])),
                    "d_fake": self._shown(torch.cat([out_fake_a, out_fake_b])),
                },
            )
        if player != "generator":
            raise GenzooError(f"{self.name} has players discriminator and generator, not {player!r}")
        fake_b, fake_a = g(a), f(b)
        out_b, out_a = d_b(fake_b).flatten(), d_a(fake_a).flatten()
        adv = generator_loss(cfg.loss, out_b) + generator_loss(cfg.loss, out_a)
        cyc = (f(fake_b) - a).abs().mean() + (g(fake_a) - b).abs().mean()  # cycle_loss, reusing the fakes
        loss = adv + cfg.cycle_weight * cyc
        metrics = {"gan": adv.item(), "cycle": cyc.item()}
        if cfg.identity_weight > 0:
            idt = self.identity_loss(a, b)
            loss = loss + cfg.identity_weight * cfg.cycle_weight * idt
            metrics["identity"] = idt.item()
        (grad,) = torch.autograd.grad(adv, fake_b, retain_graph=True)
        metrics.update(
            d_fake=self._shown(torch.cat([out_a, out_b])),
            g_grad_norm=(grad.flatten(1).norm(dim=1).mean() * len(fake_b)).item(),
            sample_spread=sample_spread(fake_b.detach(), b),
        )
        return ModelOutput(loss, metrics)
