"""PixelCNN++: a two-stream shifted-convolution hourglass with a discretized logistic mixture head.

Salimans, Karpathy, Chen & Kingma 2017, "PixelCNN++: Improving the PixelCNN with Discretized
Logistic Mixture Likelihood and Other Modifications", ICLR 2017, arXiv:1701.05517.

* Likelihood (sec. 2.1, eq. 2): per pixel a mixture of M logistics, discretized to the K
  values; see :mod:`genzoo.nn.logistic_mixture`. It is meant for ordinal values (8-bit
  intensities, binarized pixels), not palette indices, whose order means nothing: for palette
  data use a softmax model.
* Conditioning on whole pixels (sec. 2.2, eq. 3): the network's features at pixel (h, w) depend
  on earlier pixels only; the channels of a pixel are coupled by the head alone (the G and B
  means move linearly with the R and G values).
* Downsampling (sec. 2.3) with stride-2 shifted convolutions, two of them, and the mirror
  up-pass with stride-2 transposed convolutions (fig. 2). Odd sizes round up on the way down
  (ceil(H/2)) and are cropped at the bottom/right on the way up, which keeps causality.
* Short-cut connections (sec. 2.4): every down-pass output feeds the matching up-pass block.
* Dropout (sec. 2.5) on the inner activation of each block.
* From the paper's code (openai/pixel-cnn): no masks; a "u" stream of down-shifted
  convolutions (kernel 2x3) sees the rows above, a "ul" stream of down-right-shifted ones
  (kernel 2x2) sees the rows above and the pixels to the left (:mod:`genzoo.nn.shifted`); the
  first layer shifts by one row / column so that nothing sees the current pixel. Gated ResNet
  blocks with concat_elu: c1 = conv(concat_elu(x)) [+ nin(concat_elu(a))],
  c2 = conv(dropout(concat_elu(c1))) [+ class bias], out = x + c2_a * sigmoid(c2_b), where a is
  the u stream (for ul) or the short-cut.
* The input is the image mapped to [-1, 1] (``onehot @ grid``, differentiable) plus a channel
  of ones, so the zero padding is distinguishable from a black pixel.

Not reproduced: weight normalisation with data-dependent initialisation, Polyak averaging and
the learning-rate decay (the last conv of each block is scaled by 0.1 at init instead, the
code's init_scale).

Fast sampling (cf. Ramachandran et al. 2017, "Fast Generation for Convolutional Autoregressive
Models", arXiv:1704.06001): every layer's output (and its concat_elu) is cached, channels-last.
For each layer and each position we know, from the layer's footprint, the last pixel it depends
on (its "ready time", :meth:`PixelCNNPP.ready_maps`); when pixel p is about to be drawn, each
layer computes only the positions whose ready time is p - 1 (a box around them, usually 1x1),
reading its cached inputs. Each position of each layer is computed about once per image
(about 1.15 forward passes in all), strided and transposed layers included, and the features of
a pixel are computed once and shared by its R, G and B sub-pixels, which only re-run the head.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genzoo.data.base import position
from genzoo.errors import GenzooError
from genzoo.models.base import AutoregressiveModel
from genzoo.models.registry import register_model
from genzoo.nn.logistic_mixture import (
    all_value_log_probs,
    channel_log_probs,
    log_prob_values,
    num_params,
    value_grid,
)
from genzoo.nn.shifted import (
    Box,
    ShiftedConv,
    ShiftedDeconv,
    down_right_shifted,
    down_right_shifted_deconv,
    down_shifted,
    down_shifted_deconv,
)

ACT = ":act"  # an input named "key:act" is concat_elu of node key's output, computed once per position


def concat_elu(x: torch.Tensor) -> torch.Tensor:
    """elu([x, -x]) along channels (sec. 2.4)."""
    return F.elu(torch.cat([x, -x], dim=1))


def _nin(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution ("network in network") as a linear map over channels; cheaper than a conv
    call for the one-position inputs of sampling, and the same for whole images."""
    w = conv.weight.view(conv.out_channels, conv.in_channels)
    return F.linear(x.movedim(1, -1), w, conv.bias).movedim(-1, 1)


