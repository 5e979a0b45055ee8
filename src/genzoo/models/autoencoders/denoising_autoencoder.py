"""The denoising autoencoder (Vincent, Larochelle, Bengio & Manzagol 2008, "Extracting and Composing
Robust Features with Denoising Autoencoders", ICML).

The encoder sees a corrupted copy u~ ~ q_D(u~ | u) of the image u = to_unit(x) and the decoder must
give back the clean one:

    L = E_x E_{u~ ~ q_D} ||u - g(f(u~))||^2

Corruptions (``noise``):

* ``mask`` -- masking noise: each input value is set to 0 independently with probability
  ``mask_prob``, the rest are kept (the paper zeroes a fixed number nu * d of the d inputs, chosen
  at random; independent masking destroys the same fraction nu on average);
* ``gaussian`` -- additive isotropic Gaussian noise, u~ = u + noise_std * eps.

(The paper's cross-entropy loss for binary inputs is replaced by the squared error shared by
every autoencoder here.) Corruption is applied in the training loss only; ``encode``,
``reconstruction_error`` and everything after training read clean images. All else is the plain
autoencoder's (:mod:`genzoo.models.autoencoders.autoencoder`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from genzoo.models.autoencoders.autoencoder import AUTOENCODER_PRESETS, AutoencoderBase, AutoencoderConfig
from genzoo.models.registry import register_model


@dataclass
class DenoisingAutoencoderConfig(AutoencoderConfig):
    noise: Literal["mask", "gaussian"] = "mask"
    mask_prob: float = 0.25  # mask: probability that an input value is set to 0
    noise_std: float = 0.1  # gaussian: standard deviation of the added noise, in [0, 1] units

    def __post_init__(self):
        super().__post_init__()
        if self.noise not in ("mask", "gaussian"):
            raise ValueError(f"noise must be 'mask' or 'gaussian', got {self.noise!r}")
        if not 0 <= self.mask_prob < 1:
            raise ValueError(f"mask_prob must be in [0, 1), got {self.mask_prob}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")


NOISE = {
    "mlp": {"noise": "mask", "mask_prob": 0.25},
    "conv": {"noise": "mask", "mask_prob": 0.25},
    "fashion": {"noise": "gaussian", "noise_std": 0.2},
}


@register_model("denoising_autoencoder")
class DenoisingAutoencoder(AutoencoderBase):
    """Reconstruct the clean image from a masked or noisy copy."""

    paper = (
        "Vincent, Larochelle, Bengio & Manzagol 2008, Extracting and Composing Robust Features with "
        "Denoising Autoencoders, ICML"
    )
    Config = DenoisingAutoencoderConfig
    # the plain autoencoder's networks, with the corruption of each preset
    presets = {name: {**preset, **NOISE.get(name, {})} for name, preset in AUTOENCODER_PRESETS.items()}

    def corrupt(self, u, generator=None):
        if self.config.noise == "mask":
            keep = torch.rand(u.shape, generator=generator, device=u.device) >= self.config.mask_prob
            return u * keep  # (B, C', H, W)
        eps = torch.randn(u.shape, generator=generator, device=u.device, dtype=u.dtype)
        return u + self.config.noise_std * eps
