"""Shared pieces of the 2-D recurrent PixelRNNs (van den Oord, Kalchbrenner & Kavukcuoglu 2016,
"Pixel Recurrent Neural Networks", arXiv:1601.06759, sections 3.1-3.4).

* :class:`GroupMaskedConv2d` -- a convolution masked for raster order with colour groups
  (sec. 3.4): the features of every map are split into C contiguous groups, one per input
  channel (R, G, B for C = 3). Kernel taps above the centre row and left of the centre are
  open; the centre tap connects input group i to output group j only if i < j (mask A, first
  layer) or i <= j (mask B, later layers); taps to the right and below are closed.
* :func:`lstm_cell` -- eq. 3: [o, f, i, g] = [sigma, sigma, sigma, tanh](gates),
  c = f * c_prev + i * g, h = o * tanh(c).
* :func:`skew` / :func:`unskew` -- shift row i of a map right by i (sec. 3.2), so that the
  diagonals of the image become the columns of the skewed map.
* :class:`RecurrentPixelNet` -- the network around the recurrent layers (Table 1 of the paper):
  per-channel one-hot inputs times a learned embedding, a 7x7 mask-A convolution, L residual
  recurrent layers (sec. 3.3), ReLU -> 1x1 mask-B conv -> ReLU -> 1x1 mask-B conv to C*K logits.
  It also holds the cached one-position evaluation used for fast sampling.

A recurrent layer (Row LSTM, Diagonal BiLSTM) is an ``nn.Module`` with
``forward(x, bias, pixels) -> x'`` over whole maps ``(B, F, H, W)`` and the cached pair
``init_state(n, H, W, like)`` / ``step(state, x, h, w, bias, pixels) -> x'`` at one position
``(n, F)``. ``bias`` is an optional map added to its input-to-state gates (the multi-scale
model's conditioning, sec. 3.5; ``gate_features`` says how many channels it has).
``pixels`` is the embedded image ``(B, C*E, H, W)``, unmasked: a layer may read it only where
its output is used strictly later (the Diagonal BiLSTM's backward direction, whose rows are
used one row below); in the cached step it holds the finished rows (< h) only.

Cached stepping. For sub-pixel (h, w, c) the net evaluates the whole position (h, w) with
the canvas as it stands: feature group j at (h, w) depends on the pixel's own channels < j
only (mask A first, mask B after), so groups <= c are exact and the logits of channel c are
right. Each layer writes its per-position values (inputs, hidden and cell states) into
full-size maps; later channel steps of the same pixel overwrite them, and the step of the
last channel leaves the exact values, which are the only ones later positions read.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


def feature_groups(n: int, channels: int) -> torch.Tensor:
    """Colour group of each of ``n`` features: contiguous blocks, feature i -> i*C // n."""
    return torch.arange(n) * channels // n  # (n,)


def causal_mask(out_groups: torch.Tensor, in_groups: torch.Tensor, kernel: tuple[int, int],
                kind: Literal["A", "B"]) -> torch.Tensor:
    """(out, in, kh, kw) 0/1 mask for raster order with colour groups, centre (kh//2, kw//2)."""
    kh, kw = kernel
    ch, cw = kh // 2, kw // 2
    mask = torch.zeros(len(out_groups), len(in_groups), kh, kw)
    mask[:, :, :ch, :] = 1.0  # rows above the centre
    mask[:, :, ch, :cw] = 1.0  # left of the centre
    if kind == "A":
        centre = in_groups.unsqueeze(0) < out_groups.unsqueeze(1)  # (out, in)
    elif kind == "B":
        centre = in_groups.unsqueeze(0) <= out_groups.unsqueeze(1)
    else:
        raise ValueError(f"mask kind must be 'A' or 'B', got {kind!r}")
    mask[:, :, ch, cw] = centre.float()
    return mask


