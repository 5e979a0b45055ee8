"""DCGAN (Radford, Metz & Chintala 2015, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", arXiv:1511.06434): the GAN game of Goodfellow et al. with
convolutional networks -- :class:`~genzoo.models.gan.gan.GAN` with ``arch=conv`` and the paper's settings.

The architecture guidelines of Sec. 3, as built by :mod:`genzoo.nn.gan_nets`: no pooling (stride-2
convs in D, stride-2 transposed convs in G), batch norm in both nets except G's output layer and D's
input layer, ReLU in G with a tanh output, LeakyReLU(0.2) in D, no fully connected hidden layers (z is
projected and reshaped to the first map; D's last map is read out linearly). Sec. 4: weights from
N(0, 0.02), Adam with lr 2e-4 and beta1 = 0.5 (``optim``, ``d_lr``, ``g_lr``, ``betas``), and the
non-saturating generator loss -log D(G(z)) (``loss``; any named loss may be chosen).

Image sizes: the nets use the largest number n of stride-2 levels with 4 * 2^n <= min(H, W) and
start from a ceil(H / 2^n)-sized map, so 32x32 CIFAR starts at 4x4 (3 levels), 28x28 MNIST at 7x7 and
20x20 Pokemon at 5x5 (2 levels each); a size that is not a multiple of 2^n is drawn at the next
multiple and centre-cropped by G, and zero-padded back by D (see :func:`genzoo.nn.gan_nets.conv_geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from genzoo.losses.gan import LossName
from genzoo.models.gan.gan import GAN, GANConfig
from genzoo.models.registry import register_model


@dataclass
class DCGANConfig(GANConfig):
    latent_dim: int = 100
    loss: LossName = "non_saturating"
    arch: Literal["mlp", "conv"] = "conv"
    base_channels: int = 64
    optim: Literal["adam", "rmsprop", "sgd"] | None = "adam"
    d_lr: float | None = 2e-4
    g_lr: float | None = 2e-4
    betas: tuple[float, float] | None = (0.5, 0.999)


# CPU-sized image presets shared by the DCGAN-shaped models (dcgan, wgan, wgan_gp, ebgan).
IMAGE_PRESETS = {
    "tiny": {"latent_dim": 4, "base_channels": 4, "batch_size": 8},
    "mnist": {"latent_dim": 100, "base_channels": 64, "batch_size": 64},  # 28x28 grey: 128@7 -> 64@14 -> 1@28
    "fashion": {"latent_dim": 100, "base_channels": 64, "batch_size": 64},
    "pokemon": {"latent_dim": 64, "base_channels": 64, "batch_size": 64},  # 20x20 palette: drawn as RGB
    "cifar": {"latent_dim": 100, "base_channels": 64, "batch_size": 64},  # 32x32 RGB: 256@4 -> ... -> 3@32
}


@register_model("dcgan")
class DCGAN(GAN):
    """GAN with DCGAN's convolutional generator and discriminator and the paper's optimiser."""

    paper = (
        "Radford, Metz & Chintala 2015, Unsupervised Representation Learning with Deep Convolutional "
        "Generative Adversarial Networks, arXiv:1511.06434"
    )
    Config = DCGANConfig
    # ``fashion_cpu`` / ``fashion_cpu_hinge``: Fashion-MNIST in about 10 minutes on 2 cores
    # (benchmarks/gan_images.py --preset fashion_cpu --cpu-seconds 1200): half the paper's widths, so the
    # budget holds about four times the updates, with the paper's optimiser; the hinge loss of Lim & Ye 2017
    # (arXiv:1705.02894) as the second.
    presets = {
        **{k: dict(v) for k, v in IMAGE_PRESETS.items()},
        "fashion_cpu": {"latent_dim": 64, "base_channels": 32, "batch_size": 64},
        "fashion_cpu_hinge": {"latent_dim": 64, "base_channels": 32, "batch_size": 64, "loss": "hinge"},
    }
