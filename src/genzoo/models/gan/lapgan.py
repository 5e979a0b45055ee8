"""LAPGAN (Denton, Chintala, Szlam & Fergus 2015, "Deep Generative Image Models using a Laplacian Pyramid
of Adversarial Networks", arXiv:1506.05751): a Laplacian pyramid of GANs that draws an image coarse to fine.

The image I is decomposed into K levels (:mod:`genzoo.nn.laplacian`): band-pass images
h_k = I_k - u(I_{k+1}) for k < K-1 and the low-pass I_{K-1} at 1/2^(K-1) of the size. Level K-1 is a
plain GAN of I_{K-1} (the GAN core's fully connected nets, ``latent_dim`` of noise, as the paper's
8x8 CIFAR-10 level); every finer level k is a conditional GAN of the band given the upsampled coarser
image l_k = u(I_{k+1}) (Sec. 3.2):

    G_k(z_k, l_k) = h~_k,   D_k(h_k or h~_k, l_k),

with z_k ``noise_channels`` planes of N(0, 1) noise beside l_k. Training (Sec. 3.2): each level is its
own GAN on the pyramid of real images -- D_k sees the real band h_k and the generated h~_k, both given
the *real* l_k -- so the levels do not depend on each other while training. Their losses are summed
into one loss per player (``discriminator``: every D_k, ``generator``: every G_k); the levels share no
weight, so this is K independent games under one optimiser per player. Any of the logistic or hinge
losses of :mod:`genzoo.losses.gan` applies at every level.

Sampling, coarse to fine (eq. 3): I~_{K-1} = G_{K-1}(z_{K-1}), then I~_k = u(I~_{k+1}) + G_k(z_k,
u(I~_{k+1})). The model's code is all the noise, [z_{K-1}, z_{K-2} planes, ..., z_0 planes] flattened
(``latent_dim`` is its length), so ``decode`` is this chain and the GAN core's sampling, completion
and code-fitting ``encode`` work unchanged; :meth:`LAPGAN.pyramid_samples` returns every level.

Metrics: ``d_real``/``d_fake`` and ``g_grad_norm`` averaged over the levels, the same per level as
``d_real_k``/``d_fake_k`` (k = 0 the finest), and ``sample_spread`` of the coarsest level (the
unconditional one, where collapse shows).

Presets: ``cifar_paper`` the paper's CIFAR-10 nets (Sec. 4: 8x8 level fully connected, 1200-unit
layers in G, 600 in D; 16x16 and 32x32 levels 5x5 convolutions, 128 maps, noise as one extra plane;
Adam 2e-4, beta1 0.5 in place of the paper's SGD with momentum); ``cifar`` the same 8 -> 16 -> 32
pyramid CPU-sized; ``fashion`` 7 -> 14 -> 28; ``tiny`` for tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from genzoo.errors import GenzooError
from genzoo.losses.gan import discriminator_loss, generator_loss
from genzoo.models.base import ModelOutput
from genzoo.models.gan.gan import GAN, GANConfig, sample_spread
from genzoo.models.registry import register_model
from genzoo.nn.gan_nets import MLPDiscriminator, MLPGenerator
from genzoo.nn.laplacian import (
    BandDiscriminator,
    BandGenerator,
    check_pyramid,
    decompose,
    gaussian_pyramid,
    upsample,
)


@dataclass
class LAPGANConfig(GANConfig):
    levels: int = 3  # pyramid levels K; the coarsest image is 1/2^(K-1) of the data's size
    band_g_hidden: tuple[int, ...] = (64, 64)  # conv widths of each conditional level's G
    band_d_hidden: tuple[int, ...] = (64, 64)  # conv widths of each conditional level's D
    noise_channels: int = 1  # noise planes beside l_k at each conditional level
    kernel: int = 5  # conv kernel side of the conditional levels (odd)

    def __post_init__(self):
        super().__post_init__()
        self.band_g_hidden = tuple(int(h) for h in self.band_g_hidden)
        self.band_d_hidden = tuple(int(h) for h in self.band_d_hidden)
        if self.levels < 2:
            raise ValueError(f"levels must be >= 2 (one plain GAN is `gan`), got {self.levels}")
        if not self.band_g_hidden or not self.band_d_hidden or min(self.band_g_hidden + self.band_d_hidden) < 1:
            raise ValueError("band_g_hidden and band_d_hidden need at least one width, each >= 1")
        if self.noise_channels < 1:
            raise ValueError(f"noise_channels must be >= 1, got {self.noise_channels}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and >= 1, got {self.kernel}")
        if self.arch != "mlp":
            raise ValueError("lapgan's coarsest level uses the fully connected nets (arch=mlp), as in the paper")
        if self.loss not in ("minimax", "non_saturating", "hinge") or self.unrolled_steps or self.clip:
            raise ValueError(
                "lapgan plays the logistic or hinge game at every level: loss=minimax, non_saturating or "
                "hinge, without unrolling or clipping"
            )


class PyramidGenerator(nn.Module):
    """The whole code (B, latent) -> the finest image (B, C, H, W), drawn coarse to fine."""

    def __init__(self, coarse: nn.Module, bands: list[BandGenerator], sizes: list[int], noise_dim: int):
        super().__init__()
        self.coarse = coarse  # G_{K-1}
        self.bands = nn.ModuleList(bands)  # G_0 (finest) .. G_{K-2}
        self.sizes = sizes  # code entries of z_0 .. z_{K-2}
        self.noise_dim = noise_dim  # entries of z_{K-1}

    def split(self, z: torch.Tensor) -> list[torch.Tensor]:
        """[z_0, ..., z_{K-1}] (finest first) from the code [z_{K-1}, z_{K-2}, ..., z_0]."""
        parts = list(torch.split(z, [self.noise_dim, *reversed(self.sizes)], dim=1))
        return list(reversed(parts))

    def levels(self, z: torch.Tensor) -> list[torch.Tensor]:
        """[I~_0, ..., I~_{K-1}]: the sample at every level (finest first)."""
        codes = self.split(z)
        image = self.coarse(codes[-1])  # (B, C, H / 2^(K-1), W / 2^(K-1))
        out = [image]
        for k in range(len(self.bands) - 1, -1, -1):
            coarse = upsample(image)  # l_k (B, C, H_k, W_k)
            image = coarse + self.bands[k](codes[k], coarse)
            out.append(image)
        return out[::-1]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.levels(z)[0]


class PyramidDiscriminator(nn.Module):
    """D_{K-1} on the low-pass image and D_0 .. D_{K-2} on the bands given the upsampled coarser image."""

    def __init__(self, coarse: nn.Module, bands: list[BandDiscriminator]):
        super().__init__()
        self.coarse = coarse
        self.bands = nn.ModuleList(bands)


@register_model("lapgan")
class LAPGAN(GAN):
    """A pyramid of GANs: a plain GAN at the coarsest level, a conditional GAN of each finer band."""

    paper = (
        "Denton, Chintala, Szlam & Fergus 2015, Deep Generative Image Models using a Laplacian Pyramid of "
        "Adversarial Networks, arXiv:1506.05751"
    )
    Config = LAPGANConfig
    generator: PyramidGenerator
    discriminator: PyramidDiscriminator
    presets = {
        "tiny": {
            "levels": 2,
            "latent_dim": 4,
            "g_hidden": (16,),
            "d_hidden": (16,),
            "band_g_hidden": (4,),
            "band_d_hidden": (4,),
            "kernel": 3,
            "batch_size": 8,
            "lr": 1e-3,
        },
        "cifar_paper": {
            "levels": 3,
            "latent_dim": 100,
            "g_hidden": (1200, 1200),
            "d_hidden": (600, 600),
            "band_g_hidden": (128, 128),
            "band_d_hidden": (128, 128),
            "kernel": 5,
            "optim": "adam",
            "d_lr": 2e-4,
            "g_lr": 2e-4,
            "betas": (0.5, 0.999),
            "batch_size": 128,
        },
        "cifar": {
            "levels": 3,
            "latent_dim": 100,
            "g_hidden": (512, 512),
            "d_hidden": (256, 256),
            "band_g_hidden": (32, 32),
            "band_d_hidden": (32, 32),
            "kernel": 3,
            "optim": "adam",
            "d_lr": 2e-4,
            "g_lr": 2e-4,
            "betas": (0.5, 0.999),
            "batch_size": 64,
        },
        "fashion": {
            "levels": 3,
            "latent_dim": 64,
            "g_hidden": (256, 256),
            "d_hidden": (256, 256),
            "band_g_hidden": (32, 32),
            "band_d_hidden": (32, 32),
            "kernel": 3,
            "optim": "adam",
            "d_lr": 2e-4,
            "g_lr": 2e-4,
            "betas": (0.5, 0.999),
            "batch_size": 64,
        },
    }

    def __init__(self, config: LAPGANConfig, info):
        try:
            check_pyramid(info.height, info.width, config.levels)
        except GenzooError as e:
            raise GenzooError(f"lapgan: {e}; choose fewer levels (--set levels=N)") from None
        super().__init__(config, info)

    # -- the pyramid's shapes ---------------------------------------------------------------------
    def level_shape(self, k: int) -> tuple[int, int, int]:
        """(C', H_k, W_k) of level k (0 = the data's size)."""
        c, h, w = self.shape
        return c, h >> k, w >> k

    @property
    def band_code_sizes(self) -> list[int]:
        """Code entries of z_0 .. z_{K-2}: ``noise_channels`` planes at each band's size."""
        n = self.config.noise_channels
        return [n * math.prod(self.level_shape(k)[1:]) for k in range(self.config.levels - 1)]

    @property
    def latent_dim(self) -> int:
        return int(self.config.latent_dim) + sum(self.band_code_sizes)

    # -- networks ---------------------------------------------------------------------------------
    def build_generator(self) -> PyramidGenerator:
        cfg = self.config
        coarse_shape = self.level_shape(cfg.levels - 1)
        coarse = MLPGenerator(cfg.latent_dim, coarse_shape, cfg.g_hidden, tanh=self.squash)
        c = self.shape[0]
        bands = [BandGenerator(c, cfg.noise_channels, cfg.band_g_hidden, cfg.kernel) for _ in range(cfg.levels - 1)]
        return PyramidGenerator(coarse, bands, self.band_code_sizes, cfg.latent_dim)

    def build_discriminator(self) -> PyramidDiscriminator:
        cfg = self.config
        # the coarsest level is a plain GAN: minibatch discrimination, when asked for, acts there
        coarse = MLPDiscriminator(self.level_shape(cfg.levels - 1), cfg.d_hidden, cfg.minibatch_features)
        bands = [BandDiscriminator(self.level_shape(k), cfg.band_d_hidden, cfg.kernel) for k in range(cfg.levels - 1)]
        return PyramidDiscriminator(coarse, bands)

    # -- pixels -----------------------------------------------------------------------------------
    def decode_unit(self, z, condition=None):
        self.check_condition(condition)
        y = self.generator(z)  # (B, C', H, W): a sum of levels, so it may leave [-1, 1]
        return y if self.info.continuous else ((y + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def pyramid_samples(self, n: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """n samples at every level, [I~_0 (finest), ..., I~_{K-1}], in [0, 1] (continuous data: as drawn)."""
        was_training = self.training
        self.eval()
        try:
            levels = self.generator.levels(self.prior(n, generator))
        finally:
            self.train(was_training)
        return levels if self.info.continuous else [((y + 1) / 2).clamp(0, 1) for y in levels]

    # -- the game ---------------------------------------------------------------------------------
    def _level_outputs(self, real: torch.Tensor, z: torch.Tensor, detach_fakes: bool):
        """Per level (finest first): (D on the real, D on the fake, the fake) given the real pyramid."""
        g, d = self.generator, self.discriminator
        levels = self.config.levels
        bands, gauss, codes = decompose(real, levels), gaussian_pyramid(real, levels), g.split(z)
        out = []
        for k in range(levels - 1):
            coarse = upsample(gauss[k + 1])  # l_k from the real image (B, C', H_k, W_k)
            fake = g.bands[k](codes[k], coarse)  # h~_k
            if detach_fakes:
                fake = fake.detach()
            out.append((d.bands[k](bands[k], coarse), d.bands[k](fake, coarse), fake))
        fake = g.coarse(codes[-1])  # I~_{K-1}
        if detach_fakes:
            fake = fake.detach()
        out.append((d.coarse(bands[-1]), d.coarse(fake), fake))
        return out, bands[-1]

    def player_loss(self, player, batch):
        cfg = self.config
        real = self.real_input(batch["x"])  # (B, C', H, W)
        z = self.prior(len(real))  # (B, latent): the global RNG, which the trainer seeds and checkpoints
        if player == "discriminator":
            outs, _ = self._level_outputs(real, z, detach_fakes=True)
            loss = sum(discriminator_loss(cfg.loss, r, f) for r, f, _ in outs)
            metrics = {
                "d_real": sum(self._shown(r) for r, _, _ in outs) / len(outs),
                "d_fake": sum(self._shown(f) for _, f, _ in outs) / len(outs),
                **{f"d_real_{k}": self._shown(r) for k, (r, _, _) in enumerate(outs)},
                **{f"d_fake_{k}": self._shown(f) for k, (_, f, _) in enumerate(outs)},
            }
            return ModelOutput(loss, metrics)
        if player != "generator":
            raise GenzooError(f"{self.name} has players discriminator and generator, not {player!r}")
        outs, coarse_real = self._level_outputs(real, z, detach_fakes=False)
        loss = sum(generator_loss(cfg.loss, f) for _, f, _ in outs)
        fakes = [fake for _, _, fake in outs]
        grads = torch.autograd.grad(loss, fakes, retain_graph=True)  # one per level
        norms = [(gr.flatten(1).norm(dim=1).mean() * len(gr)).item() for gr in grads]
        metrics = {
            "d_fake": sum(self._shown(f) for _, f, _ in outs) / len(outs),
            "g_grad_norm": sum(norms) / len(norms),
            "sample_spread": sample_spread(fakes[-1].detach(), coarse_real),
            **{f"d_fake_{k}": self._shown(f) for k, (_, f, _) in enumerate(outs)},
        }
        return ModelOutput(loss, metrics)
