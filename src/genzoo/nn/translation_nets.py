"""Networks of image-to-image translation (the networks, not the games): a U-Net generator and the
PatchGAN discriminator of pix2pix, the ResNet generator and the history pool of CycleGAN, and a conv
encoder images -> codes.

* :class:`UNetGenerator` -- Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
  Networks", arXiv:1611.07004, Sec. 3.1.1 and Appendix 6.1.1: encoder C64-C128-C256-C512-C512-... of
  4x4 stride-2 convs with LeakyReLU(0.2), no normalisation on the first and the innermost layer; decoder
  of 4x4 stride-2 transposed convs with ReLU, each fed the previous decoder map concatenated with the
  encoder map of the same size (the skips); dropout 0.5 on the three innermost decoder layers, kept at
  test time as the generator's only noise (:class:`NoiseDropout`); tanh output. Widths double per level
  up to 8 ``base``. ``depth`` levels (8 for 256x256, down to 1x1) are capped at log2 of the shorter
  side; an image whose sides are not multiples of 2^depth is padded (replicated border) to the next
  multiple and the output cropped back, so the skips line up for every size.
* :class:`PatchDiscriminator` -- the same paper, Sec. 3.2.2: C64-C128-C256-C512 (4x4 convs, stride 2
  except the last, LeakyReLU(0.2), no normalisation on the first), then a 4x4 conv to one score per
  patch. With ``layers = 3`` each output sees a 70x70 patch (:func:`patch_receptive_field`); 1 gives
  16x16, 2 gives 34x34.
* :class:`ResnetGenerator` -- Zhu et al. 2017, "Unpaired Image-to-Image Translation using
  Cycle-Consistent Adversarial Networks", arXiv:1703.10593, Appendix 7.2 (after Johnson et al. 2016):
  c7s1-64, d128, d256, R256 x ``blocks`` (9 for 256x256, 6 for 128x128), u128, u64, c7s1-3, with
  instance norm, reflection padding and a tanh output; sides padded to a multiple of 4 (at least 8).
* :class:`HistoryPool` -- the same paper, Sec. 4 (after Shrivastava et al. 2017): D is shown generated
  images from a buffer of the last ``capacity`` (50) fakes: until the buffer is full every fake is stored
  and shown; then each fake, with probability 1/2, is shown as it is, else a uniformly chosen stored
  fake is shown and the new one takes its place.
* :class:`ConvEncoder` -- stride-2 4x4 convs (batch norm, LeakyReLU(0.2)) and a linear layer to a code;
  the encoder of the age-conditional GAN (Antipov et al. 2017, arXiv:1702.01983, Sec. 3.2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.errors import GenzooError

MAX_WIDTH_MULT = 8  # widest layer: 8 x base channels (C512 with base 64)


def _width(base: int, level: int) -> int:
    """Channels of level ``level`` (0 = next to the image): base, 2 base, ..., capped at 8 base."""
    return base * min(2**level, MAX_WIDTH_MULT)


def _pad_to(x: torch.Tensor, multiple: int, least: int = 1) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad (B, C, H, W) with its replicated border to sides that are multiples of ``multiple`` and >= ``least``."""
    h, w = x.shape[-2:]
    th = max(least, math.ceil(h / multiple) * multiple)
    tw = max(least, math.ceil(w / multiple) * multiple)
    top, left = (th - h) // 2, (tw - w) // 2
    pads = (left, tw - w - left, top, th - h - top)
    if any(pads):
        x = F.pad(x, pads, mode="replicate")
    return x, pads


def _crop(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]


