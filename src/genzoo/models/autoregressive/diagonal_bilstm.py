"""Diagonal BiLSTM PixelRNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent
Neural Networks", arXiv:1601.06759, sec. 3.2, with the residual blocks of sec. 3.3 and the
colour masks of sec. 3.4).

Each direction skews its input map (row i shifted right by i, so every diagonal of the image
becomes a column) and runs an LSTM column by column over the skewed map (eq. 3):

    [o, f, i, g]_j = sigma(K^ss (*) h_{j-1} + K^is (*) x_j)      (sigma, sigma, sigma, tanh)
    c_j = f_j . c_{j-1} + i_j . g_j,      h_j = o_j . tanh(c_j)

K^is is a 1x1 convolution (mask B: colour group j sees groups <= j), K^ss a 2x1 convolution
along the previous column (rows i-1 and i). The map is unskewed afterwards, so in image
coordinates the state at (h, w) comes from the states at (h-1, w) and (h, w-1), and the cell
state from (h, w-1). States at the skew's padding positions are held at zero.

The backward direction runs the same recurrence on the horizontally mirrored map (its state
at (h, w) comes from (h-1, w) and (h, w+1)), so it sees the rest of the current row; its
output map is shifted down by one row before it is added to the forward one, and then uses
only rows above. The sum of the two goes through a 1x1 mask-B projection back to 2h features
and is added to the layer's input (residual block of Fig. 5). Forward: everything up-left
plus the row so far; shifted backward: everything up-right; so one layer already sees every
earlier pixel (tests/test_pixelrnn2d.py checks it by gradients).

One deviation closes a gap in that last claim: the backward direction's input-to-state 1x1
convolution is unmasked and reads the embedded pixels of its position besides the layer
input. The backward rows are used only one row below, so this is causal; without it no
feature of the last position of row h-1 contains that pixel (mask A, then mask B), and the
pixel would reach (h, w) only through the 7x7 first layer, i.e. not at all for w < W-4 (a
blind spot at the start of every row once the image is wider than 4 pixels).
``backward_pixels=False`` gives the paper's layer, gap included.

Initial states are zero (sec. 5.2 learns them; a deviation that keeps the model simpler).
Sampling carries the forward states of every position generated so far; at (h, w) one cell
update per layer uses the cached states at (h-1, w) and (h, w-1). The backward states of
row h-1 are computed once, at the first step of row h (W cell updates per layer per row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.models.autoregressive._recurrent import RecurrentConfig, RecurrentPixelModel, recurrent_presets
from genzoo.models.registry import register_model
from genzoo.nn.masked import CausalConv2d, IncrementalConv, MaskedConv2d
from genzoo.nn.recurrent import lstm_cell, skew, unskew


class DiagonalLSTM(nn.Module):
    """One direction: skew, column-by-column LSTM (1x1 input-to-state, 2x1 state-to-state), unskew."""

    def __init__(self, features: int, hidden: int, channels: int, masked: bool):
        super().__init__()
        self.hidden = hidden
        self.input_to_state = (
            MaskedConv2d(features, 4 * hidden, 1, "B", channels, blocks=4)
            if masked
            else CausalConv2d(features, 4 * hidden, 1)
        )
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, 2, bias=False)  # taps: [row i-1, row i]

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """(B, F, H, W) -> hidden states (B, h, H, W), left to right."""
        b, _, height, width = x.shape
        gates_in = self.input_to_state(x)  # (B, 4h, H, W)
        if bias is not None:
            gates_in = gates_in + bias
        gates_in = skew(gates_in)  # (B, 4h, H, W+H-1)
        inside = skew(x.new_ones(1, 1, height, width))  # (1, 1, H, W+H-1): 1 in the image
        h = x.new_zeros(b, self.hidden, height)  # (B, h, H): one skewed column
        c = torch.zeros_like(h)
        columns = []
        for j in range(width + height - 1):
            gates = gates_in[..., j] + self.state_to_state(F.pad(h, (1, 0)))  # (B, 4h, H)
            h, c = lstm_cell(gates, c)
            h, c = h * inside[..., j], c * inside[..., j]  # padding positions stay zero
            columns.append(h)
        return unskew(torch.stack(columns, dim=-1))  # (B, h, H, W)

    def gates_at(
        self, input_to_state: IncrementalConv, x: torch.Tensor, h_up: torch.Tensor, h_side: torch.Tensor
    ) -> torch.Tensor:
        """Gates (n, 4h) at one position from its input (n, F) and the two neighbouring states (n, h);
        ``input_to_state`` is the cached form of this direction's input-to-state convolution."""
        return self.state_gates(input_to_state.pixel(x), h_up, h_side)

    def state_gates(self, gates_in: torch.Tensor, h_up: torch.Tensor, h_side: torch.Tensor) -> torch.Tensor:
        """``gates_in`` (n, 4h) plus K^ss applied to the state above and the state to the side (n, h) each."""
        k = self.state_to_state.weight  # (4h, h, 2)
        both = torch.cat([h_up, h_side], dim=1)  # (n, 2h): one product for both taps
        return torch.addmm(gates_in, both, torch.cat([k[..., 0], k[..., 1]], dim=1).T)  # (n, 4h)


