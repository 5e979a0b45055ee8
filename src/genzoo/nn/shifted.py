"""Shifted convolutions: causal convolutions without masks, by padding and shifting (Salimans, Karpathy,
Chen & Kingma 2017, "PixelCNN++: Improving the PixelCNN with Discretized Logistic Mixture Likelihood and
Other Modifications", arXiv:1701.05517, sec. 2.3 and the paper's code, openai/pixel-cnn ``nn.py``).

* down-shifted (:func:`down_shifted`): a kh x kw kernel padded kh-1 rows on top and (kw-1)/2 columns on
  each side, so output (i, j) reads input rows i-kh+1..i around column j: the rows above, once the stream
  is shifted down one row at its start.
* down-right-shifted (:func:`down_right_shifted`): padded kh-1 rows on top and kw-1 columns on the left,
  so output (i, j) reads rows i-kh+1..i and columns j-kw+1..j: above and to the left.
* their stride-2 transposed versions (:func:`down_shifted_deconv`, :func:`down_right_shifted_deconv`),
  cropped so that output row 2i + a (a in 0, 1) reads input row i only and the streams stay causal.

Each layer computes its output on any box of positions from its whole input (``box``), which is what a
cached sampler needs, and gives, from the input's "ready time" map (per position, the last pixel it
depends on), its output's (``ready``); :class:`genzoo.models.autoregressive.pixelcnn_pp.PixelCNNPP` plans
its cached sampling with them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

Box = tuple[int, int, int, int]  # rows [r0, r1), columns [c0, c1) of a layer's output


def _window(x: torch.Tensor, r0: int, r1: int, c0: int, c1: int, act: Callable | None = None) -> torch.Tensor:
    """x[..., r0:r1, c0:c1] (after ``act``), zero where the window leaves x."""
    h, w = x.shape[-2:]
    a0, b0 = min(max(r0, 0), h), min(max(c0, 0), w)
    a1, b1 = max(min(r1, h), a0), max(min(c1, w), b0)
    t = x[..., a0:a1, b0:b1]
    if act is not None:
        t = act(t)
    pads = (b0 - c0, c1 - b1, a0 - r0, r1 - a1)
    return F.pad(t, pads) if any(pads) else t


def _shift_fill(d: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Ready-time map shifted down/right, -1 (a constant) where zeros are shifted in."""
    h, w = d.shape
    return F.pad(d, (dx, 0, dy, 0), value=-1.0)[:h, :w]


class ShiftedConv(nn.Module):
    """A convolution whose output (i, j) reads input rows i*s - top .. i*s - top + kh - 1 and
    columns j*s - left .. j*s - left + kw - 1 (zeros outside), then is shifted down by ``shift[0]``
    rows and right by ``shift[1]`` columns (zeros shifted in).

    Down-shifted (u stream): kernel (2, 3), pad (1, 1, 1). Down-right-shifted (ul stream):
    kernel (2, 2), pad (1, 1, 0). The stride-2 versions halve the size, rounding up.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: tuple[int, int],
        pad: tuple[int, int, int],
        stride: int = 1,
        shift: tuple[int, int] = (0, 0),
    ):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride)
        self.kernel, self.pad, self.stride, self.shift = kernel, pad, stride, shift

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (top, left, right), s = self.kernel, self.pad, self.stride
        return (h + top - kh) // s + 1, (w + left + right - kw) // s + 1

    def box(self, x: torch.Tensor, box: Box, act: Callable | None = None) -> torch.Tensor:
        """Output at ``box`` (n, cout, r1-r0, c1-c0) from the whole input x (n, cin, H, W)."""
        r0, r1, c0, c1 = box
        dy, dx = self.shift
        (kh, kw), (top, left, _), s = self.kernel, self.pad, self.stride
        p0, p1, q0, q1 = max(r0 - dy, 0), r1 - dy, max(c0 - dx, 0), c1 - dx  # box before the shift
        if p1 <= p0 or q1 <= q0:
            return x.new_zeros(x.shape[0], self.conv.out_channels, r1 - r0, c1 - c0)
        win = _window(x, p0 * s - top, (p1 - 1) * s - top + kh, q0 * s - left, (q1 - 1) * s - left + kw, act)
        if p1 - p0 == 1 and q1 - q0 == 1:  # one position (most sampling steps): a plain matmul is cheaper
            w = self.conv.weight.permute(0, 2, 3, 1)  # (cout, kh, kw, cin): the order of a channels-last window
            rows = win.permute(0, 2, 3, 1).reshape(len(win), -1)  # (n, kh*kw*cin)
            y = torch.addmm(cast(torch.Tensor, self.conv.bias), rows, w.reshape(len(w), -1).t())
            y = y[..., None, None]
        else:
            y = self.conv(win)  # (n, cout, p1-p0, q1-q0)
        pads = (q0 - (c0 - dx), 0, p0 - (r0 - dy), 0)
        return F.pad(y, pads) if any(pads) else y

    def ready(self, d: torch.Tensor) -> torch.Tensor:
        """Ready-time map of the output from the input's (H, W): max over the footprint."""
        (kh, kw), (top, left, right), s = self.kernel, self.pad, self.stride
        hh, ww = self.out_size(*d.shape)
        padded = F.pad(d[None, None], (left, right + kw + s, top, kh + s), value=-1.0)
        out = F.max_pool2d(padded, (kh, kw), s)[0, 0, :hh, :ww]
        return _shift_fill(out, *self.shift)


