"""pix2pix (Isola, Zhu, Zhou & Efros 2017, "Image-to-Image Translation with Conditional Adversarial
Networks", arXiv:1611.07004): a conditional GAN whose generator translates an input image x into an
output image y and whose discriminator judges (x, y) pairs patch by patch.

The objective (eq. 4): G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G), with
L_cGAN = E log D(x, y) + E log(1 - D(x, G(x, z))) (eq. 1) and L_L1 = E ||y - G(x, z)||_1 (eq. 3),
lambda = 100 (``l1_weight``). The GAN terms are the named losses of :mod:`genzoo.losses.gan`
(``loss``, default ``non_saturating``: G maximises log D(x, G(x)), as the paper trains it), taken over
every patch score; D's loss is halved (Sec. 3.3, "we divide the objective by 2 while optimizing D").
z is the dropout of the generator's decoder, kept at test time (:class:`~genzoo.nn.translation_nets.NoiseDropout`).

Networks (:mod:`genzoo.nn.translation_nets`): the U-Net generator with skips and the 70x70 PatchGAN
(``d_layers = 3``) reading x and y stacked as channels. Instance norm stands for the paper's batch norm
at batch size 1 (the paper's setting; the two are the same there). ``gan_weight = 0`` (preset ``l1``) is
the paper's L1-only baseline (Table 1, "L1"): the U-Net alone, no discriminator is built or trained.

Training follows the GAN core: players ``discriminator`` then ``generator`` (``d_steps`` : 1), Adam with
lr 2e-4 and betas (0.5, 0.999) (Sec. 3.3), the core's optimiser overrides and diagnostics. Batches come
from a paired data kind (``paired:PATH``: ``x`` the input, ``target`` its counterpart).

Inference: :meth:`Pix2Pix.translate` (the :class:`~genzoo.models.base.Translates` capability), also
``sample(n, inputs=x)``; the dropout masks come from ``generator``, so a seed fixes the output.
There is no prior over inputs, so ``sample`` without ``inputs`` and ``complete`` are refused.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from genzoo.data.base import ImageInfo
from genzoo.data.continuous import from_unit, to_unit
from genzoo.errors import GenzooError
from genzoo.losses.gan import LOSSES, LossName, discriminator_loss, generator_loss
from genzoo.models.base import AdversarialModel, ModelOutput, Translates
from genzoo.models.gan.gan import GAN, sample_spread
from genzoo.models.registry import register_model
from genzoo.nn.translation_nets import PatchDiscriminator, UNetGenerator

# the data shape the shared model suite builds translation models for (RGB, 32x32: the 70x70 PatchGAN of
# the paper presets needs at least 24x24)
TRANSLATION_TEST_INFO = ImageInfo(channels=3, height=32, width=32, num_values=256)


@dataclass
class TranslationGANConfig:
    """What pix2pix and CycleGAN share: the named GAN loss, the PatchGAN, the k:1 schedule and Adam."""

    loss: LossName = "non_saturating"
    base_channels: int = 64  # width next to the image (C64), doubling inwards up to 8x, in G and D
    d_layers: int = 3  # PatchGAN stride-2 layers: 3 -> 70x70 patches, 2 -> 34x34, 1 -> 16x16
    d_steps: int = 1  # discriminator updates per generator update
    optim: Literal["adam", "rmsprop", "sgd"] | None = "adam"
    d_lr: float | None = 2e-4
    g_lr: float | None = 2e-4
    betas: tuple[float, float] | None = (0.5, 0.999)

    def __post_init__(self):
        if self.betas is not None:
            self.betas = tuple(float(b) for b in self.betas)
        if self.loss not in LOSSES or LOSSES[self.loss].output == "energy" or LOSSES[self.loss].penalty:
            raise ValueError(f"loss must be a logistic, hinge, wasserstein or least_squares loss, got {self.loss!r}")
        if self.base_channels < 1 or self.d_steps < 1:
            raise ValueError("base_channels and d_steps must be >= 1")
        if not 0 <= self.d_layers <= 6:
            raise ValueError(f"d_layers must be 0-6, got {self.d_layers}")
        for key in ("d_lr", "g_lr"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                raise ValueError(f"{key} must be > 0 (or none for the trainer's lr)")
        if self.betas is not None and (len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas)):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")


@dataclass
class Pix2PixConfig(TranslationGANConfig):
    l1_weight: float = 100.0  # lambda of eq. 4
    gan_weight: float = 1.0  # 0: the L1-only U-Net baseline (no discriminator)
    depth: int = 8  # U-Net levels (8 takes 256x256 down to 1x1); capped at log2 of the image side
    dropout: float = 0.5  # the noise: dropout on the three innermost decoder layers, train and test

    def __post_init__(self):
        super().__post_init__()
        if self.l1_weight < 0 or self.gan_weight < 0 or self.l1_weight + self.gan_weight == 0:
            raise ValueError("l1_weight and gan_weight must be >= 0, not both 0")
        if not 1 <= self.depth <= 10:
            raise ValueError(f"depth must be 1-10, got {self.depth}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class TranslationGAN(AdversarialModel, Translates):
    """The shared part of the translation GANs: pixels in [-1, 1], the paired batch, translate/sample,
    and the GAN core's schedule, optimiser overrides and diagnostics (:class:`~genzoo.models.gan.gan.GAN`)."""

    family = "gan"
    players = ("discriminator", "generator")
    sample_options: ClassVar[frozenset[str]] = frozenset({"progress", "inputs"})
    test_info = TRANSLATION_TEST_INFO

    # the GAN core's pieces, shared rather than copied: they read only loss, d_steps, optim, d_lr, g_lr, betas
    schedule = GAN.schedule
    optimizer_overrides = GAN.optimizer_overrides
    gan_loss = GAN.gan_loss
    _shown = GAN._shown
    diagnose = GAN.diagnose

    def __init__(self, config, info):
        if info.continuous or info.palette is not None:
            raise GenzooError(f"{self.name}: translates images with levels per channel (paired:PATH, unpaired:...)")
        super().__init__(config, info)
        self.size = (info.height, info.width)
        try:
            self.build()
        except GenzooError as e:
            raise GenzooError(f"{self.name}: {e}") from None

    @abc.abstractmethod
    def build(self) -> None:
        """Make the players' networks for ``self.size`` (each translation model its own)."""

    # -- pixels -------------------------------------------------------------------------------
    def unit(self, x: torch.Tensor) -> torch.Tensor:
        """Discrete images -> [-1, 1] floats."""
        return to_unit(x.to(self.device), self.info).to(self.dtype) * 2 - 1

    def discrete(self, y: torch.Tensor) -> torch.Tensor:
        """[-1, 1] floats -> discrete images."""
        return from_unit((y + 1) / 2, self.info)

    def pair(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's inputs and targets in [-1, 1]; a batch without targets is refused by name."""
        if "target" not in batch:
            raise GenzooError(
                f"{self.name}: the batch has no 'target' images; train it on paired:PATH or unpaired:PATH_A,PATH_B"
            )
        return self.unit(batch["x"]), self.unit(batch["target"])

    # -- inference ------------------------------------------------------------------------------
    @abc.abstractmethod
    def translate_unit(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """[-1, 1] inputs (N, C, H, W) -> [-1, 1] outputs (N, C, H, W), differentiable."""

    def translate(self, x, *, generator=None, condition=None):
        shape = tuple(self.info.shape)
        if not torch.is_tensor(x) or x.dim() != 4 or tuple(x.shape[1:]) != shape or len(x) < 1:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise GenzooError(f"translate: images must have shape (N, {', '.join(map(str, shape))}), got {got}")
        self.check_condition(condition)
        seed = None  # the generator's noise (pix2pix's dropout) from the caller's generator, on its device
        if generator is not None:
            seed = int(torch.randint(2**62, (), generator=generator, device=generator.device))
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []  # its RNG is seeded too
        with torch.no_grad(), torch.random.fork_rng(devices=cuda):
            if seed is not None:
                torch.manual_seed(seed)
            return self.discrete(self.translate_unit(self.unit(x), condition))

    def _sample(self, n, *, generator=None, temperature=1.0, condition=None, progress=False, inputs=None):
        if inputs is None:
            raise GenzooError(
                f"{self.name} translates given images and has no prior over inputs: pass inputs=images "
                "(sample(n, inputs=x)) or call translate(x)"
            )
        if torch.is_tensor(inputs) and len(inputs) != n:
            raise GenzooError(f"sample: {len(inputs)} inputs for {n} images")
        return self.translate(inputs, generator=generator, condition=condition)

    def _complete(self, x, known, *, generator=None, temperature=1.0, condition=None, progress=False, inputs=None):
        raise GenzooError(f"{self.name} translates whole images; it does not complete partly hidden ones")


@register_model("pix2pix")
class Pix2Pix(TranslationGAN):
    """U-Net generator + PatchGAN on (input, output) pairs + lambda L1."""

    paper = (
        "Isola, Zhu, Zhou & Efros 2017, Image-to-Image Translation with Conditional Adversarial Networks, "
        "arXiv:1611.07004"
    )
    Config = Pix2PixConfig
    player_modules: ClassVar[dict[str, str]] = {"discriminator": "discriminator", "generator": "generator"}
    presets = {
        "tiny": {"base_channels": 4, "depth": 3, "d_layers": 1, "batch_size": 4, "sample_every": 0},
        # the paper's nets for 256x256 (U-Net-256, 70x70 PatchGAN), batch size 1, 200 epochs on Facades
        "paper": {"batch_size": 1, "epochs": 200, "sample_every": 0},
        "l1": {"gan_weight": 0.0, "l1_weight": 1.0, "batch_size": 1, "epochs": 200, "sample_every": 0},
        # CPU-sized: 64x64 pairs (paired:PATH --size 64), half-width nets, the paper's 70x70 patches
        "cpu": {"base_channels": 32, "batch_size": 4, "sample_every": 0},
        "cpu_l1": {"base_channels": 32, "gan_weight": 0.0, "l1_weight": 1.0, "batch_size": 4, "sample_every": 0},
    }

    def build(self) -> None:
        cfg, c = self.config, self.info.channels
        self.generator = UNetGenerator(c, c, self.size, cfg.base_channels, cfg.depth, cfg.dropout)
        # the L1-only baseline has no discriminator at all
        self.discriminator = (
            PatchDiscriminator(2 * c, self.size, cfg.base_channels, cfg.d_layers) if cfg.gan_weight > 0 else None
        )

    @property
    def schedule(self) -> dict[str, int]:
        if self.config.gan_weight == 0:
            return {"generator": 1}
        return {"discriminator": self.config.d_steps, "generator": 1}

    def translate_unit(self, x, condition=None):
        return self.generator(x)

    def player_loss(self, player, batch):
        cfg = self.config
        src, tgt = self.pair(batch)  # (B, C, H, W) each, in [-1, 1]
        if player == "discriminator" and self.discriminator is not None:
            with torch.no_grad():
                fake = self.generator(src)
            out_real = self.discriminator(torch.cat([src, tgt], 1)).flatten()  # (B * patches,)
            out_fake = self.discriminator(torch.cat([src, fake], 1)).flatten()
            loss = 0.5 * discriminator_loss(cfg.loss, out_real, out_fake)
            return ModelOutput(loss, {"d_real": self._shown(out_real), "d_fake": self._shown(out_fake)})
        if player != "generator":
            raise GenzooError(f"{self.name} has players {', '.join(self.schedule)}, not {player!r}")
        fake = self.generator(src)  # (B, C, H, W)
        l1 = (fake - tgt).abs().mean()
        loss = cfg.l1_weight * l1
        metrics = {"l1": l1.item()}
        if self.discriminator is not None and cfg.gan_weight > 0:
            out_fake = self.discriminator(torch.cat([src, fake], 1)).flatten()
            adv = generator_loss(cfg.loss, out_fake)
            loss = loss + cfg.gan_weight * adv
            (grad,) = torch.autograd.grad(adv, fake, retain_graph=True)
            metrics.update(
                d_fake=self._shown(out_fake),
                g_grad_norm=(grad.flatten(1).norm(dim=1).mean() * len(fake)).item(),
                gan=adv.item(),
            )
        metrics["sample_spread"] = sample_spread(fake.detach(), tgt)
        return ModelOutput(loss, metrics)