class DiagonalBiLSTMLayer(nn.Module):
    """One residual Diagonal (Bi)LSTM layer on ``features`` (= 2h) channels with ``hidden`` (= h) units.

    The backward direction reads the layer input and, if ``pixel_features`` > 0, the embedded
    pixels of the same position, unmasked: its row r is used only at row r+1.
    """

    def __init__(self, features: int, hidden: int, channels: int, pixel_features: int, bidirectional: bool = True):
        super().__init__()
        self.hidden = hidden
        self.forward_lstm = DiagonalLSTM(features, hidden, channels, masked=True)
        self.pixel_features = pixel_features
        self.backward_lstm = (
            DiagonalLSTM(features + pixel_features, hidden, channels, masked=False) if bidirectional else None
        )
        self.gate_features = 4 * hidden * (2 if bidirectional else 1)
        self.out = MaskedConv2d(hidden, features, 1, "B", channels)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None, pixels: torch.Tensor | None = None):
        """(B, 2h, H, W) -> (B, 2h, H, W); ``bias`` (B, gate_features, H, W) is added to the K^is gates,
        ``pixels`` (B, C*E, H, W) is the embedded image."""
        b_fwd = None if bias is None else bias[:, : 4 * self.hidden]  # (B, 4h, H, W)
        b_bwd = None if bias is None else bias[:, 4 * self.hidden :]
        h = self.forward_lstm(x, b_fwd)  # (B, h, H, W)
        if self.backward_lstm is not None:
            both = torch.cat([x, self._pixels(pixels)], dim=1) if self.pixel_features else x  # (B, 2h + C*E, H, W)
            both = both.flip(-1)  # mirrored
            right = self.backward_lstm(both, None if b_bwd is None else b_bwd.flip(-1)).flip(-1)  # (B, h, H, W)
            h = h + F.pad(right, (0, 0, 1, 0))[:, :, :-1]  # shifted down one row: rows above only
        return x + self.out(h)

    def _pixels(self, pixels: torch.Tensor | None) -> torch.Tensor:
        if pixels is None:
            raise ValueError("the backward direction reads the embedded pixels: pass them")
        return pixels

    def init_state(self, n: int, height: int, width: int, like: torch.Tensor) -> dict[str, Any]:
        maps = {"x": self.out.out_channels, "h": self.hidden, "c": self.hidden, "hb": self.hidden}
        state: dict[str, Any] = {k: like.new_zeros(n, f, height, width) for k, f in maps.items()}
        state["backward_rows"] = 0  # rows of the backward direction computed so far
        backward = None if self.backward_lstm is None else IncrementalConv(self.backward_lstm.input_to_state)
        state["convs"] = {
            "forward": IncrementalConv(self.forward_lstm.input_to_state),
            "backward": backward,
            "out": IncrementalConv(self.out),
        }
        return state

    def _backward_row(
        self, lstm: DiagonalLSTM, state: dict[str, Any], r: int, bias: torch.Tensor | None, pixels: torch.Tensor | None
    ) -> None:
        """Backward hidden states of the finished row r, right to left, from row r-1's."""
        width = state["x"].shape[-1]
        row = state["x"][:, :, r]  # (n, 2h, W)
        if self.pixel_features:
            row = torch.cat([row, self._pixels(pixels)[:, :, r]], dim=1)  # (n, 2h + C*E, W)
        zero = state["hb"].new_zeros(state["hb"].shape[:2])  # (n, h)
        h_side, c_side = zero, zero
        gates_in = state["convs"]["backward"].pixel(row.transpose(1, 2))  # (n, W, 4h): the whole row at once
        for w in reversed(range(width)):
            h_up = state["hb"][:, :, r - 1, w] if r > 0 else zero
            gates = lstm.state_gates(gates_in[:, w], h_up, h_side)  # (n, 4h)
            if bias is not None:
                gates = gates + bias[:, 4 * self.hidden :, r, w]
            h_side, c_side = lstm_cell(gates, c_side)
            state["hb"][:, :, r, w] = h_side

    def step(
        self,
        state: dict[str, Any],
        x: torch.Tensor,
        h: int,
        w: int,
        bias: torch.Tensor | None = None,
        pixels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Output (n, 2h) at (h, w) from its input x (n, 2h) and the cached states."""
        state["x"][:, :, h, w] = x
        if self.backward_lstm is not None:
            while state["backward_rows"] < h:  # first step of row h: finish row h-1
                self._backward_row(self.backward_lstm, state, state["backward_rows"], bias, pixels)
                state["backward_rows"] += 1
        zero = x.new_zeros(x.shape[0], self.hidden)  # (n, h)
        h_up = state["h"][:, :, h - 1, w] if h > 0 else zero
        h_side, c_side = (state["h"][:, :, h, w - 1], state["c"][:, :, h, w - 1]) if w > 0 else (zero, zero)
        gates = self.forward_lstm.gates_at(state["convs"]["forward"], x, h_up, h_side)  # (n, 4h)
        if bias is not None:
            gates = gates + bias[:, : 4 * self.hidden, h, w]
        hh, cc = lstm_cell(gates, c_side)  # (n, h) each
        state["h"][:, :, h, w], state["c"][:, :, h, w] = hh, cc
        if self.backward_lstm is not None and h > 0:
            hh = hh + state["hb"][:, :, h - 1, w]  # the backward map shifted down one row
        return x + state["convs"]["out"].pixel(hh)  # (n, 2h)


@dataclass
class DiagonalBiLSTMConfig(RecurrentConfig):
    bidirectional: bool = True  # False: the forward Diagonal LSTM alone (sees only up-left)
    backward_pixels: bool = True  # the backward LSTM also reads the pixels; False: the paper's exact layer


@register_model("diagonal_bilstm")
class DiagonalBiLSTM(RecurrentPixelModel):
    paper = (
        "van den Oord, Kalchbrenner & Kavukcuoglu 2016, Pixel Recurrent Neural Networks, arXiv:1601.06759 (sec. 3.2)"
    )
    Config = DiagonalBiLSTMConfig
    # "mnist" is sec. 5.5's model: binarized MNIST, 7 layers, h = 16 (79.20 nats in the paper); one
    # bidirectional layer sees the whole past, so the small and tiny presets use fewer layers.
    presets = recurrent_presets(small=3, tiny=1)

    def make_layer(self):
        config, c = self.config, self.info.channels
        return DiagonalBiLSTMLayer(
            2 * config.hidden, config.hidden, c, c * config.embed if config.backward_pixels else 0, config.bidirectional
        )
