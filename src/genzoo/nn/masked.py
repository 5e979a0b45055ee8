"""Masked and causal convolutions for autoregressive image models, and their cached forms: the one
mechanism behind the PixelCNN family and the gates of the 2-D PixelRNNs.

Order: raster scan with channels innermost (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel
Recurrent Neural Networks", arXiv:1601.06759, sec. 3.4). Sub-pixel (r, c, k) may depend on every pixel
above row r, on the pixels left of column c in row r, and on channels < k of pixel (r, c) itself.

Channel groups. The feature channels of every map are split into C contiguous groups, C = image channels
(:func:`channel_groups`; R, G, B for colour). Group k of a map may carry information about channel k of the
current pixel, never about channels > k. At the centre tap a mask-"A" conv lets output group k see input
groups < k (the first layer: the sub-pixel itself stays hidden); a mask-"B" conv lets it see groups <= k
(every later layer). Taps left of the centre in the current row and all taps in the rows above are open;
taps right of the centre and all rows below are closed (:func:`causal_mask`, the one mask builder).
Because rows below the centre are always closed, the weight keeps only the rows up to the centre: a "7x7
masked conv" holds a 4x7 kernel whose last row is masked right of the centre (the same function as the
7x7 conv with its lower three rows zeroed).

Blocks. An output made of ``blocks`` equal parts that are used side by side (the f and g halves of a gated
unit, the o, f, i, g gates of an LSTM) is grouped block by block, so feature j of every block belongs to
the group of unit j.

:class:`CausalConv2d` is the common base: output (r, c) sees input rows r-kh+1..r and columns
c-kw//2..c+kw//2 (zero padding on top and both sides only), times an optional fixed 0/1 mask. Without a mask
it is the vertical-stack conv of the Gated PixelCNN, which sees the whole current row in its window; that
model shifts the result down one row before the horizontal stack may use it.

:class:`ChannelEmbedding` is the input layer of every softmax model here: the per-channel one-hot times a
learned table, channel c's embedding in feature group c.

Cached sampling (Ramachandran et al. 2017, "Fast Generation for Convolutional Autoregressive Models",
arXiv:1704.06001): :class:`IncrementalConv` is a frozen copy of a conv's masked weight, split by output
group, that computes one output position from the kh x kw window of a cached input buffer (``at``), one
whole output row (``row``), or, for 1x1 convs, one pixel's feature vector (``pixel``). Entries the mask
closes may hold stale values of later positions: they are multiplied by zero weights, so buffers must only
hold finite numbers (they start at zero). :meth:`ChannelEmbedding.write_previous` fills the input buffer
one sub-pixel at a time.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.data.base import position

MaskType = Literal["A", "B"]


def channel_groups(n: int, groups: int) -> torch.Tensor:
    """Group of each of ``n`` feature channels split into ``groups`` contiguous, near-equal blocks ``(n,)``.

    ``channel_groups(C * K, C)`` puts logits ``c*K .. c*K+K-1`` in group c.
    """
    return torch.arange(n) * groups // n


def _pair(k) -> tuple[int, int]:
    return (k, k) if isinstance(k, int) else (int(k[0]), int(k[1]))


def causal_mask(
    out_groups: torch.Tensor, in_groups: torch.Tensor, kernel_size: int | tuple[int, int], mask_type: MaskType
) -> torch.Tensor:
    """The 0/1 mask (O, I, kh//2+1, kw) of a kh x kw conv in raster order with channel groups.

    Rows above the centre open; in the centre row, taps left of the centre open, right of it closed; at the
    centre, output group k sees input groups < k (``"A"``) or <= k (``"B"``).
    """
    kh, kw = _pair(kernel_size)
    if kh < 1 or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"masked conv kernel must be odd, got {kh}x{kw}")
    if mask_type == "A":
        centre = out_groups[:, None] > in_groups[None, :]  # (O, I)
    elif mask_type == "B":
        centre = out_groups[:, None] >= in_groups[None, :]
    else:
        raise ValueError(f"mask type must be 'A' or 'B', got {mask_type!r}")
    mask = torch.ones(len(out_groups), len(in_groups), kh // 2 + 1, kw)  # (O, I, kh//2+1, kw)
    mask[:, :, -1, kw // 2 + 1 :] = 0.0  # right of the centre in the current row
    mask[:, :, -1, kw // 2] = centre.float()
    return mask


class ChannelEmbedding(nn.Module):
    """Per-channel one-hot times a learned table: (B, C, H, W, K) -> (B, C*E, H, W).

    Channel c of the image fills feature group c (channels c*E .. c*E+E-1), so the masks of the following
    convs see exactly the sub-pixels they may. The input depends differentiably on the one-hot. The table
    starts as N(0, ``std``^2).
    """

    def __init__(self, channels: int, num_values: int, dim: int, *, std: float = 1.0):
        super().__init__()
        table = torch.randn(channels, num_values, dim)  # (C, K, E)
        self.weight = nn.Parameter(table if std == 1.0 else table * std)

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0] * self.weight.shape[2]

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        b, c, h, w, _ = onehot.shape
        x = torch.einsum("bchwk,cke->bcehw", onehot, self.weight)  # (B, C, E, H, W)
        return x.reshape(b, -1, h, w)  # (B, C*E, H, W)

    def lookup(self, values: torch.Tensor, channel: int) -> torch.Tensor:
        """Embedding of ``values`` (n,) long of image channel ``channel`` -> (n, E); equals ``forward`` there."""
        return self.weight[channel, values]

    def write_previous(self, buffer: torch.Tensor, t: int, canvas: torch.Tensor, info) -> None:
        """Cached sampling: sub-pixel t-1 of ``canvas`` is now known; write its embedding into ``buffer``."""
        if t > 0:
            c, h, w = position(t - 1, info)
            buffer[:, self.group_slice(c), h, w] = self.lookup(canvas[:, c, h, w], c)

    def group_slice(self, channel: int) -> slice:
        e = self.weight.shape[2]
        return slice(channel * e, (channel + 1) * e)


class CausalConv2d(nn.Conv2d):
    """Output (r, c) sees input rows r-kh+1..r, columns c-kw//2..c+kw//2 (kw odd), times ``mask`` if given.

    ``out_groups`` (out_channels,) names the channel group of each output, for group-wise cached steps;
    ``num_groups`` is how many groups there are (the image's channels).
    """

    mask: torch.Tensor | None
    out_groups: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        *,
        mask: torch.Tensor | None = None,
        out_groups: torch.Tensor | None = None,
        num_groups: int = 1,
        bias: bool = True,
    ):
        kh, kw = _pair(kernel_size)
        if kh < 1 or kw < 1 or kw % 2 == 0:
            raise ValueError(f"kernel must be >= 1 with an odd width, got {kh}x{kw}")
        super().__init__(in_channels, out_channels, (kh, kw), padding=0, bias=bias)
        if mask is not None and tuple(mask.shape) != tuple(self.weight.shape):
            raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(self.weight.shape)}")
        if out_groups is None:
            out_groups = torch.zeros(out_channels, dtype=torch.long)
            num_groups = 1
        self.num_groups = num_groups
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("out_groups", out_groups.long(), persistent=False)

    def masked_weight(self) -> torch.Tensor:
        return self.weight if self.mask is None else self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        x = F.pad(x, (kw // 2, kw // 2, kh - 1, 0))  # (B, I, H+kh-1, W+kw-1)
        return F.conv2d(x, self.masked_weight(), self.bias)  # (B, O, H, W)


class MaskedConv2d(CausalConv2d):
    """A kh x kw masked convolution, mask ``"A"`` (centre sub-pixel hidden) or ``"B"`` (centre visible).

    ``image_channels`` = C groups (:func:`channel_groups` of the inputs and of each of the ``blocks`` equal
    parts of the outputs); the mask is :func:`causal_mask`. Stored kernel: (kh//2 + 1) x kw.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        mask_type: MaskType,
        image_channels: int,
        *,
        blocks: int = 1,
        bias: bool = True,
    ):
        kh, kw = _pair(kernel_size)
        if blocks < 1 or out_channels % blocks:
            raise ValueError(f"{out_channels} output channels do not split into {blocks} equal blocks")
        in_groups = channel_groups(in_channels, image_channels)
        out_groups = channel_groups(out_channels // blocks, image_channels).repeat(blocks)
        mask = causal_mask(out_groups, in_groups, (kh, kw), mask_type)
        super().__init__(
            in_channels,
            out_channels,
            (kh // 2 + 1, kw),
            mask=mask,
            out_groups=out_groups,
            num_groups=image_channels,
            bias=bias,
        )
        self.mask_type = mask_type


def output_logits(features: torch.Tensor, hidden: MaskedConv2d, out: MaskedConv2d, channels: int) -> torch.Tensor:
    """The output stack of the PixelCNN family: ReLU -> 1x1 mask-B ``hidden`` -> ReLU -> 1x1 mask-B ``out``
    to C*K logits, channel c's in group c: features (B, F, H, W) -> logits (B, C, H, W, K)."""
    b, _, h, w = features.shape
    logits = out(F.relu(hidden(F.relu(features))))  # (B, C*K, H, W)
    return logits.view(b, channels, -1, h, w).permute(0, 1, 3, 4, 2)


def output_logits_step(
    features: torch.Tensor, hidden: IncrementalConv, out: IncrementalConv, buffer: torch.Tensor, group: int
) -> torch.Tensor:
    """:func:`output_logits` at one pixel for image channel ``group``: features (n, F) -> logits (n, K).

    ``buffer`` (n, hidden channels) keeps the hidden layer's groups computed by the earlier channel steps of
    the pixel (mask B: the logits of channel c read the hidden groups <= c); group ``group`` is written here.
    """
    buffer[:, hidden.index[group]] = F.relu(hidden.pixel(F.relu(features), group))  # (n, hidden_g)
    return out.pixel(buffer, group)  # (n, K)


def _as_slice(index: torch.Tensor) -> slice | torch.Tensor:
    """``index`` (n,) as the equal slice when it is a contiguous run, else unchanged."""
    if len(index) and bool(
        (index == torch.arange(int(index[0]), int(index[0]) + len(index), device=index.device)).all()
    ):
        return slice(int(index[0]), int(index[0]) + len(index))
    return index


def first_half(index: slice | torch.Tensor) -> slice | torch.Tensor:
    """The first half of a group's outputs of a two-block conv (the f half of a gated unit)."""
    if isinstance(index, slice):
        return slice(index.start, index.start + (index.stop - index.start) // 2)
    return index[: len(index) // 2]


def window_buffer(n: int, channels: int, height: int, width: int, **kwargs) -> torch.Tensor:
    """A zero input buffer (n, channels, height, width) for :meth:`IncrementalConv.at`, channels-last in memory."""
    return torch.zeros(n, height, width, channels, **kwargs).permute(0, 3, 1, 2)  # (n, I, H, W) view


class IncrementalConv:
    """A frozen copy of a :class:`CausalConv2d` for cached sampling (take a new one after training).

    ``index[g]`` lists the output channels of group g; ``at``/``pixel`` compute only those when a group is
    given (the outputs of channel g of the current pixel), or every output when ``group`` is None.
    """

    def __init__(self, conv: CausalConv2d):
        w = conv.masked_weight().detach()  # (O, I, kh, kw)
        self.weight = w
        self.bias = None if conv.bias is None else conv.bias.detach()
        self.kh, self.kw = w.shape[2], w.shape[3]
        groups = conv.out_groups
        # a group's outputs as a slice where they are contiguous (every conv but the blocked gates): basic
        # indexing costs a fraction of an index tensor's gather/scatter, and each step makes dozens
        self.index = [_as_slice(torch.nonzero(groups == g).flatten()) for g in range(conv.num_groups)]
        # windows are read channels-last, (B, kh, kw, I): contiguous runs of kw*I from a window_buffer
        flat = w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)  # (O, kh*kw*I)
        self._flat = flat
        self._flat_g = [flat[idx] for idx in self.index]
        self._bias_g = [None if self.bias is None else self.bias[idx] for idx in self.index]

    def _params(self, group):
        if group is None:
            return self._flat, self.bias
        return self._flat_g[group], self._bias_g[group]

    def at(self, x: torch.Tensor, row: int, col: int, group: int | None = None) -> torch.Tensor:
        """Output at (row, col) from input buffer ``x`` (B, I, H, W) -> (B, O_group).

        Any layout is right; a :func:`window_buffer` (channels-last memory) makes the window a few
        contiguous runs instead of a gather of single numbers.
        """
        b, _, _, w = x.shape
        r0, c0, c1 = row - self.kh + 1, col - self.kw // 2, col + self.kw // 2 + 1
        win = x[:, :, max(r0, 0) : row + 1, max(c0, 0) : min(c1, w)]  # (B, I, <=kh, <=kw)
        pads = (max(-c0, 0), max(c1 - w, 0), max(-r0, 0), 0)
        if any(pads):
            win = F.pad(win, pads)  # (B, I, kh, kw)
        weight, bias = self._params(group)
        return F.linear(win.permute(0, 2, 3, 1).reshape(b, -1), weight, bias)  # (B, O_group)

    def row(self, x: torch.Tensor, row: int) -> torch.Tensor:
        """Whole output row ``row`` from input buffer ``x`` (B, I, H, W) -> (B, O, W)."""
        r0 = row - self.kh + 1
        win = x[:, :, max(r0, 0) : row + 1]  # (B, I, <=kh, W)
        win = F.pad(win, (self.kw // 2, self.kw // 2, max(-r0, 0), 0))  # (B, I, kh, W+kw-1)
        return F.conv2d(win, self.weight, self.bias)[:, :, 0]  # (B, O, W)

    def pixel(self, vec: torch.Tensor, group: int | None = None) -> torch.Tensor:
        """A 1x1 conv on one pixel's features ``vec`` (B, I) -> (B, O_group)."""
        if self.kh != 1 or self.kw != 1:
            raise ValueError("pixel() is for 1x1 convolutions")
        weight, bias = self._params(group)
        return F.linear(vec, weight, bias)