class NoiseDropout(nn.Module):
    """Dropout that stays on in eval mode: pix2pix's noise z (Sec. 3.1: "noise in the form of dropout,
    applied ... at both training and test time"). Its masks come from the global RNG."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=True) if self.p > 0 else x


class UNetGenerator(nn.Module):
    """Image (B, C_in, H, W) in [-1, 1] -> image (B, C_out, H, W) in [-1, 1] through a U-Net."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        size: tuple[int, int],
        base: int = 64,
        depth: int = 8,
        dropout: float = 0.5,
        dropout_layers: int = 3,
    ):
        super().__init__()
        side = min(size)
        self.depth = max(1, min(depth, int(math.log2(side)) if side >= 2 else 1))
        d = self.depth
        self.down = nn.ModuleList()
        for i in range(d):
            c_in = in_channels if i == 0 else _width(base, i - 1)
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(c_in, _width(base, i), 4, 2, 1, bias=i in (0, d - 1)))
            if 0 < i < d - 1:
                layers.append(nn.InstanceNorm2d(_width(base, i), affine=True))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()  # up[i] makes the map of level i - 1 (the image for i = 0) from level i
        for i in reversed(range(d)):
            c_in = _width(base, i) * (1 if i == d - 1 else 2)  # the innermost map has no skip beside it
            if i == 0:
                self.up.insert(0, nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c_in, out_channels, 4, 2, 1), nn.Tanh()))
                continue
            layers = [
                nn.ReLU(),
                nn.ConvTranspose2d(c_in, _width(base, i - 1), 4, 2, 1, bias=False),
                nn.InstanceNorm2d(_width(base, i - 1), affine=True),
            ]
            if d - 1 - i < dropout_layers and dropout > 0:  # the innermost decoder layers
                layers.append(NoiseDropout(dropout))
            self.up.insert(0, nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, pads = _pad_to(x, 2**self.depth)  # (B, C, H', W'), sides multiples of 2^depth
        skips = []
        h = x
        for layer in self.down:
            h = layer(h)  # (B, C_i, H' / 2^(i+1), W' / 2^(i+1))
            skips.append(h)
        h = self.up[-1](skips[-1])
        for i in reversed(range(self.depth - 1)):
            h = self.up[i](torch.cat([h, skips[i]], dim=1))  # the skip: same size by construction
        return _crop(h, pads)


def patch_receptive_field(layers: int) -> int:
    """Side of the input patch one PatchGAN output sees: 4x4 convs, ``layers`` of stride 2, two of stride 1."""
    rf = 4 + 3  # the two stride-1 convs
    for _ in range(layers):
        rf = (rf - 1) * 2 + 4
    return rf


def patch_output_side(side: int, layers: int) -> int:
    """Output side of a PatchGAN for an input side (4x4 convs, padding 1)."""
    for _ in range(layers):
        side = side // 2
    return side - 2


class PatchDiscriminator(nn.Module):
    """(B, C, H, W) in [-1, 1] -> one score per patch (B, 1, H', W')."""

    def __init__(self, in_channels: int, size: tuple[int, int], base: int = 64, layers: int = 3):
        super().__init__()
        smallest = min(size)
        if patch_output_side(smallest, layers) < 1 or (layers > 0 and patch_output_side(smallest, layers) + 1 < 2):
            need = next(s for s in range(1, 4096) if patch_output_side(s, layers) >= 1)
            raise GenzooError(
                f"a PatchGAN with {layers} stride-2 layers ({patch_receptive_field(layers)}x"
                f"{patch_receptive_field(layers)} patches) needs images of at least {need}x{need}; "
                f"these are {size[0]}x{size[1]} (set d_layers lower)"
            )
        mods: list[nn.Module] = [nn.Conv2d(in_channels, base, 4, 2 if layers > 0 else 1, 1), nn.LeakyReLU(0.2)]
        c = base
        for i in range(1, layers + 1):
            stride = 2 if i < layers else 1
            mods += [nn.Conv2d(c, _width(base, i), 4, stride, 1, bias=False)]
            mods += [nn.InstanceNorm2d(_width(base, i), affine=True), nn.LeakyReLU(0.2)]
            c = _width(base, i)
        if layers == 0:
            mods = [nn.Conv2d(in_channels, base, 4, 1, 1), nn.LeakyReLU(0.2)]
        mods.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)
        self.layers = layers

    @property
    def receptive_field(self) -> int:
        return patch_receptive_field(self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 1, H', W')


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=False),
            nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=False),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image (B, C_in, H, W) in [-1, 1] -> image (B, C_out, H, W) in [-1, 1]: two downsamplings, residual
    blocks, two upsamplings."""

    def __init__(self, in_channels: int, out_channels: int, base: int = 64, blocks: int = 9):
        super().__init__()
        mods: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, base, 7, bias=False),
            nn.InstanceNorm2d(base, affine=True),
            nn.ReLU(),
        ]
        for i in range(2):  # d128, d256
            mods += [
                nn.Conv2d(base * 2**i, base * 2 ** (i + 1), 3, 2, 1, bias=False),
                nn.InstanceNorm2d(base * 2 ** (i + 1), affine=True),
                nn.ReLU(),
            ]
        mods += [ResidualBlock(base * 4) for _ in range(blocks)]
        for i in reversed(range(2)):  # u128, u64
            mods += [
                nn.ConvTranspose2d(base * 2 ** (i + 1), base * 2**i, 3, 2, 1, output_padding=1, bias=False),
                nn.InstanceNorm2d(base * 2**i, affine=True),
                nn.ReLU(),
            ]
        mods += [nn.ReflectionPad2d(3), nn.Conv2d(base, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, pads = _pad_to(x, 4, least=8)  # two stride-2 levels; reflection pads need sides > 1 inside
        return _crop(self.net(x), pads)


class HistoryPool(nn.Module):
    """The last ``capacity`` generated images (buffers, so a checkpoint keeps them); random draws from the
    global RNG, which the trainer seeds and checkpoints."""

    def __init__(self, capacity: int, shape: tuple[int, int, int]):
        super().__init__()
        self.capacity = capacity
        self.images: torch.Tensor
        self.count: torch.Tensor
        self.register_buffer("images", torch.zeros(capacity, *shape))  # (capacity, C, H, W)
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        """Fakes (B, C, H, W) -> what D is shown (B, C, H, W): a mix of these and stored older ones."""
        if self.capacity == 0:
            return fakes
        out = fakes.clone()
        for i in range(len(fakes)):
            n = int(self.count)
            if n < self.capacity:
                self.images[n] = fakes[i]
                self.count += 1
            elif float(torch.rand(())) < 0.5:
                j = int(torch.randint(self.capacity, ()))
                out[i] = self.images[j]
                self.images[j] = fakes[i]
        return out


class ConvEncoder(nn.Module):
    """Image (B, C, H, W) in [-1, 1] -> code (B, out_dim): stride-2 4x4 convs while the side is >= 4."""

    def __init__(self, in_channels: int, size: tuple[int, int], out_dim: int, base: int = 64):
        super().__init__()
        mods: list[nn.Module] = []
        h, w = size
        c, level = in_channels, 0
        while min(h, w) >= 4 and level < 5:
            mods += [nn.Conv2d(c, _width(base, level), 4, 2, 1, bias=level == 0)]
            if level > 0:
                mods.append(nn.BatchNorm2d(_width(base, level)))
            mods.append(nn.LeakyReLU(0.2))
            c, h, w, level = _width(base, level), h // 2, w // 2, level + 1
        self.features = nn.Sequential(*mods)
        self.head = nn.Linear(c * h * w, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))  # (B, out_dim)
