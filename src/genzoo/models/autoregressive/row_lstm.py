"""Row LSTM PixelRNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural
Networks", arXiv:1601.06759, sec. 3.1, with the residual blocks of sec. 3.3 and the colour
masks of sec. 3.4).

The image is processed row by row from top to bottom. For row i (eq. 3):

    [o_i, f_i, i_i, g_i] = sigma(K^ss (*) h_{i-1} + K^is (*) x_i)     (sigma, sigma, sigma, tanh)
    c_i = f_i . c_{i-1} + i_i . g_i,      h_i = o_i . tanh(c_i)

K^is is a k x 1 convolution along the row, masked (mask B: the centre tap connects colour
group j to groups <= j, the tap to the right is closed), computed for the whole image at
once; K^ss is an unmasked k x 1 convolution over the previous row's hidden state (k = 3).
Each layer reads 2h features, has h units per gate, and adds a 1x1 mask-B projection of
h_i back to its input (the residual block of Fig. 5). The network around the layers is
:class:`genzoo.models.autoregressive._recurrent.RecurrentPixelNet`: a 7x7 mask-A convolution first, two 1x1
mask-B output convolutions to C*K logits, p(x) = prod_t softmax(logits_t)[x_t].

The receptive field is a triangle: each row up adds (k-1)/2 columns on each side through
K^ss, so with k = 3, L layers and a 7x7 first layer the output at (h, w) sees row h-j
(j >= 1) at columns w-j-L-3 .. w+j+2 and its own row at w-L-3 .. w-1; everything else
before it is missed (tests/test_pixelrnn2d.py checks this set by exact zero gradients).

Initial states are zero (sec. 5.2 learns them; a deviation that keeps the model simpler).
Sampling carries each layer's hidden and cell state of the previous row; a step computes
the gates of one position from that cache and the current row's inputs at columns <= w.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.models.autoregressive._recurrent import RECURRENT_PRESETS, RecurrentConfig, RecurrentPixelModel
from genzoo.models.registry import register_model
from genzoo.nn.masked import IncrementalConv, MaskedConv2d, window_buffer
from genzoo.nn.recurrent import lstm_cell


def row_window(row: torch.Tensor, w: int, left: int, right: int) -> torch.Tensor:
    """Columns w-left .. w+right of ``row`` (n, F, W), zero outside the image -> (n, F, left+1+right)."""
    width = row.shape[-1]
    win = row[..., max(w - left, 0) : min(w + right + 1, width)]  # a view: only the edges need padding
    pads = (max(left - w, 0), max(w + right + 1 - width, 0))
    return F.pad(win, pads) if any(pads) else win


class RowLSTMLayer(nn.Module):
    """One residual Row LSTM layer on ``features`` (= 2h) channels with ``hidden`` (= h) units."""

    def __init__(self, features: int, hidden: int, channels: int, kernel: int = 3):
        super().__init__()
        self.hidden, self.kernel = hidden, kernel
        self.gate_features = 4 * hidden
        self.input_to_state = MaskedConv2d(features, 4 * hidden, (1, kernel), "B", channels, blocks=4)
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel, padding=kernel // 2, bias=False)
        self.out = MaskedConv2d(hidden, features, 1, "B", channels)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None, pixels=None) -> torch.Tensor:
        """(B, 2h, H, W) -> (B, 2h, H, W); ``bias`` (B, 4h, H, W) is added to the K^is gates."""
        b, _, height, width = x.shape
        gates_in = self.input_to_state(x)  # (B, 4h, H, W), whole image at once
        if bias is not None:
            gates_in = gates_in + bias
        h = x.new_zeros(b, self.hidden, width)  # (B, h, W): h_{-1}
        c = torch.zeros_like(h)
        rows = []
        for i in range(height):
            gates = gates_in[:, :, i] + self.state_to_state(h)  # (B, 4h, W)
            h, c = lstm_cell(gates, c)
            rows.append(h)
        return x + self.out(torch.stack(rows, dim=2))  # (B, 2h, H, W)

    def init_state(self, n: int, height: int, width: int, like: torch.Tensor) -> dict:
        kw = {"device": like.device, "dtype": like.dtype}
        state: dict[str, Any] = {
            "x": window_buffer(n, self.out.out_channels, height, width, **kw),
            "h": window_buffer(n, self.hidden, height, width, **kw),
            "c": like.new_zeros(n, self.hidden, height, width),
        }
        state["convs"] = (IncrementalConv(self.input_to_state), IncrementalConv(self.out))
        # K^ss as (4h, k*h) for windows read channels-last: (n, k, h) runs of the cached row above
        state["s2s"] = self.state_to_state.weight.detach().permute(0, 2, 1).reshape(self.gate_features, -1)
        return state

    def step(
        self, state: dict, x: torch.Tensor, h: int, w: int, bias: torch.Tensor | None = None, pixels=None
    ) -> torch.Tensor:
        """Output (n, 2h) at (h, w) from its input x (n, 2h), the cached row h-1 and row h left of w."""
        half = self.kernel // 2
        input_to_state, out = state["convs"]
        state["x"][:, :, h, w] = x
        gates = input_to_state.at(state["x"], h, w)  # (n, 4h); columns > w are closed taps
        if h > 0:
            above = row_window(state["h"][:, :, h - 1], w, half, half)  # (n, h, k)
            gates = gates + F.linear(above.transpose(1, 2).reshape(len(x), -1), state["s2s"])
            c_prev = state["c"][:, :, h - 1, w]  # (n, h)
        else:
            c_prev = torch.zeros_like(state["c"][:, :, 0, w])
        if bias is not None:
            gates = gates + bias[:, :, h, w]
        hh, cc = lstm_cell(gates, c_prev)  # (n, h) each
        state["h"][:, :, h, w], state["c"][:, :, h, w] = hh, cc
        return x + out.pixel(hh)  # (n, 2h)


@dataclass
class RowLSTMConfig(RecurrentConfig):
    kernel: int = 3  # k of the k x 1 input-to-state and state-to-state convolutions

    def __post_init__(self):
        super().__post_init__()
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and >= 1, got {self.kernel}")


@register_model("row_lstm")
class RowLSTM(RecurrentPixelModel):
    paper = (
        "van den Oord, Kalchbrenner & Kavukcuoglu 2016, Pixel Recurrent Neural Networks, arXiv:1601.06759 (sec. 3.1)"
    )
    Config = RowLSTMConfig
    presets = RECURRENT_PRESETS

    def make_layer(self):
        config, c = self.config, self.info.channels
        return RowLSTMLayer(2 * config.hidden, config.hidden, c, config.kernel)
