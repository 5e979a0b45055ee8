"""Encoder and decoder bodies shared by the autoencoders and the VAE.

Both take ``arch``: ``"mlp"`` or ``"conv"``.

* MLP encoder: flatten -> ``hidden`` fully connected layers (activation after each) -> linear to the
  output size. The MLP decoder mirrors it: code -> ``reversed(hidden)`` -> linear to C_out * H * W.
* Conv encoder: one strided conv per entry of ``channels``; along a side of length n >= 4 the conv is
  4x4, stride 2, padding 1 (n -> n // 2), along a shorter side 3x3, stride 1, padding 1 (n -> n), so
  any H x W works (20x20 Pokemon: 20 -> 10 -> 5; 28x28 MNIST: 28 -> 14 -> 7; 32x32 CIFAR: 32 -> 16 -> 8).
  Then flatten -> ``hidden`` -> linear to the output size.
* Conv decoder: code -> ``reversed(hidden)`` -> linear to the last feature map, then one transposed
  conv per stage in reverse, whose ``output_padding`` (0 or 1) restores the exact side the encoder
  halved (5 -> 10 -> 20, 7 -> 14 -> 28), and a final 3x3 conv to C_out channels: the output is
  exactly H x W for every H, W.

Encoders read ``to_unit(x, info)`` images (:mod:`genzoo.data.continuous`); what the decoder's
C_out channels mean is up to the model (a likelihood head's parameters, or the mean image).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch import nn

from genzoo.nn.mlp import mlp

Arch = Literal["mlp", "conv"]
Activation = Literal["relu", "tanh"]


@dataclass
class CoderConfig:
    """The settings every encoder/decoder model shares (model Configs extend it)."""

    arch: Arch = "conv"
    channels: tuple[int, ...] = (32, 64)  # conv: output channels of each strided conv
    hidden: tuple[int, ...] = (256,)  # fully connected widths (mlp: the whole body; conv: after the convs)
    activation: Activation = "relu"
    latent_dim: int = 16

    def __post_init__(self):
        if self.arch not in ("mlp", "conv"):
            raise ValueError(f"arch must be 'mlp' or 'conv', got {self.arch!r}")
        if self.activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be 'relu' or 'tanh', got {self.activation!r}")
        if self.arch == "conv" and not self.channels:
            raise ValueError("a conv coder needs at least one entry in channels")
        if any(c < 1 for c in self.channels) or any(h < 1 for h in self.hidden):
            raise ValueError("channels and hidden sizes must be >= 1")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")


def make_activation(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.Tanh()


def _side_plan(n: int) -> tuple[int, int, int]:
    """(kernel, stride, output side) of one encoder stage along a side of length n."""
    return (4, 2, n // 2) if n >= 4 else (3, 1, n)


def conv_sizes(height: int, width: int, stages: int) -> list[tuple[int, int]]:
    """Feature-map sides before and after each stage: [(H, W), (H1, W1), ...], stages + 1 entries."""
    sizes = [(height, width)]
    for _ in range(stages):
        h, w = sizes[-1]
        sizes.append((_side_plan(h)[2], _side_plan(w)[2]))
    return sizes


class Encoder(nn.Module):
    """Images (B, C_in, H, W) in [0, 1] -> vectors (B, out_dim)."""

    def __init__(self, in_channels: int, height: int, width: int, out_dim: int, cfg: CoderConfig):
        super().__init__()
        layers: list[nn.Module] = []
        act = partial(make_activation, cfg.activation)
        if cfg.arch == "conv":
            sizes = conv_sizes(height, width, len(cfg.channels))
            prev = in_channels
            for (h, w), c in zip(sizes[:-1], cfg.channels):
                (kh, sh, _), (kw, sw, _) = _side_plan(h), _side_plan(w)
                layers += [nn.Conv2d(prev, c, (kh, kw), (sh, sw), padding=1), make_activation(cfg.activation)]
                prev = c
            flat = prev * sizes[-1][0] * sizes[-1][1]
        else:
            flat = in_channels * height * width
        layers.append(nn.Flatten())
        layers += mlp([flat, *cfg.hidden, out_dim], act, last_activation=False)
        self.net = nn.Sequential(*layers)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.net(u)  # (B, out_dim)


class Decoder(nn.Module):
    """Codes (B, code_dim) -> maps (B, out_channels, H, W), exactly the data's H x W."""

    def __init__(self, code_dim: int, out_channels: int, height: int, width: int, cfg: CoderConfig):
        super().__init__()
        self.out_channels, self.height, self.width = out_channels, height, width
        self.start: tuple[int, int, int] | None
        self.ups: nn.Module
        act = partial(make_activation, cfg.activation)
        if cfg.arch == "conv":
            sizes = conv_sizes(height, width, len(cfg.channels))
            hn, wn = sizes[-1]
            self.start = (cfg.channels[-1], hn, wn)
            fc = mlp([code_dim, *reversed(cfg.hidden), cfg.channels[-1] * hn * wn], act)
            ups: list[nn.Module] = []
            outs = list(reversed(cfg.channels[:-1])) + [cfg.channels[0]]  # channels after each transposed conv
            prev = cfg.channels[-1]
            for i, c in enumerate(outs):
                (h_in, w_in), (h_out, w_out) = sizes[-1 - i], sizes[-2 - i]
                (kh, sh, _), (kw, sw, _) = _side_plan(h_out), _side_plan(w_out)
                pad = (h_out - sh * h_in if sh == 2 else 0, w_out - sw * w_in if sw == 2 else 0)
                ups += [
                    nn.ConvTranspose2d(prev, c, (kh, kw), (sh, sw), padding=1, output_padding=pad),
                    make_activation(cfg.activation),
                ]
                prev = c
            ups.append(nn.Conv2d(prev, out_channels, 3, padding=1))
            self.fc, self.ups = nn.Sequential(*fc), nn.Sequential(*ups)
        else:
            self.start = None
            self.fc = nn.Sequential(
                *mlp([code_dim, *reversed(cfg.hidden), out_channels * height * width], act, last_activation=False)
            )
            self.ups = nn.Identity()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z)  # (B, F)
        shape = self.start if self.start is not None else (self.out_channels, self.height, self.width)
        return self.ups(h.view(len(z), *shape))  # (B, out_channels, H, W)
