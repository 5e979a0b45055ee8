"""LSTM pieces of the 2-D recurrent PixelRNNs (van den Oord, Kalchbrenner & Kavukcuoglu 2016,
"Pixel Recurrent Neural Networks", arXiv:1601.06759, sections 3.1-3.2).

* :func:`lstm_cell` -- eq. 3: [o, f, i, g] = [sigma, sigma, sigma, tanh](gates),
  c = f * c_prev + i * g, h = o * tanh(c).
* :func:`skew` / :func:`unskew` -- shift row i of a map right by i (sec. 3.2), so that the
  diagonals of the image become the columns of the skewed map.

The masked input-to-state convolutions of the gates are :class:`genzoo.nn.masked.MaskedConv2d` with
``blocks=4`` (one colour-grouped block per gate); the network around the layers is
:class:`genzoo.models.autoregressive._recurrent.RecurrentPixelNet`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lstm_cell(gates: torch.Tensor, c_prev) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3 of the paper on gates (n, 4h, ...) in the order o, f, i, g; returns (h, c)."""
    o, f, i, g = gates.chunk(4, dim=1)  # each (n, h, ...)
    c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def skew(x: torch.Tensor) -> torch.Tensor:
    """(B, F, H, W) -> (B, F, H, W+H-1): row i shifted right by i, zeros elsewhere."""
    b, f, h, w = x.shape
    flat = F.pad(x, (0, h)).flatten(2)  # (B, F, H*(W+H)); padded row i starts at i*(W+H)
    return flat[:, :, : h * (w + h - 1)].view(b, f, h, w + h - 1)  # same index = i*(W+H-1) + (i + j)


def unskew(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`skew`: (B, F, H, W+H-1) -> (B, F, H, W)."""
    b, f, h, wide = x.shape
    w = wide - h + 1
    flat = F.pad(x.flatten(2), (0, h))  # (B, F, H*(W+H))
    return flat.view(b, f, h, w + h)[..., :w]
