"""EBGAN (Zhao, Mathieu & LeCun 2016, "Energy-based Generative Adversarial Network", arXiv:1609.03126):
the discriminator is an autoencoder and its reconstruction error is an energy, low on real data.

With E(x) = mean_i (Dec(Enc(x))_i - x_i)^2 (per sub-pixel, images in [-1, 1]) the losses are (eq. 1-2)

    L_D = E(x) + [m - E(G(z))]^+        L_G = E(G(z)) + pt_weight * PT(Enc(G(z)))

with margin m (``margin``) and the pulling-away term PT(S) = 1 / (N (N - 1)) sum_{i != j}
(s_i^T s_j / (|s_i| |s_j|))^2 over the encoder codes of the fake batch (the paper's repelling
regularizer; EBGAN-PT, weight 0.1 in the paper). This is :class:`~genzoo.models.gan.gan.GAN` with
``loss=ebgan``, which builds the autoencoder in place of the discriminator: DCGAN-shaped halves for
images (:class:`~genzoo.nn.gan_nets.ConvAutoencoder`), an MLP for the 2-D points. The paper scores E as
a norm of the reconstruction error; genzoo uses the mean square, so the margin is in those units (a
per-sub-pixel squared error of 1, on [-1, 1] pixels, by default). The optimiser is DCGAN's (Adam 2e-4,
beta1 = 0.5); the 2-D presets use the shared 2-D nets with Adam 1e-4.
"""

from __future__ import annotations

from dataclasses import dataclass

from genzoo.losses.gan import LossName
from genzoo.models.gan.dcgan import IMAGE_PRESETS, DCGANConfig
from genzoo.models.gan.gan import GAN
from genzoo.models.registry import register_model


@dataclass
class EBGANConfig(DCGANConfig):
    loss: LossName = "ebgan"
    margin: float = 1.0
    pt_weight: float = 0.1


TOY = {
    "arch": "mlp",
    "latent_dim": 256,
    "g_hidden": (128, 128),
    "d_hidden": (128, 128),
    "d_lr": 1e-4,
    "g_lr": 1e-4,
    "batch_size": 512,
}


@register_model("ebgan")
class EBGAN(GAN):
    """GAN whose discriminator is an autoencoder scoring images by reconstruction error, with a margin."""

    paper = "Zhao, Mathieu & LeCun 2016, Energy-based Generative Adversarial Network, arXiv:1609.03126"
    Config = EBGANConfig
    presets = {**{k: dict(v) for k, v in IMAGE_PRESETS.items()}, "ring": dict(TOY), "grid": dict(TOY)}