class GroupMaskedConv2d(nn.Conv2d):
    """A 'same' convolution masked for raster order with C colour groups (sec. 3.4).

    ``out_blocks`` > 1 splits the output into that many equal blocks (the four LSTM gates),
    each grouped on its own, so gate feature j of every gate belongs to the group of hidden
    unit j. ``at(patch)`` evaluates one output position from its kernel-sized input patch.
    """

    def __init__(self, in_features: int, out_features: int, kernel_size: int | tuple[int, int],
                 kind: Literal["A", "B"], channels: int, out_blocks: int = 1, bias: bool = True):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"masked kernel sizes must be odd, got {kh}x{kw}")
        if out_features % out_blocks:
            raise ValueError("out_features must split into out_blocks equal blocks")
        super().__init__(in_features, out_features, (kh, kw), padding=(kh // 2, kw // 2), bias=bias)
        out_groups = feature_groups(out_features // out_blocks, channels).repeat(out_blocks)
        self.register_buffer("mask", causal_mask(out_groups, feature_groups(in_features, channels), (kh, kw), kind),
                             persistent=False)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)  # (B, out, H, W)

    def at(self, patch: torch.Tensor) -> torch.Tensor:
        """Output at one position from its input patch (n, in, kh, kw) -> (n, out)."""
        return F.linear(patch.flatten(1), (self.weight * self.mask).flatten(1), self.bias)


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


def row_window(row: torch.Tensor, w: int, left: int, right: int) -> torch.Tensor:
    """Columns w-left .. w+right of ``row`` (n, F, W), zero outside the image -> (n, F, left+1+right)."""
    return F.pad(row, (left, right))[..., w: w + left + 1 + right]


class RecurrentPixelNet(nn.Module):
    """Embedding -> 7x7 mask-A conv -> residual recurrent layers -> two 1x1 mask-B convs (Table 1).

    ``layer_factory()`` makes one recurrent layer on ``features`` channels (2h in the paper).
    """

    def __init__(self, layer_factory, *, channels: int, num_values: int, embed: int, features: int,
                 layers: int, head: int, first_kernel: int = 7):
        super().__init__()
        self.channels, self.num_values = channels, num_values
        self.embedding = nn.Parameter(torch.randn(channels, num_values, embed) / embed ** 0.5)  # (C, K, E)
        self.first = GroupMaskedConv2d(channels * embed, features, first_kernel, "A", channels)
        self.layers = nn.ModuleList(layer_factory() for _ in range(layers))
        self.head_hidden = GroupMaskedConv2d(features, head, 1, "B", channels)
        self.head_out = GroupMaskedConv2d(head, channels * num_values, 1, "B", channels)

    @property
    def gate_features(self) -> list[int]:
        """Channels of the optional bias map of each layer's input-to-state gates."""
        return [layer.gate_features for layer in self.layers]

    def embed(self, onehot: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W, K) one-hot -> (B, C*E, H, W): channel c's embedding in group c."""
        e = torch.einsum("bchwk,cke->bcehw", onehot, self.embedding)  # (B, C, E, H, W)
        return e.flatten(1, 2)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_out(F.relu(self.head_hidden(F.relu(x))))

    def forward(self, onehot: torch.Tensor, biases: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Teacher-forced logits (B, C, H, W, K); ``biases[l]`` (B, gate_features[l], H, W) or None."""
        b, c, h, w, k = onehot.shape
        pixels = self.embed(onehot)  # (B, C*E, H, W)
        x = self.first(pixels)  # (B, 2h, H, W)
        for i, layer in enumerate(self.layers):
            x = layer(x, None if biases is None else biases[i], pixels)  # (B, 2h, H, W)
        logits = self._head(x)  # (B, C*K, H, W), channel c's logits in group c
        return logits.view(b, c, k, h, w).permute(0, 1, 3, 4, 2)

    # -- cached one-position evaluation ------------------------------------------------------
    def init_cache(self, n: int, height: int, width: int) -> dict:
        like = self.embedding
        return {"layers": [layer.init_state(n, height, width, like) for layer in self.layers],
                "pixels": like.new_zeros(n, self.first.in_channels, height, width), "pixel_rows": 0}

    def step(self, cache: dict, canvas: torch.Tensor, h: int, w: int, c: int,
             biases: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Logits (n, K) of sub-pixel (c, h, w) given ``canvas`` (n, C, H, W) filled before it."""
        n, _, _, width = canvas.shape
        dtype = self.embedding.dtype
        while cache["pixel_rows"] < h:  # first step of row h: embed the finished row h-1
            r = cache["pixel_rows"]
            row = F.one_hot(canvas[:, :, r:r + 1], self.num_values).to(dtype)  # (n, C, 1, W, K)
            cache["pixels"][:, :, r:r + 1] = self.embed(row)
            cache["pixel_rows"] += 1
        kh, kw = self.first.kernel_size
        top, half = kh // 2, kw // 2
        r0, c0, c1 = max(h - top, 0), max(w - half, 0), min(w + half + 1, width)
        onehot = F.one_hot(canvas[:, :, r0:h + 1, c0:c1], self.num_values).to(dtype)
        patch = canvas.new_zeros(n, self.first.in_channels, kh, kw, dtype=onehot.dtype)  # rows below h stay 0
        patch[:, :, top - (h - r0): top + 1, half - (w - c0): half + (c1 - w)] = self.embed(onehot)
        x = self.first.at(patch)  # (n, 2h)
        for i, (layer, state) in enumerate(zip(self.layers, cache["layers"])):
            x = layer.step(state, x, h, w, None if biases is None else biases[i], cache["pixels"])  # (n, 2h)
        hidden = F.relu(self.head_hidden.at(F.relu(x)[..., None, None]))  # (n, head)
        logits = self.head_out.at(hidden[..., None, None])  # (n, C*K)
        return logits.view(n, self.channels, self.num_values)[:, c]
