"""PixelCNN: a stack of masked convolutions (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel
Recurrent Neural Networks", ICML, arXiv:1601.06759, sec. 3.4-3.5, Fig. 4-5, Table 4 "PixelCNN").

p(x) = prod_t p(x_t | x_<t) over the sub-pixels in raster order, channels innermost (eq. 1-2); each factor
is a softmax over the K values (sec. 5.3; K = 2 is the Bernoulli of binarized MNIST, K = 256 the 256-way
softmax, a palette size the categorical over colours). The network, with h = ``channels // 2``:

    e       = per-channel one-hot x times a learned table       (B, C*E, H, W), group c = channel c
    s_0     = MaskConv_A^{7x7}(e)                               (B, 2h, H, W)
    s_{i+1} = s_i + Conv_B^{1x1}(ReLU(MaskConv_B^{3x3}(ReLU(Conv_B^{1x1}(ReLU(s_i))))))   2h -> h -> h -> 2h
    logits  = Conv_B^{1x1}(ReLU(Conv_B^{1x1}(ReLU(s_n))))         (B, C*K, H, W) -> (B, C, H, W, K)

All convs are masked (:mod:`genzoo.nn.masked`): the spatial mask hides the rows below and the pixels right
of the centre; inside a pixel, feature group c sees groups < c (A, first layer) or <= c (B, later layers),
the R -> G -> B dependence of sec. 3.4.

Blind spot (van den Oord et al. 2016, arXiv:1606.05328, Fig. 1): stacked masked convs do not see every
earlier pixel. A mask-B kxk conv at (r, c) reaches (r-1, c+k//2) but nothing to the right in row r; the
first fxf mask-A layer reaches columns up to c+f//2 in the f//2 rows above. So for pixel (r, c) the row
r-d (d >= 1) is seen only up to column c + f//2 + min(d-1, n)*(k//2) (n residual blocks), whatever the
depth: with the defaults, pixels (r-1, c') with c' > c+3 never influence p(x_{r,c}) although they come
earlier in the order. tests/test_pixelcnn.py checks this edge by gradients. The Gated PixelCNN
(:mod:`genzoo.models.autoregressive.gated_pixelcnn`) removes the blind spot.

Cached sampling keeps, for every conv with a spatial window (the 7x7 input conv and each block's 3x3), a
full-size buffer of its input; the 1x1 convs only need the current pixel's features. Step t = (r, c, k)
writes the embedding of sub-pixel t-1 and computes, layer by layer, only output group k at (r, c): one
window product per spatial conv and one small matmul per 1x1 conv, O(layers) work per step. Outputs of
earlier positions never change, so they are never recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.data.base import position
from genzoo.errors import GenzooError
from genzoo.models.base import AutoregressiveModel
from genzoo.models.registry import register_model
from genzoo.nn.masked import (
    ChannelEmbedding,
    IncrementalConv,
    MaskedConv2d,
    output_logits,
    output_logits_step,
    window_buffer,
)


@dataclass
class PixelCNNConfig:
    channels: int = 128  # 2h: width of the residual stream
    blocks: int = 12  # residual blocks (1 + 12 + 2 = 15 layers, as in the paper's PixelCNN)
    kernel: int = 3  # the masked conv inside each block
    first_kernel: int = 7  # the mask-A input conv
    embed: int = 16  # embedding size E per image channel
    out_hidden: int = 256  # width of the 1x1 output layer before the logits

    def __post_init__(self):
        if self.channels < 2:
            raise ValueError("channels must be >= 2 (blocks use channels // 2)")
        if self.blocks < 0:
            raise ValueError("blocks must be >= 0")
        for key in ("kernel", "first_kernel"):
            k = getattr(self, key)
            if k < 1 or k % 2 == 0:
                raise ValueError(f"{key} must be odd and >= 1, got {k}")
        if self.embed < 1 or self.out_hidden < 1:
            raise ValueError("embed and out_hidden must be >= 1")


class ResidualBlock(nn.Module):
    """s + Conv_B^{1x1}(ReLU(MaskConv_B^{kxk}(ReLU(Conv_B^{1x1}(ReLU(s))))))  (Fig. 5 of the paper)."""

    def __init__(self, channels: int, kernel: int, image_channels: int):
        super().__init__()
        h = channels // 2
        self.reduce = MaskedConv2d(channels, h, 1, "B", image_channels)
        self.spatial = MaskedConv2d(h, h, kernel, "B", image_channels)
        self.expand = MaskedConv2d(h, channels, 1, "B", image_channels)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.reduce(F.relu(s)))  # (B, h, H, W)
        m = F.relu(self.spatial(a))  # (B, h, H, W)
        return s + self.expand(m)  # (B, 2h, H, W)


@register_model("pixelcnn")
class PixelCNN(AutoregressiveModel):
    """PixelCNN with residual blocks of masked convs; has the blind spot described in the module docstring."""

    family = "autoregressive"
    paper = "van den Oord, Kalchbrenner & Kavukcuoglu 2016, Pixel Recurrent Neural Networks, arXiv:1601.06759"
    Config = PixelCNNConfig
    presets = {
        "tiny": {
            "channels": 8,
            "blocks": 1,
            "kernel": 3,
            "first_kernel": 5,
            "embed": 4,
            "out_hidden": 8,
            "batch_size": 8,
            "lr": 1e-2,
        },
        "small": {
            "channels": 64,
            "blocks": 4,
            "kernel": 3,
            "first_kernel": 7,
            "embed": 16,
            "out_hidden": 128,
            "batch_size": 32,
            "lr": 1e-3,
        },
        # Pokémon within a CPU budget (benchmarks/pokemon_recipe.py, on a validation part of the training
        # sprites). ``pokemon``, about 10 minutes on 2 cores: the small net with mirrored sprites and
        # Polyak-averaged weights, the regularisers for a run long enough to overfit 712 sprites, stopped at
        # the validation minimum (2,800 steps of a 4,000-step curve). ``quick`` (README's first command):
        # the small net alone for 600 steps, 405 CPU-seconds of training with two threads; at 400 steps
        # neither mirroring nor averaging had helped on the validation sprites.
        "pokemon": {
            "channels": 64,
            "blocks": 4,
            "kernel": 3,
            "first_kernel": 7,
            "embed": 16,
            "out_hidden": 128,
            "batch_size": 32,
            "lr": 1e-3,
            "hflip": True,
            "ema": 0.999,
            "steps": 2800,
            "sample_every": 1000,
            "checkpoint_every": 400,
        },
        "quick": {
            "channels": 64,
            "blocks": 4,
            "kernel": 3,
            "first_kernel": 7,
            "embed": 16,
            "out_hidden": 128,
            "batch_size": 32,
            "lr": 1e-3,
            "steps": 600,
            "sample_every": 300,
            "checkpoint_every": 300,
        },
        "mnist": {
            "channels": 128,
            "blocks": 12,
            "kernel": 3,
            "first_kernel": 7,
            "embed": 8,
            "out_hidden": 128,
            "batch_size": 64,
            "lr": 5e-4,
            "grad_clip": 1.0,
        },
        "cifar": {
            "channels": 256,
            "blocks": 12,
            "kernel": 3,
            "first_kernel": 7,
            "embed": 16,
            "out_hidden": 1024,
            "batch_size": 16,
            "lr": 3e-4,
            "grad_clip": 1.0,
        },
    }

    def __init__(self, config: PixelCNNConfig, info):
        super().__init__(config, info)
        c, k = info.channels, info.num_values
        if config.channels // 2 < c or config.out_hidden < c:
            raise GenzooError(
                f"pixelcnn: channels // 2 and out_hidden must be >= the image's {c} channels "
                "(one feature group per channel)"
            )
        self.embed = ChannelEmbedding(c, k, config.embed)
        self.first = MaskedConv2d(self.embed.out_channels, config.channels, config.first_kernel, "A", c)
        self.blocks = nn.ModuleList(ResidualBlock(config.channels, config.kernel, c) for _ in range(config.blocks))
        self.out_hidden = MaskedConv2d(config.channels, config.out_hidden, 1, "B", c)
        self.out_logits = MaskedConv2d(config.out_hidden, c * k, 1, "B", c)

    def logits(self, onehot, condition=None):
        self.check_condition(condition)
        s = self.first(self.embed(onehot))  # (B, 2h, H, W)
        for block in self.blocks:
            s = block(s)  # (B, 2h, H, W)
        return output_logits(s, self.out_hidden, self.out_logits, self.info.channels)  # (B, C, H, W, K)

    # -- cached sampling --------------------------------------------------------------------
    @torch.no_grad()
    def init_cache(self, n, condition=None):
        self.check_condition(condition)
        c, h, w = self.info.shape
        kw = {"device": self.device, "dtype": self.dtype}
        half = self.config.channels // 2
        return {
            "x": window_buffer(n, self.embed.out_channels, h, w, **kw),  # input of the first conv
            "a": [window_buffer(n, half, h, w, **kw) for _ in self.blocks],  # input of each block's kxk conv
            "s": [torch.zeros(n, self.config.channels, **kw) for _ in range(len(self.blocks) + 1)],  # stream at (r, c)
            "m": [torch.zeros(n, half, **kw) for _ in self.blocks],  # each block's kxk output at (r, c)
            "o": torch.zeros(n, self.config.out_hidden, **kw),  # output hidden layer at (r, c)
            "first": IncrementalConv(self.first),
            "blocks": [
                (IncrementalConv(b.reduce), IncrementalConv(b.spatial), IncrementalConv(b.expand)) for b in self.blocks
            ],
            "out": (IncrementalConv(self.out_hidden), IncrementalConv(self.out_logits)),
        }

    @torch.no_grad()
    def step(self, cache, t, canvas, condition=None):
        g, r, col = position(t, self.info)
        x = cache["x"]
        self.embed.write_previous(x, t, canvas, self.info)
        first = cache["first"]
        s = cache["s"]
        s[0][:, first.index[g]] = first.at(x, r, col, g)  # (n, 2h_g)
        for i, (reduce, spatial, expand) in enumerate(cache["blocks"]):
            a, m = cache["a"][i], cache["m"][i]
            a[:, reduce.index[g], r, col] = F.relu(reduce.pixel(F.relu(s[i]), g))  # (n, h_g)
            m[:, spatial.index[g]] = F.relu(spatial.at(a, r, col, g))  # (n, h_g)
            idx = expand.index[g]
            s[i + 1][:, idx] = s[i][:, idx] + expand.pixel(m, g)  # (n, 2h_g)
        return output_logits_step(s[-1], *cache["out"], cache["o"], g), cache  # (n, K)
