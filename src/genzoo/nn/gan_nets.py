"""Generator and discriminator networks for the GAN family (the networks, not the game).

* :class:`MLPGenerator` / :class:`MLPDiscriminator` -- fully connected nets on the flattened image
  (Goodfellow et al. 2014, arXiv:1406.2661); they take any shape, including the (2, 1, 1) points of the
  2-D mixtures. ReLU in G, LeakyReLU(0.2) in D.
* :class:`DCGANGenerator` / :class:`DCGANDiscriminator` -- the DCGAN recipe (Radford et al. 2015,
  arXiv:1511.06434, Sec. 3): G projects z to a small map, then stride-2 transposed 4x4 convs with batch
  norm and ReLU, tanh output; D mirrors it with stride-2 4x4 convs and LeakyReLU(0.2), no normalisation
  on its first layer. Widths double per level away from the image (``base``, 2 ``base``, ... capped
  at 8 ``base``). Weights start from N(0, 0.02) (batch-norm scales from N(1, 0.02)), as in the paper.
* :class:`MinibatchDiscrimination` (Salimans et al. 2016, arXiv:1606.03498, Sec. 3.2), an option on
  either discriminator (``minibatch_features``).
* :class:`MLPAutoencoder` / :class:`ConvAutoencoder` -- EBGAN's discriminator (Zhao et al. 2016,
  arXiv:1609.03126): the energy of an image is its mean squared reconstruction error.

Image sizes (:func:`conv_geometry`). The conv nets use ``n`` stride-2 levels with
``n = max{k : 4 * 2^k <= min(H, W)}`` and start from a ``ceil(H / 2^n) x ceil(W / 2^n)`` map, so G
draws a ``ceil(H / 2^n) 2^n``-sized image -- the next multiple of 2^n -- and crops its centre to
H x W; D pads its input back to that size with zeros (mid-grey in [-1, 1]; real and fake images are
padded alike, so the border carries no information). Powers of two need no crop (32 -> 4x4 start, 3
levels); MNIST's 28 starts at 7x7 (2 levels, no crop) and Pokemon's 20 at 5x5 (2 levels, no crop);
30 would start at 8x8 after 2 levels and lose one row and column on each side. Images smaller than
4x4 are refused (use the MLP nets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.errors import GenzooError
from genzoo.nn.mlp import mlp

Norm = Literal["batch", "layer", "none"]
MAX_WIDTH_MULT = 8  # DCGAN's widest layer is 8 x base channels


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # layer norm over (C, H, W) with a per-channel affine; independent per sample
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.'s initialisation: weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


@torch.no_grad()
def calibrate_batch_norm(module: nn.Module, inputs: torch.Tensor) -> None:
    """Set every batch norm's running statistics to those of ``module(inputs)`` (a cumulative average).

    A generator's input distribution is the prior, known before any data is seen, so its statistics
    can be right from the start; an untrained generator then samples in eval mode as it does in
    training, instead of through the default running variance of 1.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training, momenta = module.training, [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: one batch sets the statistics exactly
    module.train()
    module(inputs)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
        if m.num_batches_tracked is not None:  # None when the norm keeps no running statistics
            m.num_batches_tracked.zero_()
    module.train(was_training)


# -- minibatch discrimination -------------------------------------------------------------------------
class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016, Sec. 3.2: features of a sample measured against the rest of its batch.

    f (N, A) times a learned tensor T (A, B, C) gives M_i (B, C); c_b(i, j) = exp(-||M_{i,b} - M_{j,b}||_1);
    o(x_i)_b = sum_{j != i} c_b(i, j). The paper's sum runs over every j including i, which only adds
    the constant exp(0) = 1; leaving i out makes o = 0 for a batch of one. Returns [f, o] (N, A + B).
    """

    def __init__(self, in_features: int, num_kernels: int, kernel_dim: int = 5):
        super().__init__()
        self.num_kernels, self.kernel_dim = num_kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, num_kernels * kernel_dim) * 0.1)  # (A, B*C)

    @property
    def out_features(self) -> int:
        return self.T.shape[0] + self.num_kernels

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        m = (f @ self.T).view(-1, self.num_kernels, self.kernel_dim).transpose(0, 1)  # (B, N, C)
        l1 = torch.cdist(m, m, p=1)  # (B, N, N): ||M_i,b - M_j,b||_1, without an (N, N, B, C) intermediate
        o = (torch.exp(-l1).sum(2) - 1.0).T  # (N, B): sum over j != i (the j = i term is exp(0) = 1)
        return torch.cat([f, o], dim=1)  # (N, A + B)


def _head(features: int, minibatch_features: int) -> nn.Sequential:
    """Features (N, A) -> one output per sample, through minibatch features when asked for."""
    layers: list[nn.Module] = []
    if minibatch_features > 0:
        mbd = MinibatchDiscrimination(features, minibatch_features)
        layers.append(mbd)
        features = mbd.out_features
    layers.append(nn.Linear(features, 1))
    return nn.Sequential(*layers)


# -- fully connected nets -----------------------------------------------------------------------------
def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.2)


class MLPGenerator(nn.Module):
    """z (B, latent) -> image (B, C, H, W): ReLU hidden layers, tanh output (or linear when ``tanh=False``)."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], hidden: tuple[int, ...], tanh: bool = True):
        super().__init__()
        self.shape = tuple(shape)
        self.net = nn.Sequential(*mlp([latent_dim, *hidden, math.prod(shape)], nn.ReLU, last_activation=False))
        self.tanh = tanh

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z).view(-1, *self.shape)  # (B, C, H, W)
        return torch.tanh(out) if self.tanh else out


