"""What the 2-D recurrent PixelRNNs share (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel
Recurrent Neural Networks", arXiv:1601.06759, sec. 3): the network around the recurrent layers, the
residual-stream sizes and their checks, the presets, and the model wrapper (teacher-forced logits and
the cached step). A subclass only says which LSTM layer to stack (``make_layer``).

:class:`RecurrentPixelNet` (Table 1 of the paper): per-channel one-hot inputs times a learned embedding
(:class:`genzoo.nn.masked.ChannelEmbedding`), a 7x7 mask-A convolution, L residual recurrent layers
(sec. 3.3), ReLU -> 1x1 mask-B conv -> ReLU -> 1x1 mask-B conv to C*K logits. Every convolution is a
:class:`genzoo.nn.masked.MaskedConv2d` (sec. 3.4: feature group j of every map sees the pixel's channels
< j through mask A first, <= j through mask B after).

A recurrent layer (Row LSTM, Diagonal BiLSTM) is an ``nn.Module`` with
``forward(x, bias, pixels) -> x'`` over whole maps ``(B, F, H, W)`` and the cached pair
``init_state(n, H, W, like)`` / ``step(state, x, h, w, bias, pixels) -> x'`` at one position
``(n, F)``. ``bias`` is an optional map added to its input-to-state gates (the multi-scale
model's conditioning, sec. 3.5; ``gate_features`` says how many channels it has).
``pixels`` is the embedded image ``(B, C*E, H, W)``, unmasked: a layer may read it only where
its output is used strictly later (the Diagonal BiLSTM's backward direction, whose rows are
used one row below); in the cached step it holds the sub-pixels before the current one.

Cached stepping, the scheme of :mod:`genzoo.nn.masked`: the embedded image is written into a buffer
one sub-pixel at a time (:meth:`ChannelEmbedding.write_previous`) and every convolution reads it through
an :class:`genzoo.nn.masked.IncrementalConv`. For sub-pixel (h, w, c) the net evaluates the whole
position (h, w): feature group j at (h, w) depends on the pixel's own channels < j only, so groups <= c
are exact and the logits of channel c are right. Each layer writes its per-position values (inputs,
hidden and cell states) into full-size maps; later channel steps of the same pixel overwrite them, and
the step of the last channel leaves the exact values, which are the only ones later positions read.

Weight layout, version 2: the embedding is the ``embed.weight`` of a ChannelEmbedding (version 1: a
bare ``embedding`` parameter), and the first convolution keeps only the kernel rows up to the centre,
(2h, C*E, 4, 7) for 7x7 (version 1: the full 7x7 kernel, whose lower rows the mask zeroed). A version-1
checkpoint is converted on loading (:func:`upgrade_recurrent_v1`): the same function, the same outputs.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast

import torch
from torch import nn

from genzoo.data.base import position
from genzoo.models.base import AutoregressiveModel
from genzoo.models.weights import VersionedWeights, Weights
from genzoo.nn.masked import (
    ChannelEmbedding,
    IncrementalConv,
    MaskedConv2d,
    output_logits,
    output_logits_step,
    window_buffer,
)

RECURRENT_PRESETS = {
    # Sec. 5.5 trains a 7-layer, h = 16 Diagonal BiLSTM on binarized MNIST with RMSProp and
    # batches of 16 (sec. 5.2); the same size for every recurrent model here, with Adam.
    "mnist": {"hidden": 16, "layers": 7, "embed": 8, "head": 32, "batch_size": 16, "lr": 1e-3},
    "small": {"hidden": 32, "layers": 4, "embed": 16, "head": 64, "batch_size": 32, "lr": 2e-3},
    "tiny": {"hidden": 4, "layers": 2, "embed": 3, "head": 8, "batch_size": 8, "lr": 1e-2},
}


def recurrent_presets(**layers: int) -> dict[str, dict]:
    """:data:`RECURRENT_PRESETS` with the number of layers of the named presets replaced."""
    return {
        name: {**preset, **({"layers": layers[name]} if name in layers else {})}
        for name, preset in RECURRENT_PRESETS.items()
    }


class RecurrentLayer(Protocol):
    """One residual recurrent layer (Row LSTM, Diagonal BiLSTM): the contract in the module docstring."""

    gate_features: int

    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None, pixels: torch.Tensor) -> torch.Tensor: ...

    def init_state(self, n: int, height: int, width: int, like: torch.Tensor) -> dict[str, Any]: ...

    def step(
        self, state: dict[str, Any], x: torch.Tensor, h: int, w: int, bias: torch.Tensor | None, pixels: torch.Tensor
    ) -> torch.Tensor: ...


class RecurrentPixelNet(nn.Module):
    """Embedding -> 7x7 mask-A conv -> residual recurrent layers -> two 1x1 mask-B convs (Table 1).

    ``layer_factory()`` makes one recurrent layer on ``features`` channels (2h in the paper).
    """

    def __init__(
        self,
        layer_factory: Callable[[], nn.Module],
        *,
        channels: int,
        num_values: int,
        embed: int,
        features: int,
        layers: int,
        head: int,
        first_kernel: int = 7,
    ):
        super().__init__()
        self.channels, self.num_values = channels, num_values
        self.embed = ChannelEmbedding(channels, num_values, embed, std=embed**-0.5)
        self.first = MaskedConv2d(self.embed.out_channels, features, first_kernel, "A", channels)
        self.layers = nn.ModuleList(layer_factory() for _ in range(layers))
        self.layer_list = cast("list[RecurrentLayer]", list(self.layers))  # the same modules, typed
        self.head_hidden = MaskedConv2d(features, head, 1, "B", channels)
        self.head_out = MaskedConv2d(head, channels * num_values, 1, "B", channels)

    @property
    def gate_features(self) -> list[int]:
        """Channels of the optional bias map of each layer's input-to-state gates."""
        return [layer.gate_features for layer in self.layer_list]

    def forward(self, onehot: torch.Tensor, biases: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Teacher-forced logits (B, C, H, W, K); ``biases[l]`` (B, gate_features[l], H, W) or None."""
        pixels = self.embed(onehot)  # (B, C*E, H, W)
        x = self.first(pixels)  # (B, 2h, H, W)
        for i, layer in enumerate(self.layer_list):
            x = layer(x, None if biases is None else biases[i], pixels)  # (B, 2h, H, W)
        return output_logits(x, self.head_hidden, self.head_out, self.channels)  # (B, C, H, W, K)

    # -- cached one-position evaluation ------------------------------------------------------
    @torch.no_grad()
    def init_cache(self, n: int, height: int, width: int) -> dict:
        like = self.embed.weight
        return {
            "layers": [layer.init_state(n, height, width, like) for layer in self.layer_list],
            "pixels": window_buffer(n, self.embed.out_channels, height, width, device=like.device, dtype=like.dtype),
            "head": like.new_zeros(n, self.head_hidden.out_channels),  # the hidden output layer at (h, w)
            "convs": [IncrementalConv(conv) for conv in (self.first, self.head_hidden, self.head_out)],
        }

    @torch.no_grad()
    def step(
        self, cache: dict, t: int, canvas: torch.Tensor, info, biases: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Logits (n, K) of sub-pixel t given ``canvas`` (n, C, H, W) filled before it."""
        c, h, w = position(t, info)
        pixels = cache["pixels"]
        self.embed.write_previous(pixels, t, canvas, info)
        first, head_hidden, head_out = cache["convs"]
        x = first.at(pixels, h, w)  # (n, 2h)
        for i, (layer, state) in enumerate(zip(self.layer_list, cache["layers"])):
            x = layer.step(state, x, h, w, None if biases is None else biases[i], pixels)  # (n, 2h)
        return output_logits_step(x, head_hidden, head_out, cache["head"], c)  # (n, K): the logits of channel c


def upgrade_recurrent_v1(weights: Weights) -> Weights:
    """Version-1 weights of a :class:`RecurrentPixelNet` (or of a model holding some) in version 2:
    ``...embedding`` -> ``...embed.weight``; the first conv's kernel cut to the rows up to its centre."""
    out = {}
    for key, value in weights.items():
        head, _, leaf = key.rpartition(".")
        if leaf == "embedding":
            key = f"{head}.embed.weight" if head else "embed.weight"
        elif key.endswith("first.weight") and value.dim() == 4:
            value = value[:, :, : value.shape[2] // 2 + 1]  # rows below the centre were masked to zero
        out[key] = value
    return out


@dataclass
class RecurrentConfig:
    hidden: int = 32  # h: units per gate; the residual stream has 2h features (Fig. 5)
    layers: int = 4
    embed: int = 16  # per-channel embedding of the one-hot input
    head: int = 64  # width of the hidden 1x1 output convolution
    first_kernel: int = 7  # the mask-A convolution of the first layer

    def __post_init__(self):
        for key in ("hidden", "layers", "embed", "head"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.first_kernel < 3 or self.first_kernel % 2 == 0:
            raise ValueError(f"first_kernel must be odd and >= 3, got {self.first_kernel}")


class RecurrentPixelModel(AutoregressiveModel, VersionedWeights, abc.ABC):
    """Subclasses define ``make_layer(self)``: one residual LSTM layer, called once per layer."""

    family = "autoregressive"
    weights_version: ClassVar[int] = 2

    def __init__(self, config: RecurrentConfig, info):
        super().__init__(config, info)
        self.net = RecurrentPixelNet(
            self.make_layer,
            channels=info.channels,
            num_values=info.num_values,
            embed=config.embed,
            features=2 * config.hidden,
            layers=config.layers,
            head=config.head,
            first_kernel=config.first_kernel,
        )

    @abc.abstractmethod
    def make_layer(self) -> nn.Module:
        """One residual recurrent layer on 2h features (a :class:`RecurrentLayer`)."""

    @classmethod
    def upgrade_weights(cls, weights, version):
        return upgrade_recurrent_v1(weights)

    def logits(self, onehot, condition=None):
        self.check_condition(condition)
        return self.net(onehot)  # (B, C, H, W, K)

    def init_cache(self, n, condition=None):
        return self.net.init_cache(n, self.info.height, self.info.width)

    def step(self, cache, t, canvas, condition=None):
        return self.net.step(cache, t, canvas, self.info), cache
