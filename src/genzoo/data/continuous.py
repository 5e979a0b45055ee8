"""Discrete images <-> continuous pixels, for the models that read or write real values.

Autoregressive models consume the discrete values themselves. Autoencoders, VAE encoders and
GANs work on real numbers instead, so every family converts the same way:

* ``to_unit(x, info)``: discrete (B, C, H, W) -> float in [0, 1] with ``unit_channels(info)``
  channels. Palette indices become their RGB colour (3 channels); grey/RGB levels v become
  v / (K - 1); binary pixels stay 0/1.
* ``from_unit(y, info)``: back to discrete values -- the nearest palette colour (squared RGB
  distance), or the nearest level round(y (K - 1)) (for K = 2 this is the threshold at 0.5).

Continuous data (``info.num_values == 0``, e.g. the 2-D toy mixtures) passes through both
unchanged.
"""

from __future__ import annotations

import torch


def unit_channels(info) -> int:
    """Channels of the continuous view: 3 for palette images, else the data's own."""
    return 3 if info.palette is not None else info.channels


def palette_tensor(info, device=None, dtype=torch.float32) -> torch.Tensor:
    """The palette as (K, 3) floats in [0, 1]."""
    return torch.tensor(info.palette, dtype=dtype, device=device) / 255.0


def to_unit(x: torch.Tensor, info) -> torch.Tensor:
    """Discrete images (B, C, H, W) -> floats in [0, 1], (B, unit_channels, H, W)."""
    if info.num_values == 0:
        return x.float()
    if info.palette is not None:
        pal = palette_tensor(info, x.device)  # (K, 3)
        return pal[x[:, 0].long()].permute(0, 3, 1, 2).contiguous()  # (B, 3, H, W)
    return x.float() / (info.num_values - 1)


def from_unit(y: torch.Tensor, info) -> torch.Tensor:
    """Floats (B, unit_channels, H, W) -> discrete images (B, C, H, W) long (nearest value)."""
    if info.num_values == 0:
        return y
    if info.palette is not None:
        pal = palette_tensor(info, y.device, y.dtype)  # (K, 3)
        flat = y.permute(0, 2, 3, 1).reshape(-1, 3)  # (B*H*W, 3)
        d = (flat * flat).sum(1, keepdim=True) - 2 * flat @ pal.T + (pal * pal).sum(1)  # (B*H*W, K)
        return d.argmin(1).view(y.shape[0], 1, y.shape[2], y.shape[3])
    return (y.clamp(0, 1) * (info.num_values - 1)).round().long()