# -- the network as a list of nodes, each computable on any box of its output ------------------
class Node(nn.Module, abc.ABC):
    """One layer: ``compute(box, inputs, condition)`` gives its output on ``box`` from the whole
    cached inputs; ``ready(maps)`` gives, per output position, the last pixel it depends on."""

    def __init__(self, key: str, inputs: tuple[str, ...], size: tuple[int, int], channels: int):
        super().__init__()
        self.key, self.inputs, self.size, self.channels = key, inputs, size, channels

    @abc.abstractmethod
    def compute(self, box: Box, xs: list[torch.Tensor], condition: torch.Tensor | None) -> torch.Tensor:
        """This node's output on ``box`` from its inputs' cached maps."""

    @abc.abstractmethod
    def ready(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Per output position, the last pixel it depends on."""


class ConvNode(Node):
    """Sum of shifted convolutions of one input (stems, stride-2 downsampling)."""

    def __init__(self, key, src, convs: list[ShiftedConv], size, channels):
        super().__init__(key, (src,), size, channels)
        self.convs = nn.ModuleList(convs)

    def compute(self, box, xs, condition):
        out = self.convs[0].box(xs[0], box)
        for conv in self.convs[1:]:
            out = out + conv.box(xs[0], box)
        return out

    def ready(self, maps):
        return torch.stack([conv.ready(maps[0]) for conv in self.convs]).amax(0)


class DeconvNode(Node):
    def __init__(self, key, src, deconv: ShiftedDeconv, size, channels):
        super().__init__(key, (src,), size, channels)
        self.deconv = deconv

    def compute(self, box, xs, condition):
        return self.deconv.box(xs[0], box)

    def ready(self, maps):
        return self.deconv.ready(maps[0], self.size)


class ResidualIn(Node):
    """First half of a gated ResNet block: c1 = conv(concat_elu(x)) + nin(concat_elu(a)).

    Reads the activated inputs (``name:act``); with several aux inputs, concat_elu of each is
    concatenated, a channel permutation of concat_elu of their concatenation.
    """

    def __init__(self, key, src, aux: tuple[str, ...], conv: ShiftedConv, filters: int, size):
        super().__init__(key, (src + ACT, *(a + ACT for a in aux)), size, filters)
        self.conv = conv
        self.nin = nn.Conv2d(2 * filters * len(aux), filters, 1) if aux else None

    def compute(self, box, xs, condition):
        r0, r1, c0, c1 = box
        out = self.conv.box(xs[0], box)  # (n, F, r1-r0, c1-c0)
        if self.nin is not None:
            a = torch.cat([t[..., r0:r1, c0:c1] for t in xs[1:]], dim=1)  # (n, 2F * len(aux), ...)
            out = out + _nin(self.nin, a)
        return out

    def ready(self, maps):
        return torch.stack([self.conv.ready(maps[0]), *maps[1:]]).amax(0)


class ResidualOut(Node):
    """Second half: x + g_a * sigmoid(g_b) with g = conv(dropout(concat_elu(c1))) [+ class bias]."""

    def __init__(self, key, src, c1: str, conv: ShiftedConv, filters: int, size, dropout: float, num_classes: int):
        super().__init__(key, (src, c1 + ACT), size, filters)
        self.conv = conv
        self.dropout = nn.Dropout(dropout)
        self.embed = nn.Embedding(num_classes, 2 * filters) if num_classes else None
        with torch.no_grad():  # the paper's init_scale=0.1 on the block's last convolution
            conv.conv.weight.mul_(0.1)

    def compute(self, box, xs, condition):
        r0, r1, c0, c1 = box
        g = self.conv.box(xs[1], box, act=self.dropout)  # (n, 2F, ...): conv(dropout(concat_elu(c1)))
        if self.embed is not None:
            g = g + self.embed(condition)[:, :, None, None]
        a, b = g.chunk(2, dim=1)
        return xs[0][..., r0:r1, c0:c1] + a * torch.sigmoid(b)

    def ready(self, maps):
        return torch.maximum(maps[0], self.conv.ready(maps[1]))


class HeadNode(Node):
    """Mixture parameters nin(elu(ul)) (B, P, H, W)."""

    def __init__(self, key, src, filters: int, params: int, size):
        super().__init__(key, (src,), size, params)
        self.nin = nn.Conv2d(filters, params, 1)

    def compute(self, box, xs, condition):
        r0, r1, c0, c1 = box
        return _nin(self.nin, F.elu(xs[0][..., r0:r1, c0:c1]))

    def ready(self, maps):
        return maps[0]


@dataclass
class PixelCNNPPConfig:
    filters: int = 160
    resnets: int = 5  # gated ResNet blocks per stage (3 stages down, 3 up)
    mixtures: int = 10
    dropout: float = 0.5
    conditional: bool = False

    def __post_init__(self):
        if self.filters < 1 or self.resnets < 1 or self.mixtures < 1:
            raise ValueError("filters, resnets and mixtures must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")


@register_model("pixelcnn_pp")
class PixelCNNPP(AutoregressiveModel):
    """PixelCNN++ (arXiv:1701.05517) for ordinal values; see the module docstring."""

    family = "autoregressive"
    paper = (
        "Salimans, Karpathy, Chen & Kingma 2017, PixelCNN++: Improving the PixelCNN with Discretized "
        "Logistic Mixture Likelihood and Other Modifications, arXiv:1701.05517"
    )
    Config = PixelCNNPPConfig
    presets = {
        "cifar": {"filters": 160, "resnets": 5, "mixtures": 10, "dropout": 0.5, "batch_size": 16, "lr": 1e-3},
        "small": {"filters": 32, "resnets": 2, "mixtures": 5, "dropout": 0.1, "batch_size": 32, "lr": 1e-3},
        "tiny": {"filters": 8, "resnets": 1, "mixtures": 2, "dropout": 0.0, "batch_size": 8, "lr": 1e-2},
    }

    def __init__(self, config: PixelCNNPPConfig, info):
        super().__init__(config, info)
        if config.conditional and info.num_classes < 1:
            raise GenzooError("pixelcnn_pp: conditional=true needs data with class labels")
        nodes = self._build(config, info)
        self.nodes = nn.ModuleList(nodes)
        self.node_list: list[Node] = nodes  # the same modules, typed, in order
        self._activated = {k[: -len(ACT)] for node in nodes for k in node.inputs if k.endswith(ACT)}
        self.register_buffer("grid", value_grid(info.num_values), persistent=False)  # (K,)
        self._plan: list[list[tuple[int, Box]]] | None = None

    # -- the architecture (sec. 2.3-2.4, the paper's code) ---------------------------------------
    @staticmethod
    def _build(cfg: PixelCNNPPConfig, info) -> list[Node]:
        nf, classes = cfg.filters, (info.num_classes if cfg.conditional else 0)
        sizes = [(info.height, info.width)]
        for _ in range(2):
            sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))
        nodes: list[Node] = []

        def add(node: Node) -> str:
            nodes.append(node)
            return node.key

        u_conv, ul_conv = down_shifted, down_right_shifted  # the rows above; above and to the left

        def block(key, src, aux, conv, level):
            c1 = add(ResidualIn(key + ".c1", src, aux, conv(2 * nf, nf), nf, sizes[level]))
            return add(ResidualOut(key, src, c1, conv(2 * nf, 2 * nf), nf, sizes[level], cfg.dropout, classes))

        cin = info.channels + 1  # the image and a channel of ones
        u_list = [add(ConvNode("u0", "x", [down_shifted(cin, nf, shift=(1, 0))], sizes[0], nf))]
        ul_list = [
            add(
                ConvNode(
                    "ul0",
                    "x",
                    [
                        down_shifted(cin, nf, kernel=(1, 3), shift=(1, 0)),
                        down_right_shifted(cin, nf, kernel=(2, 1), shift=(0, 1)),
                    ],
                    sizes[0],
                    nf,
                )
            )
        ]
        for level in range(3):  # down pass
            for r in range(cfg.resnets):
                u_list.append(block(f"down{level}.u{r}", u_list[-1], (), u_conv, level))
                ul_list.append(block(f"down{level}.ul{r}", ul_list[-1], (u_list[-1],), ul_conv, level))
            if level < 2:
                u_list.append(
                    add(ConvNode(f"down{level}.u.stride", u_list[-1], [u_conv(nf, nf, 2)], sizes[level + 1], nf))
                )
                ul_list.append(
                    add(ConvNode(f"down{level}.ul.stride", ul_list[-1], [ul_conv(nf, nf, 2)], sizes[level + 1], nf))
                )
        u, ul = u_list.pop(), ul_list.pop()
        for level in (2, 1, 0):  # up pass, taking the down pass's outputs in reverse
            for r in range(cfg.resnets + (level < 2)):
                u = block(f"up{level}.u{r}", u, (u_list.pop(),), u_conv, level)
                ul = block(f"up{level}.ul{r}", ul, (u, ul_list.pop()), ul_conv, level)
            if level > 0:
                u = add(DeconvNode(f"up{level}.u.deconv", u, down_shifted_deconv(nf, nf), sizes[level - 1], nf))
                ul = add(
                    DeconvNode(f"up{level}.ul.deconv", ul, down_right_shifted_deconv(nf, nf), sizes[level - 1], nf)
                )
        assert not u_list and not ul_list
        add(HeadNode("head", ul, nf, num_params(info.channels, cfg.mixtures), sizes[0]))
        return nodes

    def _input(self, values: torch.Tensor) -> torch.Tensor:
        """Values in [-1, 1] (B, C, H, W) -> network input (B, C+1, H, W) with the channel of ones."""
        return torch.cat([values, torch.ones_like(values[:, :1])], dim=1)

    def activations(self, values: torch.Tensor, condition=None) -> dict[str, torch.Tensor]:
        """Every layer's teacher-forced output, by node key, from values in [-1, 1] (B, C, H, W)."""
        self.check_condition(condition)
        if self.conditional and condition is None:
            raise GenzooError("pixelcnn_pp is conditional: give a class label per image")
        cache = {"x": self._input(values)}
        for node in self.node_list:
            out = node.compute((0, node.size[0], 0, node.size[1]), [cache[k] for k in node.inputs], condition)
            cache[node.key] = out
            if node.key in self._activated:
                cache[node.key + ACT] = concat_elu(out)
        return cache

    def _params(self, values: torch.Tensor, condition) -> torch.Tensor:
        """Teacher-forced mixture parameters (B, P, H, W)."""
        return self.activations(values, condition)["head"]

    def _check_shape(self, shape) -> None:
        if tuple(shape) != self.info.shape:
            raise GenzooError(f"pixelcnn_pp was built for images {self.info.shape}, got {tuple(shape)}")

    def logits(self, onehot, condition=None):
        self._check_shape(onehot.shape[1:4])
        values = onehot.to(self.dtype) @ self.grid.to(self.dtype)  # (B, C, H, W) in [-1, 1]
        return all_value_log_probs(self._params(values, condition), onehot)  # (B, C, H, W, K)

    def log_prob(self, x, condition=None):
        """Exact log p(x) (B,) straight from the mixture (no (B, C, H, W, K) table)."""
        self._check_shape(x.shape[1:])
        params = self._params(self.grid.to(self.dtype)[x], condition)  # (B, P, H, W)
        return log_prob_values(params, x, self.info.num_values).flatten(1).sum(1)

    # -- cached sampling ----------------------------------------------------------------------------
    def ready_maps(self) -> dict[str, torch.Tensor]:
        """Per node and output position, the raster index of the last pixel it depends on (-1: none)."""
        h, w = self.info.height, self.info.width
        maps = {"x": torch.arange(h * w, dtype=torch.float64).view(h, w)}
        for node in self.node_list:
            maps[node.key] = node.ready([maps[k.removesuffix(ACT)] for k in node.inputs])
        return maps

    def sampling_plan(self) -> list[list[tuple[int, Box]]]:
        """For pixel p, the (node index, box) pairs whose positions become computable once pixels < p are known."""
        if self._plan is None:
            maps = self.ready_maps()
            pixels = self.info.height * self.info.width
            last = maps["head"].flatten().numpy()
            if np.any(last > np.arange(pixels) - 1):  # a wiring error would break causality
                raise AssertionError("pixelcnn_pp: the head reads the pixel it predicts")
            plan: list[list[tuple[int, Box]]] = [[] for _ in range(pixels)]
            for k, node in enumerate(self.node_list):
                d = maps[node.key].numpy().astype(np.int64) + 1  # step at which each position is ready
                rows, cols = np.indices(d.shape)
                lo_r = np.full(pixels + 1, 1 << 30)
                lo_c = lo_r.copy()
                hi_r = np.full(pixels + 1, -1)
                hi_c = hi_r.copy()
                np.minimum.at(lo_r, d.ravel(), rows.ravel())
                np.minimum.at(lo_c, d.ravel(), cols.ravel())
                np.maximum.at(hi_r, d.ravel(), rows.ravel())
                np.maximum.at(hi_c, d.ravel(), cols.ravel())
                for p in np.nonzero(hi_r[:pixels] >= 0)[0]:  # positions ready at the last pixel are never needed
                    plan[p].append((k, (int(lo_r[p]), int(hi_r[p]) + 1, int(lo_c[p]), int(hi_c[p]) + 1)))
            self._plan = plan
        return self._plan

    def init_cache(self, n, condition=None):
        if self.conditional and condition is None:
            raise GenzooError("pixelcnn_pp is conditional: give a class label per image")
        h, w = self.info.height, self.info.width
        kw = {"dtype": self.dtype, "device": self.device}
        # channels-last: the features of one position are contiguous, so the small windows a step
        # reads and writes touch few cache lines (a (n, C, H, W) layout scatters them over megabytes)
        cl = torch.channels_last
        cache = {"x": self._input(torch.zeros(n, self.info.channels, h, w, **kw)).contiguous(memory_format=cl)}
        for node in self.node_list:
            cache[node.key] = torch.zeros(n, node.channels, *node.size, **kw).contiguous(memory_format=cl)
            if node.key in self._activated:
                cache[node.key + ACT] = torch.zeros(n, 2 * node.channels, *node.size, **kw).contiguous(memory_format=cl)
        return cache

    def step(self, cache, t, canvas, condition=None):
        c, h, w = position(t, self.info)
        p = h * self.info.width + w
        if c == 0:  # new pixel: bring every layer up to date once; R, G, B reuse the features
            if p > 0:
                ph, pw = divmod(p - 1, self.info.width)
                cache["x"][:, :-1, ph, pw] = self.grid.to(self.dtype)[canvas[:, :, ph, pw]]
            for k, box in self.sampling_plan()[p]:
                node = self.node_list[k]
                r0, r1, c0, c1 = box
                out = node.compute(box, [cache[i] for i in node.inputs], condition)
                cache[node.key][..., r0:r1, c0:c1] = out
                if node.key in self._activated:
                    cache[node.key + ACT][..., r0:r1, c0:c1] = concat_elu(out)
        params = cache["head"][:, :, h : h + 1, w : w + 1]  # (n, P, 1, 1)
        pixel = canvas[:, :, h : h + 1, w : w + 1]  # (n, C, 1, 1); channels >= c are garbage, never read
        return channel_log_probs(params, pixel, c, self.info.num_values)[:, 0, 0], cache  # (n, K)
