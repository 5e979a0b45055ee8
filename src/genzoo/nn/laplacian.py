"""The Laplacian pyramid of LAPGAN (Denton, Chintala, Szlam & Fergus 2015, "Deep Generative Image Models
using a Laplacian Pyramid of Adversarial Networks", arXiv:1506.05751, Sec. 3.1) and the networks of its
conditional levels (the networks, not the game).

Pyramid (Burt & Adelson's construction as the paper uses it). With d(.) the 2x downsampling (a mean
over each 2x2 block) and u(.) the 2x upsampling (bilinear, half-pixel centres), an image I = I_0 gives
the Gaussian pyramid I_{k+1} = d(I_k) and the band-pass coefficients

    h_k = I_k - u(I_{k+1})   (k = 0 .. K-2),    h_{K-1} = I_{K-1}   (the low-pass residual),

and the image is rebuilt coarse to fine by I_k = u(I_{k+1}) + h_k (eq. 3). :func:`decompose` returns
[h_0, ..., h_{K-1}] (finest first) and :func:`reconstruct` inverts it: the same u(.) of the same
tensors is added back, so the round trip is exact up to the rounding of one subtraction and one
addition per level. A side must be divisible by 2^(K-1).

Networks of a conditional level k < K-1 (the paper's CIFAR-10 and STL models, Sec. 4): the generator
reads the upsampled coarser image l_k = u(I_{k+1}) with the noise as extra input planes ("a 4th colour
plane") and outputs the band h_k through stride-1 convolutions with ReLU; the discriminator reads
l_k + h_k (the coarse image added to the band before the first convolution) and l_k itself, through
stride-1 convolutions with LeakyReLU, then one linear output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.errors import GenzooError


def downsample(x: torch.Tensor) -> torch.Tensor:
    """d(x): the mean of each 2x2 block, (B, C, H, W) -> (B, C, H/2, W/2)."""
    return F.avg_pool2d(x, 2)


def upsample(x: torch.Tensor) -> torch.Tensor:
    """u(x): bilinear 2x upsampling with half-pixel centres, (B, C, H, W) -> (B, C, 2H, 2W)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def check_pyramid(height: int, width: int, levels: int) -> None:
    """A one-line error unless an H x W image has a ``levels``-level pyramid (sides divisible by 2^(K-1))."""
    if levels < 1:
        raise GenzooError(f"a Laplacian pyramid needs levels >= 1, got {levels}")
    step = 1 << (levels - 1)
    if height % step or width % step:
        raise GenzooError(
            f"a {levels}-level Laplacian pyramid halves the image {levels - 1} times: "
            f"{height}x{width} is not divisible by {step}"
        )


def gaussian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[I_0, ..., I_{K-1}]: the image and its ``levels - 1`` successive downsamplings (finest first)."""
    check_pyramid(x.shape[-2], x.shape[-1], levels)
    out = [x]
    for _ in range(levels - 1):
        out.append(downsample(out[-1]))
    return out


def decompose(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[h_0, ..., h_{K-1}]: the band-pass images h_k = I_k - u(I_{k+1}) and the low-pass I_{K-1} last."""
    gauss = gaussian_pyramid(x, levels)
    return [fine - upsample(coarse) for fine, coarse in zip(gauss[:-1], gauss[1:])] + [gauss[-1]]


def reconstruct(bands: list[torch.Tensor]) -> torch.Tensor:
    """The image from [h_0, ..., h_{K-1}], coarse to fine: I_k = u(I_{k+1}) + h_k."""
    if not bands:
        raise GenzooError("a Laplacian pyramid needs at least one level")
    image = bands[-1]
    for band in reversed(bands[:-1]):
        image = upsample(image) + band
    return image


def _stack(sizes: list[int], kernel: int, act, last_activation: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Conv2d(a, b, kernel, padding=kernel // 2))
        if last_activation or i < len(sizes) - 2:
            layers.append(act())
    return layers


class BandGenerator(nn.Module):
    """G_k(z_k, l_k) -> h_k (B, C, H, W): convs over [l_k, z_k planes], ReLU between, a linear output."""

    def __init__(self, channels: int, noise_channels: int, hidden: tuple[int, ...], kernel: int):
        super().__init__()
        self.noise_channels = noise_channels
        self.net = nn.Sequential(*_stack([channels + noise_channels, *hidden, channels], kernel, nn.ReLU, False))

    def forward(self, z: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """z (B, noise_channels * H * W), coarse = l_k (B, C, H, W) -> the band (B, C, H, W)."""
        b, _, h, w = coarse.shape
        planes = z.view(b, self.noise_channels, h, w)  # (B, N, H, W)
        return self.net(torch.cat([coarse, planes], dim=1))


class BandDiscriminator(nn.Module):
    """D_k(h_k, l_k) -> one logit per image (B,): convs over [l_k + h_k, l_k], LeakyReLU(0.2), linear read-out."""

    def __init__(self, shape: tuple[int, int, int], hidden: tuple[int, ...], kernel: int):
        super().__init__()
        c, h, w = shape
        self.body = nn.Sequential(*_stack([2 * c, *hidden], kernel, lambda: nn.LeakyReLU(0.2), True))
        self.out = nn.Linear(hidden[-1] * h * w, 1)

    def forward(self, band: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        feats = self.body(torch.cat([coarse + band, coarse], dim=1))  # (B, F, H, W)
        return self.out(feats.flatten(1)).squeeze(1)  # (B,)