class ShiftedDeconv(nn.Module):
    """Stride-2 transposed convolution, cropped to ``size``: rows from the top, columns from
    ``crop_left`` (kernel (2, 3), crop 1 for the u stream; (2, 2), crop 0 for the ul stream), so
    output row 2i + a (a in 0, 1) reads input row i only and the streams stay causal."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int], crop_left: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, kernel, stride=2)
        self.kernel, self.crop_left = kernel, crop_left

    def box(self, x: torch.Tensor, box: Box) -> torch.Tensor:
        r0, r1, c0, c1 = box
        c0, c1 = c0 + self.crop_left, c1 + self.crop_left  # columns of the uncropped output
        (kh, kw), (h, w) = self.kernel, x.shape[-2:]
        i0, i1 = max(0, -((kh - 1 - r0) // 2)), min(h, (r1 - 1) // 2 + 1)  # inputs reaching the box
        j0, j1 = max(0, -((kw - 1 - c0) // 2)), min(w, (c1 - 1) // 2 + 1)
        y = self.conv(x[..., i0:i1, j0:j1])  # covers uncropped rows 2 i0 .., columns 2 j0 ..
        return y[..., r0 - 2 * i0 : r1 - 2 * i0, c0 - 2 * j0 : c1 - 2 * j0]

    def ready(self, d: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        (kh, kw), (h, w) = self.kernel, d.shape
        full = d.new_full((2 * (h - 1) + kh, 2 * (w - 1) + kw), -1.0)
        for a in range(kh):
            for b in range(kw):
                view = full[a : a + 2 * h : 2, b : b + 2 * w : 2]
                view.copy_(torch.maximum(view, d))
        return full[: size[0], self.crop_left : self.crop_left + size[1]]


def down_shifted(
    cin: int, cout: int, stride: int = 1, kernel: tuple[int, int] = (2, 3), shift: tuple[int, int] = (0, 0)
) -> ShiftedConv:
    """The u stream's convolution: the rows above (kernel (2, 3) by default)."""
    kh, kw = kernel
    return ShiftedConv(cin, cout, kernel, (kh - 1, (kw - 1) // 2, (kw - 1) // 2), stride, shift)


def down_right_shifted(
    cin: int, cout: int, stride: int = 1, kernel: tuple[int, int] = (2, 2), shift: tuple[int, int] = (0, 0)
) -> ShiftedConv:
    """The ul stream's convolution: the rows above and the columns to the left (kernel (2, 2) by default)."""
    kh, kw = kernel
    return ShiftedConv(cin, cout, kernel, (kh - 1, kw - 1, 0), stride, shift)


def down_shifted_deconv(cin: int, cout: int) -> ShiftedDeconv:
    """The u stream's stride-2 upsampling: kernel (2, 3), cropped one column on the left."""
    return ShiftedDeconv(cin, cout, (2, 3), 1)


def down_right_shifted_deconv(cin: int, cout: int) -> ShiftedDeconv:
    """The ul stream's stride-2 upsampling: kernel (2, 2), no crop on the left."""
    return ShiftedDeconv(cin, cout, (2, 2), 0)
