"""Multi-scale PixelRNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural
Networks", arXiv:1601.06759, sec. 3.5).

Two networks. The small image is the subsample x_s = x[..., ::f, ::f] (f = 2 by default, an
s x s image with s = H/f), a deterministic function of x. An unconditional PixelRNN models
x_s in raster order; a conditional PixelRNN models the rest of x in raster order of the full
image, given all of x_s:

    log p(x) = log p(x_s) + sum_{t not in x_s} log p(x_t | x_<t, x_s)

Each sub-pixel is scored exactly once: the conditional network's outputs at the positions of
x_s are never used (those pixels are known, probability 1), so the product is a normalised
distribution over full images. The generation order is therefore: every sub-pixel of x_s
(raster order of the small image, channels innermost), then the other sub-pixels in raster
order of the full image; :meth:`MultiscalePixelRNN.order` gives each sub-pixel's rank.

Conditioning (sec. 3.5): x_s, one-hot times a learned embedding, goes through a small
upsampling network (3x3 conv, ReLU, a stride-f transposed convolution, ReLU, 3x3 conv) to a
c x H x W map; for every layer of the conditional network an unmasked 1x1 convolution maps
it to that layer's input-to-state gates (4h channels per direction), added as a bias.
Unmasked is safe because all of x_s precedes every pixel the conditional network scores.
Both networks are of the same kind, ``cell``: Row LSTM (default; the paper's multi-scale
ImageNet 64x64 model is a Row LSTM) or Diagonal BiLSTM.

Sampling draws x_s with the shared raster loop (cached steps of the small network), then the
rest with the same loop holding x_s as known pixels; the conditional network computes its
biases once, from the known x_s, and then steps like an ordinary cached PixelRNN.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.errors import GenzooError
from genzoo.models.autoregressive._recurrent import RecurrentPixelNet, upgrade_recurrent_v1
from genzoo.models.autoregressive.diagonal_bilstm import DiagonalBiLSTMLayer
from genzoo.models.autoregressive.row_lstm import RowLSTMLayer
from genzoo.models.base import AutoregressiveModel, LikelihoodModel
from genzoo.models.registry import register_model
from genzoo.models.weights import VersionedWeights
from genzoo.nn.masked import ChannelEmbedding
from genzoo.sampling.autoregressive import sample_raster


@dataclass
class MultiscalePixelRNNConfig:
    cell: Literal["row_lstm", "diagonal_bilstm"] = "row_lstm"
    factor: int = 2  # x_s = x[..., ::factor, ::factor]; H and W must be multiples of it
    hidden: int = 32  # h of both networks; residual streams have 2h features
    layers: int = 4  # layers of the conditional (full-size) network
    small_layers: int = 0  # layers of the small-image network; 0 = same as layers
    embed: int = 16
    head: int = 64
    cond_features: int = 32  # c: channels of the upsampled conditioning map
    kernel: int = 3  # Row LSTM's k x 1 convolutions
    first_kernel: int = 7

    def __post_init__(self):
        if self.cell not in ("row_lstm", "diagonal_bilstm"):
            raise ValueError(f"cell must be 'row_lstm' or 'diagonal_bilstm', got {self.cell!r}")
        for key in ("hidden", "layers", "embed", "head", "cond_features"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.factor < 2:
            raise ValueError(f"factor must be >= 2, got {self.factor}")
        if self.small_layers < 0:
            raise ValueError(f"small_layers must be >= 0, got {self.small_layers}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and >= 1, got {self.kernel}")
        if self.first_kernel < 3 or self.first_kernel % 2 == 0:
            raise ValueError(f"first_kernel must be odd and >= 3, got {self.first_kernel}")


def _network(config: MultiscalePixelRNNConfig, info, layers: int) -> RecurrentPixelNet:
    c, h = info.channels, config.hidden
    if config.cell == "row_lstm":

        def make():
            return RowLSTMLayer(2 * h, h, c, config.kernel)
    else:

        def make():
            return DiagonalBiLSTMLayer(2 * h, h, c, c * config.embed)

    return RecurrentPixelNet(
        make,
        channels=c,
        num_values=info.num_values,
        embed=config.embed,
        features=2 * h,
        layers=layers,
        head=config.head,
        first_kernel=config.first_kernel,
    )


class Upsampler(nn.Module):
    """Embedded small image (B, C, s, s, K) one-hot -> conditioning map (B, c, f*s, f*s)."""

    def __init__(self, channels: int, num_values: int, embed: int, features: int, factor: int):
        super().__init__()
        self.embed = ChannelEmbedding(channels, num_values, embed, std=embed**-0.5)
        self.inp = nn.Conv2d(self.embed.out_channels, features, 3, padding=1)
        self.up = nn.ConvTranspose2d(features, features, factor, stride=factor)
        self.out = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, onehot_small: torch.Tensor) -> torch.Tensor:
        e = self.embed(onehot_small)  # (B, C*E, s, s)
        return self.out(F.relu(self.up(F.relu(self.inp(e)))))  # (B, c, H, W)


class _Stage(AutoregressiveModel):
    """One of the two networks as a raster-order model over its own image, for the shared loop.

    With an ``upsampler`` it is the conditional stage: its logits at the positions of x_s are
    computed but never scored or drawn (those pixels are always given to it as known).
    """

    def __init__(self, config, info, net: RecurrentPixelNet, upsampler: Upsampler | None = None, factor: int = 1):
        super().__init__(config, info)
        self.net, self.upsampler, self.factor = net, upsampler, factor
        self.bias = (
            None
            if upsampler is None
            else nn.ModuleList(nn.Conv2d(upsampler.out.out_channels, g, 1) for g in net.gate_features)
        )  # unmasked 1x1

    def biases(self, onehot: torch.Tensor) -> list[torch.Tensor] | None:
        """Per-layer gate biases from the small image inside the full one-hot (B, C, H, W, K)."""
        if self.upsampler is None or self.bias is None:
            return None
        f = self.factor
        cond = self.upsampler(onehot[:, :, ::f, ::f])  # (B, c, H, W)
        return [conv(cond) for conv in self.bias]  # each (B, gate_features, H, W)

    def logits(self, onehot, condition=None):
        return self.net(onehot, self.biases(onehot))  # (B, C, H, W, K)

    def init_cache(self, n, condition=None):
        cache = self.net.init_cache(n, self.info.height, self.info.width)
        cache["biases"] = None
        return cache

    def step(self, cache, t, canvas, condition=None):
        if self.upsampler is not None and cache["biases"] is None:  # x_s is known from the first step
            cache["biases"] = self.biases(F.one_hot(canvas, self.info.num_values).to(self.dtype))
        return self.net.step(cache, t, canvas, self.info, cache["biases"]), cache


@register_model("multiscale_pixelrnn")
class MultiscalePixelRNN(LikelihoodModel, VersionedWeights):
    family = "autoregressive"
    weights_version: ClassVar[int] = 2  # the layout of RecurrentPixelNet and ChannelEmbedding
    paper = (
        "van den Oord, Kalchbrenner & Kavukcuoglu 2016, Pixel Recurrent Neural Networks, "
        "arXiv:1601.06759 (sec. 3.5, multi-scale)"
    )
    Config = MultiscalePixelRNNConfig
    presets = {
        # The paper has no multi-scale MNIST model; sizes of its MNIST Diagonal BiLSTM (sec. 5.5:
        # 7 layers, h = 16; sec. 5.2: batches of 16) for both networks.
        "mnist": {
            "cell": "diagonal_bilstm",
            "hidden": 16,
            "layers": 7,
            "small_layers": 7,
            "embed": 8,
            "head": 32,
            "cond_features": 16,
            "batch_size": 16,
            "lr": 1e-3,
        },
        "small": {
            "cell": "row_lstm",
            "hidden": 32,
            "layers": 4,
            "small_layers": 3,
            "embed": 16,
            "head": 64,
            "cond_features": 32,
            "batch_size": 32,
            "lr": 2e-3,
        },
        "tiny": {
            "cell": "row_lstm",
            "hidden": 4,
            "layers": 1,
            "small_layers": 1,
            "embed": 3,
            "head": 8,
            "cond_features": 4,
            "batch_size": 8,
            "lr": 1e-2,
        },
    }

    def __init__(self, config: MultiscalePixelRNNConfig, info):
        super().__init__(config, info)
        f = config.factor
        if info.height % f or info.width % f:
            raise GenzooError(
                f"multiscale_pixelrnn needs height and width divisible by factor={f}; "
                f"the images are {info.height}x{info.width}"
            )
        small_info = dataclasses.replace(info, height=info.height // f, width=info.width // f)
        self.small = _Stage(config, small_info, _network(config, small_info, config.small_layers or config.layers))
        upsampler = Upsampler(info.channels, info.num_values, config.embed, config.cond_features, f)
        self.full = _Stage(config, info, _network(config, info, config.layers), upsampler, f)

    @classmethod
    def upgrade_weights(cls, weights, version):
        return upgrade_recurrent_v1(weights)

    def small_positions(self) -> torch.Tensor:
        """(C, H, W) bool: True at the sub-pixels of x_s."""
        f = self.config.factor
        known = torch.zeros(self.info.shape, dtype=torch.bool, device=self.device)
        known[:, ::f, ::f] = True
        return known

    def order(self) -> torch.Tensor:
        """(C, H, W) rank of each sub-pixel in the generation order: x_s first, then the rest."""
        small = self.small_positions()
        rank = torch.empty(self.info.shape, dtype=torch.long, device=small.device)
        n_small = int(small.sum())
        raster = (
            torch.arange(self.info.dims, device=small.device)
            .view(self.info.height, self.info.width, self.info.channels)
            .permute(2, 0, 1)
        )  # (C, H, W)
        small_rank = (
            torch.arange(n_small, device=small.device)
            .view(*self.small.info.shape[1:], self.info.channels)
            .permute(2, 0, 1)
        )  # (C, s, s)
        f = self.config.factor
        rank[:, ::f, ::f] = small_rank
        rest = ~small
        rank[rest] = n_small + torch.argsort(torch.argsort(raster[rest]))
        return rank

    def ordered_logits(self, onehot: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W, K): the small network's logits at x_s, the conditional one's elsewhere."""
        f = self.config.factor
        logits = self.full.logits(onehot).clone()  # (B, C, H, W, K)
        logits[:, :, ::f, ::f] = self.small.logits(onehot[:, :, ::f, ::f])  # (B, C, s, s, K)
        return logits

    def log_prob(self, x, condition=None):
        self.check_condition(condition)
        onehot = F.one_hot(x, self.info.num_values).to(self.dtype)  # (B, C, H, W, K)
        logp = F.log_softmax(self.ordered_logits(onehot), dim=-1)
        return logp.gather(-1, x.unsqueeze(-1)).squeeze(-1).flatten(1).sum(1)  # (B,)

    sample_options = AutoregressiveModel.sample_options

    def _sample(
        self,
        n,
        *,
        generator=None,
        temperature=1.0,
        condition=None,
        naive=False,
        progress=False,
        precision=None,
    ):
        x = torch.zeros(n, *self.info.shape, dtype=torch.long, device=self.device)  # (n, C, H, W)
        return self._complete(
            x,
            torch.zeros_like(x, dtype=torch.bool),
            generator=generator,
            temperature=temperature,
            condition=condition,
            naive=naive,
            progress=progress,
            precision=precision,
        )

    def _complete(
        self,
        x,
        known,
        *,
        generator=None,
        temperature=1.0,
        condition=None,
        naive=False,
        progress=False,
        precision=None,
    ):
        """x_s first (from its own known pixels), then the rest with all of x_s known."""

        self.check_condition(condition)
        f, n = self.config.factor, len(x)
        x = x.to(self.device).long().clone()  # (n, C, H, W)
        known = known.to(self.device).bool().expand(n, *self.info.shape)
        opts = dict(generator=generator, temperature=temperature, naive=naive, progress=progress, precision=precision)
        x[:, :, ::f, ::f] = sample_raster(
            self.small, n, known_values=x[:, :, ::f, ::f], known=known[:, :, ::f, ::f], **opts
        )
        return sample_raster(self.full, n, known_values=x, known=known | self.small_positions(), **opts)
