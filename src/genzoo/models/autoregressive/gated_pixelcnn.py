"""Gated PixelCNN, unconditional or conditional (van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves &
Kavukcuoglu 2016, "Conditional Image Generation with PixelCNN Decoders", NIPS, arXiv:1606.05328).

p(x | h) = prod_t p(x_t | x_<t, h) over sub-pixels in raster order, channels innermost (eq. 1 and 3); each
factor a softmax over the K values. Two stacks remove the blind spot of the masked PixelCNN (sec. 2.2):

* vertical stack: an (n//2+1) x n conv whose output at row r sees input rows r-n//2..r, all columns of the
  window. Stacked, row r of the vertical stack sees input rows <= r only. It enters the horizontal stack
  only shifted down by one row, through a 1x1 conv, so the horizontal stack at row r gets rows < r.
* horizontal stack: a 1 x n conv masked right of the centre (mask A in layer 1, B after), so it sees the
  pixels left of the current one; with the R -> G -> B channel groups of :mod:`genzoo.nn.masked` inside the
  pixel (every 1x1 conv of the horizontal stack is mask-B too). Residual connection in the horizontal stack
  (from layer 2 on; layer 1's input is the embedding), and a 1x1 skip connection out of every layer.

Each layer's gated unit (eq. 2 and 4; eq. 5 for the spatial map s):

    y = tanh(W_f * x + V_f^T h + V_f * s) ⊙ σ(W_g * x + V_g^T h + V_g * s)

where W * x is the stack's conv (2p outputs split into the f and g halves), h the one-hot class label and
s = m(spatial) a deconvolution network's map at the image size, V * s a 1x1 conv. Both terms are added in
both stacks of every layer (the last layer's vertical gate feeds nothing and has none). With h = 0 (no
label given to a conditional model) the class term vanishes. Output:
logits = Conv_B^{1x1}(ReLU(Conv_B^{1x1}(ReLU(sum of skips)))) -> (B, C, H, W, K).

Cached sampling. Per layer the cache keeps the vertical stack's input (full size), the current row of the
horizontal stack's input and of the vertical -> horizontal link, and the current pixel's gated features. At
step t = (r, c, k) the embedding of sub-pixel t-1 is written; then, for every layer, output group k of the
horizontal stack at (r, c) is computed from a 1 x n window (one small matmul per conv). The vertical stack
at row r depends on the whole input row r (its window looks right), so row r is computed once the row is
complete, at the first step of row r+1: one row convolution (W windows) per layer per image row, i.e. at
most one more window per layer per step, amortised. Cost per step: O(layers) small products on n-wide
windows.
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
    CausalConv2d,
    ChannelEmbedding,
    IncrementalConv,
    MaskedConv2d,
    first_half,
    output_logits,
    output_logits_step,
    window_buffer,
)

Condition = torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None


@dataclass
class GatedPixelCNNConfig:
    hidden: int = 64  # p: feature maps per stack (each gate computes 2p)
    layers: int = 15
    kernel: int = 5  # n: vertical (n//2+1) x n, horizontal 1 x n
    first_kernel: int = 7  # n of layer 1
    embed: int = 16  # embedding size E per image channel
    skip: int = 64  # channels of each skip connection
    out_hidden: int = 256  # width of the 1x1 output layer before the logits
    conditional: bool = False  # class-conditional (one-hot label, location-independent)
    spatial_channels: int = 0  # channels of a spatial condition map (0 = off), location-dependent
    spatial_scale: int = 1  # upsampling factor of m: the map is (H / scale, W / scale)

    def __post_init__(self):
        for key in ("hidden", "layers", "embed", "skip", "out_hidden", "spatial_scale"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        for key in ("kernel", "first_kernel"):
            k = getattr(self, key)
            if k < 1 or k % 2 == 0:
                raise ValueError(f"{key} must be odd and >= 1, got {k}")
        if self.spatial_channels < 0:
            raise ValueError("spatial_channels must be >= 0 (0 = no spatial condition)")


def gate(pre: torch.Tensor) -> torch.Tensor:
    """tanh(f) ⊙ σ(g) with (f, g) the two halves of dim 1: (B, 2p, ...) -> (B, p, ...)."""
    f, g = pre.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


def _row(term: torch.Tensor, r: int) -> torch.Tensor:
    """Row r of a gate term (n, 2p, 1 or H, 1 or W) that may be broadcast over rows -> (n, 2p, 1 or W)."""
    return term[:, :, min(r, term.shape[2] - 1)]


class GatedLayer(nn.Module):
    """One layer of both stacks (Fig. 2 of the paper)."""

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        skip: int,
        kernel: int,
        image_channels: int,
        *,
        first: bool,
        last: bool,
        num_classes: int,
        spatial_dim: int,
    ):
        super().__init__()
        c = image_channels
        self.first, self.last = first, last
        self.vertical = CausalConv2d(in_channels, 2 * hidden, (kernel // 2 + 1, kernel))
        self.v_to_h = CausalConv2d(2 * hidden, 2 * hidden, 1)
        self.horizontal = MaskedConv2d(
            in_channels, 2 * hidden, (1, kernel), "A" if first else "B", c, blocks=2
        )  # the f and g halves, grouped alike
        self.h_skip = MaskedConv2d(hidden, skip, 1, "B", c)
        self.h_out = None if last else MaskedConv2d(hidden, hidden, 1, "B", c)
        self.class_v = nn.Embedding(num_classes, 2 * hidden) if num_classes and not last else None
        self.class_h = nn.Embedding(num_classes, 2 * hidden) if num_classes else None
        self.spatial_v = nn.Conv2d(spatial_dim, 2 * hidden, 1) if spatial_dim and not last else None
        self.spatial_h = nn.Conv2d(spatial_dim, 2 * hidden, 1) if spatial_dim else None

    def condition_terms(self, y: torch.Tensor | None, s: torch.Tensor | None):
        """Additive gate terms (V^T h + V * s) for the vertical and horizontal stacks; 0 when absent."""
        v_term, h_term = 0.0, 0.0
        if y is not None and self.class_h is not None:
            h_term = h_term + self.class_h(y)[:, :, None, None]  # (B, 2p, 1, 1)
            if self.class_v is not None:
                v_term = v_term + self.class_v(y)[:, :, None, None]
        if s is not None and self.spatial_h is not None:
            h_term = h_term + self.spatial_h(s)  # (B, 2p, H, W)
            if self.spatial_v is not None:
                v_term = v_term + self.spatial_v(s)
        return v_term, h_term

    def forward(self, v, h, v_term, h_term):
        v_pre = self.vertical(v)  # (B, 2p, H, W): row r sees input rows <= r
        link = F.pad(self.v_to_h(v_pre), (0, 0, 1, 0))[:, :, :-1]  # (B, 2p, H, W): shifted down, rows < r
        v_new = None if self.last else gate(v_pre + v_term)  # (B, p, H, W)
        g = gate(self.horizontal(h) + link + h_term)  # (B, p, H, W)
        h_new = None
        if not self.last:
            h_new = self.h_out(g) + (0.0 if self.first else h)  # (B, p, H, W)
        return v_new, h_new, self.h_skip(g)


@register_model("gated_pixelcnn")
class GatedPixelCNN(AutoregressiveModel):
    """Gated PixelCNN without the blind spot; class- and/or spatially-conditional.

    Conditioning API: one ``condition`` argument, the same in ``logits(onehot, condition)``,
    ``log_prob(x, condition)``, ``sample(n, condition=...)``, ``complete(x, known, condition=...)`` and the
    cached pair ``init_cache(n, condition)`` / ``step(cache, t, canvas, condition)``:

    * ``conditional=True``: ``condition`` is (B,) long class labels in 0..info.num_classes-1. The cache
      keeps V^T h for every gate (``step`` does not re-read the condition). ``None`` uses h = 0 (no class
      term), e.g. for unlabelled sample grids.
    * ``spatial_channels=S > 0``: ``condition`` is a float map (B, S, H / spatial_scale, W / spatial_scale)
      (e.g. a low-resolution image's one-hot or features, as in a multiscale model); the cache keeps
      m(map) projected for every gate. It is required: without it the model raises.
    * both: the pair ``(labels, map)``.

    A tensor condition is told apart by its dtype: integers are labels, floats a spatial map.
    """

    family = "autoregressive"
    paper = "van den Oord et al. 2016, Conditional Image Generation with PixelCNN Decoders, arXiv:1606.05328"
    Config = GatedPixelCNNConfig
    presets = {
        "tiny": {
            "hidden": 8,
            "layers": 2,
            "kernel": 3,
            "first_kernel": 3,
            "embed": 4,
            "skip": 8,
            "out_hidden": 8,
            "batch_size": 8,
            "lr": 1e-2,
        },
        "small": {
            "hidden": 32,
            "layers": 6,
            "kernel": 3,
            "first_kernel": 7,
            "embed": 16,
            "skip": 64,
            "out_hidden": 128,
            "batch_size": 32,
            "lr": 1e-3,
        },
        "mnist": {
            "hidden": 64,
            "layers": 15,
            "kernel": 5,
            "first_kernel": 7,
            "embed": 8,
            "skip": 64,
            "out_hidden": 128,
            "batch_size": 64,
            "lr": 5e-4,
            "grad_clip": 1.0,
        },
        "cifar": {
            "hidden": 128,
            "layers": 15,
            "kernel": 5,
            "first_kernel": 7,
            "embed": 16,
            "skip": 256,
            "out_hidden": 1024,
            "batch_size": 16,
            "lr": 3e-4,
            "grad_clip": 1.0,
        },
    }

    def __init__(self, config: GatedPixelCNNConfig, info):
        super().__init__(config, info)
        c, k = info.channels, info.num_values
        if min(config.hidden, config.skip, config.out_hidden) < c:
            raise GenzooError(
                f"gated_pixelcnn: hidden, skip and out_hidden must be >= the image's {c} channels "
                "(one feature group per channel)"
            )
        if config.conditional and info.num_classes < 1:
            raise GenzooError("gated_pixelcnn: conditional=True needs data with class labels (num_classes >= 1)")
        num_classes = info.num_classes if config.conditional else 0
        self.embed = ChannelEmbedding(c, k, config.embed)
        self.layers = nn.ModuleList(
            GatedLayer(
                self.embed.out_channels if i == 0 else config.hidden,
                config.hidden,
                config.skip,
                config.first_kernel if i == 0 else config.kernel,
                c,
                first=i == 0,
                last=i == config.layers - 1,
                num_classes=num_classes,
                spatial_dim=config.hidden if config.spatial_channels else 0,
            )
            for i in range(config.layers)
        )
        self.spatial_net = self._deconv_net(config) if config.spatial_channels else None
        self.out_hidden = MaskedConv2d(config.skip, config.out_hidden, 1, "B", c)
        self.out_logits = MaskedConv2d(config.out_hidden, c * k, 1, "B", c)

    @staticmethod
    def _deconv_net(config) -> nn.Module:
        """m: (B, S, H/scale, W/scale) -> (B, p, H, W): 3x3 conv, a stride-`scale` deconvolution, 3x3 conv."""
        p, s = config.hidden, config.spatial_scale
        parts = [nn.Conv2d(config.spatial_channels, p, 3, padding=1), nn.ReLU()]
        if s > 1:
            parts += [nn.ConvTranspose2d(p, p, s, stride=s), nn.ReLU()]
        parts.append(nn.Conv2d(p, p, 3, padding=1))
        return nn.Sequential(*parts)

    def spatial_features(self, spatial: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """s = m(spatial) (B, p, H, W), after checking the map's shape; None for a model without one."""
        cfg = self.config
        if self.spatial_net is None:
            if spatial is not None:
                raise GenzooError("gated_pixelcnn was built with spatial_channels=0; it takes no spatial map")
            return None
        _, h, w = self.info.shape
        want = (batch, cfg.spatial_channels, h // cfg.spatial_scale, w // cfg.spatial_scale)
        if h % cfg.spatial_scale or w % cfg.spatial_scale:
            raise GenzooError(f"gated_pixelcnn: image {h}x{w} is not divisible by spatial_scale {cfg.spatial_scale}")
        if spatial is None:
            raise GenzooError(
                f"gated_pixelcnn with spatial_channels={cfg.spatial_channels} needs a spatial map of shape {want}"
            )
        if tuple(spatial.shape) != want:
            raise GenzooError(f"gated_pixelcnn: spatial map has shape {tuple(spatial.shape)}, expected {want}")
        return self.spatial_net(spatial.to(self.device, self.dtype))  # (B, p, H, W)

    def split_condition(self, condition: Condition) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``condition`` -> (class labels (B,) long or None, spatial map (B, S, h, w) float or None)."""
        if condition is None:
            return None, None
        if isinstance(condition, (tuple, list)):
            if len(condition) != 2 or not all(torch.is_tensor(c) for c in condition):
                raise GenzooError("gated_pixelcnn: a pair condition is (class labels, spatial map)")
            return condition[0], condition[1]
        if torch.is_tensor(condition) and condition.is_floating_point():
            return None, condition
        return condition, None

    def check_condition(self, condition) -> None:
        labels, spatial = self.split_condition(condition)
        super().check_condition(labels)
        if spatial is not None and not self.config.spatial_channels:
            raise GenzooError("gated_pixelcnn was built with spatial_channels=0; it takes no spatial map")
        if labels is not None and labels.is_floating_point():
            raise GenzooError("gated_pixelcnn: class labels must be integers")
        if labels is not None and spatial is not None and len(labels) != len(spatial):
            raise GenzooError(f"gated_pixelcnn: {len(labels)} class labels for {len(spatial)} spatial maps")

    def logits(self, onehot, condition=None):
        self.check_condition(condition)
        labels, spatial = self.split_condition(condition)
        s = self.spatial_features(spatial, onehot.shape[0])
        v = hz = self.embed(onehot)  # (B, C*E, H, W)
        skip = 0.0
        for layer in self.layers:
            v_term, h_term = layer.condition_terms(labels, s)
            v, hz, sk = layer(v, hz, v_term, h_term)
            skip = skip + sk  # (B, skip, H, W)
        return output_logits(skip, self.out_hidden, self.out_logits, self.info.channels)  # (B, C, H, W, K)

    # -- cached sampling --------------------------------------------------------------------
    @torch.no_grad()
    def init_cache(self, n, condition=None):
        self.check_condition(condition)
        c, h, w = self.info.shape
        kw = {"device": self.device, "dtype": self.dtype}
        p, two_p = self.config.hidden, 2 * self.config.hidden
        x = window_buffer(n, self.embed.out_channels, h, w, **kw)  # the embedded image so far
        cache = {
            "x": x,
            "v": [x] + [window_buffer(n, p, h, w, **kw) for _ in self.layers[1:]],  # vertical inputs
            "h": [None] + [window_buffer(n, p, 1, w, **kw) for _ in self.layers[1:]],  # horizontal inputs, row r
            "link": [torch.zeros(n, two_p, w, **kw) for _ in self.layers],  # vertical -> horizontal, row r
            "g": [torch.zeros(n, p, **kw) for _ in self.layers],  # gated horizontal features at (r, c)
            "skip": torch.zeros(n, self.config.skip, **kw),  # sum of skips at (r, c)
            "o": torch.zeros(n, self.config.out_hidden, **kw),  # output hidden layer at (r, c)
            "convs": [
                {
                    "vertical": IncrementalConv(layer.vertical),
                    "v_to_h": IncrementalConv(layer.v_to_h),
                    "horizontal": IncrementalConv(layer.horizontal),
                    "h_skip": IncrementalConv(layer.h_skip),
                    "h_out": None if layer.h_out is None else IncrementalConv(layer.h_out),
                }
                for layer in self.layers
            ],
            "out": (IncrementalConv(self.out_hidden), IncrementalConv(self.out_logits)),
            "terms": self._gate_terms(n, *self.split_condition(condition)),
        }
        return cache

    def _gate_terms(self, n, labels, spatial):
        """Per layer, the (vertical, horizontal) gate terms V^T h + V * s, each (n, 2p, 1 or H, 1 or W)."""
        s = self.spatial_features(spatial, n)
        zero = torch.zeros(n, 2 * self.config.hidden, 1, 1, device=self.device, dtype=self.dtype)
        return [tuple(zero + term for term in layer.condition_terms(labels, s)) for layer in self.layers]

    @torch.no_grad()
    def step(self, cache, t, canvas, condition=None):
        g, r, col = position(t, self.info)
        x = cache["x"]
        self.embed.write_previous(x, t, canvas, self.info)
        terms, convs = cache["terms"], cache["convs"]
        if r > 0 and col == 0 and g == 0:  # input row r-1 is complete: vertical stack row r-1, every layer
            for i, cv in enumerate(convs):
                v_pre = cv["vertical"].row(cache["v"][i], r - 1)  # (n, 2p, W)
                cache["link"][i] = cv["v_to_h"].row(v_pre.unsqueeze(2), 0)  # (n, 2p, W), used by row r
                if i + 1 < len(convs):
                    v_term = _row(terms[i][0], r - 1)  # (n, 2p, 1 or W)
                    cache["v"][i + 1][:, :, r - 1] = gate(v_pre + v_term)  # (n, p, W)
        skip = 0.0
        for i, cv in enumerate(convs):
            h_in = x[:, :, r : r + 1] if i == 0 else cache["h"][i]  # (n, I, 1, W)
            horizontal = cv["horizontal"]
            idx2 = horizontal.index[g]
            h_term = _row(terms[i][1], r)[:, idx2]  # (n, 2p_g, 1 or W)
            h_term = h_term[:, :, min(col, h_term.shape[2] - 1)]  # (n, 2p_g)
            pre = horizontal.at(h_in, 0, col, g) + cache["link"][i][:, idx2, col] + h_term  # (n, 2p_g)
            gated = cache["g"][i]
            p_idx = first_half(idx2)  # the f half's channels: group g's channels of p
            gated[:, p_idx] = gate(pre)  # (n, p_g)
            skip = skip + cv["h_skip"].pixel(gated, g)  # (n, skip_g)
            if cv["h_out"] is not None:
                out = cv["h_out"].pixel(gated, g)  # (n, p_g)
                if i > 0:
                    out = out + h_in[:, p_idx, 0, col]  # residual
                cache["h"][i + 1][:, p_idx, 0, col] = out
        cache["skip"][:, convs[0]["h_skip"].index[g]] = skip  # (n, skip_g)
        return output_logits_step(cache["skip"], *cache["out"], cache["o"], g), cache  # (n, K)