class MLPDiscriminator(nn.Module):
    """Image (B, C, H, W) -> one output per image (B,): LeakyReLU(0.2) hidden layers, linear output."""

    head: nn.Module  # features -> output; the conditional GANs may put their own head in its place

    def __init__(self, shape: tuple[int, int, int], hidden: tuple[int, ...], minibatch_features: int = 0):
        super().__init__()
        sizes = [math.prod(shape), *hidden]
        self.body = nn.Sequential(*mlp(sizes, _leaky))
        self.feature_dim = sizes[-1]
        self.head = _head(sizes[-1], minibatch_features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (B, feature_dim), read by the heads of the conditional GANs."""
        return self.body(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)  # (B,)


class MLPAutoencoder(nn.Module):
    """EBGAN's discriminator as an MLP: flat -> hidden... (the code) -> reversed hidden -> flat.

    ``forward(x)`` is the energy (B,), the mean squared reconstruction error per sub-pixel;
    with ``return_code=True`` also the codes (B, hidden[-1]) for the pulling-away term.
    """

    def __init__(self, shape: tuple[int, int, int], hidden: tuple[int, ...]):
        super().__init__()
        flat = math.prod(shape)
        self.encoder = nn.Sequential(*mlp([flat, *hidden], _leaky))
        self.decoder = nn.Sequential(*mlp([*reversed(hidden), flat], nn.ReLU, last_activation=False))

    def forward(self, x: torch.Tensor, return_code: bool = False):
        flat = x.flatten(1)  # (B, D)
        code = self.encoder(flat)  # (B, K)
        energy = ((self.decoder(code) - flat) ** 2).mean(1)  # (B,)
        return (energy, code) if return_code else energy


# -- convolutional nets (DCGAN) -----------------------------------------------------------------------
@dataclass(frozen=True)
class ConvGeometry:
    """How the conv nets cover an H x W image: ``levels`` stride-2 steps from a ``start`` map."""

    height: int
    width: int
    levels: int
    start: tuple[int, int]

    @property
    def full(self) -> tuple[int, int]:
        """The size G draws and D reads: (ceil(H / 2^n) 2^n, ceil(W / 2^n) 2^n)."""
        return self.start[0] << self.levels, self.start[1] << self.levels

    @property
    def offset(self) -> tuple[int, int]:
        """Top-left corner of the H x W image inside the full size (centre crop)."""
        return (self.full[0] - self.height) // 2, (self.full[1] - self.width) // 2

    def crop(self, y: torch.Tensor) -> torch.Tensor:
        top, left = self.offset
        return y[..., top : top + self.height, left : left + self.width]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        top, left = self.offset
        bottom, right = self.full[0] - self.height - top, self.full[1] - self.width - left
        if top == bottom == left == right == 0:
            return x
        return F.pad(x, (left, right, top, bottom))

    def width_at(self, level: int, base: int) -> int:
        """Channels after ``level`` downsampling steps (level >= 1): base * 2^(level-1), capped."""
        return base * min(MAX_WIDTH_MULT, 2 ** max(level - 1, 0))


def conv_geometry(height: int, width: int) -> ConvGeometry:
    if min(height, width) < 4:
        raise GenzooError(f"arch=conv needs images of at least 4x4 pixels, got {height}x{width}; use arch=mlp")
    levels = 0
    while 8 << levels <= min(height, width):  # largest n with 4 * 2^n <= min(H, W)
        levels += 1
    start = (-(-height // (1 << levels)), -(-width // (1 << levels)))
    return ConvGeometry(height, width, levels, start)


def _down(in_ch: int, geo: ConvGeometry, base: int, norm: str) -> tuple[nn.Sequential, int]:
    """Stride-2 4x4 convs + norm + LeakyReLU(0.2) from the full size to the start map; none on layer 1.

    With no levels (a 4x4..7x7 image) one 3x3 stride-1 conv stands in.
    """
    if geo.levels == 0:
        return nn.Sequential(nn.Conv2d(in_ch, base, 3, 1, 1), nn.LeakyReLU(0.2)), base
    layers: list[nn.Module] = []
    ch = in_ch
    for level in range(1, geo.levels + 1):
        out = geo.width_at(level, base)
        first = level == 1
        layers += [
            nn.Conv2d(ch, out, 4, 2, 1, bias=first or norm == "none"),
            *([] if first else [_norm(norm, out)]),
            nn.LeakyReLU(0.2),
        ]
        ch = out
    return nn.Sequential(*layers), ch


def _up(in_ch: int, out_ch: int, geo: ConvGeometry, base: int, norm: str) -> nn.Sequential:
    """Stride-2 transposed 4x4 convs + norm + ReLU from the start map; the last one makes ``out_ch``
    channels with no norm or activation. With no levels, one 3x3 conv."""
    if geo.levels == 0:
        return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, 1, 1))
    layers: list[nn.Module] = []
    ch = in_ch
    for level in range(geo.levels - 1, 0, -1):  # the width that the D trunk has at this level
        out = geo.width_at(level, base)
        layers += [nn.ConvTranspose2d(ch, out, 4, 2, 1, bias=norm == "none"), _norm(norm, out), nn.ReLU()]
        ch = out
    layers.append(nn.ConvTranspose2d(ch, out_ch, 4, 2, 1))
    return nn.Sequential(*layers)


class DCGANGenerator(nn.Module):
    """z (B, latent) -> image (B, C, H, W): project to (W_0, h0, w0), BN, ReLU, then the up stack; tanh."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], base: int, tanh: bool = True):
        super().__init__()
        c, h, w = shape
        self.geo = conv_geometry(h, w)
        self.ch0 = self.geo.width_at(self.geo.levels, base)
        h0, w0 = self.geo.start
        self.project = nn.Linear(latent_dim, self.ch0 * h0 * w0, bias=False)
        self.bn0 = nn.BatchNorm2d(self.ch0)
        self.up = _up(self.ch0, c, self.geo, base, "batch")
        self.tanh = tanh
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h0, w0 = self.geo.start
        a = F.relu(self.bn0(self.project(z).view(-1, self.ch0, h0, w0)))  # (B, W_0, h0, w0)
        out = self.geo.crop(self.up(a))  # (B, C, H, W)
        return torch.tanh(out) if self.tanh else out


class DCGANDiscriminator(nn.Module):
    """Image (B, C, H, W) -> one output per image (B,): pad, the down stack, a linear read-out
    (DCGAN's last 4x4 valid conv is this linear map when the start map is 4x4)."""

    head: nn.Module  # features -> output; the conditional GANs may put their own head in its place

    def __init__(self, shape: tuple[int, int, int], base: int, norm: Norm = "batch", minibatch_features: int = 0):
        super().__init__()
        c, h, w = shape
        self.geo = conv_geometry(h, w)
        self.body, ch = _down(c, self.geo, base, norm)
        self.feature_dim = ch * self.geo.start[0] * self.geo.start[1]
        self.head = _head(self.feature_dim, minibatch_features)
        dcgan_init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last map, flattened (B, feature_dim), read by the heads of the conditional GANs."""
        return self.body(self.geo.pad(x)).flatten(1)  # (B, W_n * h0 * w0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)  # (B,)


class ConvAutoencoder(nn.Module):
    """EBGAN's discriminator with DCGAN-shaped halves: the D trunk encodes (its output map is the
    code), a mirrored transposed-conv stack decodes; the energy is the mean squared error over the
    H x W image (the zero border is not scored)."""

    def __init__(self, shape: tuple[int, int, int], base: int, norm: Norm = "batch"):
        super().__init__()
        c, h, w = shape
        self.geo = conv_geometry(h, w)
        self.encoder, ch = _down(c, self.geo, base, norm)
        self.decoder = _up(ch, c, self.geo, base, norm)
        dcgan_init(self)

    def forward(self, x: torch.Tensor, return_code: bool = False):
        code = self.encoder(self.geo.pad(x))  # (B, W_n, h0, w0)
        recon = self.geo.crop(self.decoder(code))  # (B, C, H, W)
        energy = ((recon - x) ** 2).flatten(1).mean(1)  # (B,)
        return (energy, code.flatten(1)) if return_code else energy
