"""Wasserstein GANs: DCGAN's networks with the Wasserstein loss, kept Lipschitz by weight clipping or by
a gradient penalty. Two papers, registered as two models over one class:

* ``wgan`` -- Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN", arXiv:1701.07875, Algorithm 1. The
  critic f maximises E f(x) - E f(G(z)) (an estimate of the Wasserstein-1 distance up to the Lipschitz
  constant), so it minimises E f(G(z)) - E f(x); after every critic update each weight is clipped to
  [-c, c], c = 0.01 (``clip``). G minimises -E f(G(z)). n_critic = 5 critic updates per generator update
  (``d_steps``), RMSProp with lr 5e-5 for both.
* ``wgan_gp`` -- Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville 2017, "Improved Training of Wasserstein
  GANs", arXiv:1704.00028, Algorithm 1. No clipping; the critic's loss gains
  lambda E (||grad f(x_hat)||_2 - 1)^2 with x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1] drawn per sample,
  lambda = 10 (``gp_weight``); n_critic = 5; Adam with lr 1e-4, beta1 = 0, beta2 = 0.9. The penalty is
  per sample, so the critic has no batch norm (Sec. 4: layer norm instead, ``d_norm=layer``).

Both critics output an unbounded score (no sigmoid); ``discriminator/wasserstein`` logs E f(x) - E f(G(z)).
The 2-D presets (``ring``, ``grid``) use the fully connected nets of every GAN's 2-D presets (two hidden
layers of 128, z of 256 dimensions, batches of 512; Metz et al. 2016), not the WGAN-GP authors' toy nets
(three ReLU layers of 512, z of 2), which cost some 20x more per step on a CPU; from their toy script
they keep lambda = 0.1 and Adam(1e-4, beta1 = 0.5, beta2 = 0.9) for ``wgan_gp``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from genzoo.losses.gan import LossName
from genzoo.models.gan.dcgan import IMAGE_PRESETS, DCGANConfig
from genzoo.models.gan.gan import GAN
from genzoo.models.registry import register_model

# The 2-D mixtures: the unrolled GAN paper's networks, shared by every GAN's ring/grid preset so that
# benchmark rows differ only in the loss; each loss keeps its own optimiser.
TOY_NETS = {"arch": "mlp", "latent_dim": 256, "g_hidden": (128, 128), "d_hidden": (128, 128), "batch_size": 512}
# The WGAN-GP authors' toy script: lambda = 0.1 and Adam(1e-4, beta1 = 0.5, beta2 = 0.9).
TOY_GP = {**TOY_NETS, "gp_weight": 0.1, "betas": (0.5, 0.9)}


@dataclass
class WGANConfig(DCGANConfig):
    loss: LossName = "wasserstein"
    clip: float = 0.01
    d_steps: int = 5
    optim: Literal["adam", "rmsprop", "sgd"] | None = "rmsprop"
    d_lr: float | None = 5e-5
    g_lr: float | None = 5e-5
    betas: tuple[float, float] | None = None


@register_model("wgan")
class WGAN(GAN):
    """DCGAN nets, Wasserstein loss, critic weights clipped to [-clip, clip]."""

    paper = "Arjovsky, Chintala & Bottou 2017, Wasserstein GAN, arXiv:1701.07875"
    Config = WGANConfig
    presets = {
        **{k: dict(v) for k, v in IMAGE_PRESETS.items()},
        "tiny": {**IMAGE_PRESETS["tiny"], "d_steps": 2},
        "ring": dict(TOY_NETS),
        "grid": dict(TOY_NETS),
    }


@dataclass
class WGANGPConfig(DCGANConfig):
    loss: LossName = "wgan_gp"
    gp_weight: float = 10.0
    d_norm: Literal["batch", "layer", "none"] = "layer"
    d_steps: int = 5
    optim: Literal["adam", "rmsprop", "sgd"] | None = "adam"
    d_lr: float | None = 1e-4
    g_lr: float | None = 1e-4
    betas: tuple[float, float] | None = (0.0, 0.9)


@register_model("wgan_gp")
class WGANGP(GAN):
    """DCGAN nets (layer norm in the critic), Wasserstein loss plus the per-sample gradient penalty."""

    paper = (
        "Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville 2017, Improved Training of Wasserstein GANs, arXiv:1704.00028"
    )
    Config = WGANGPConfig
    presets = {
        **{k: dict(v) for k, v in IMAGE_PRESETS.items()},
        "tiny": {**IMAGE_PRESETS["tiny"], "d_steps": 2},
        "ring": dict(TOY_GP),
        "grid": dict(TOY_GP),
    }
