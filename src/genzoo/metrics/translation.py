"""Paired image metrics for translation, pure functions of float images (N, C, H, W) in [0, 1].

* :func:`l1_error` -- mean absolute difference per image (B,), in [0, 1] units (pix2pix's L1, Isola et al.
  2017, arXiv:1611.07004, eq. 3, on the [0, 1] scale).
* :func:`psnr` -- peak signal-to-noise ratio per image (B,) in dB: 10 log10(1 / MSE) for a peak of 1;
  +inf for identical images.
* :func:`ssim` -- structural similarity per image (B,) (Wang, Bovik, Sheikh & Simoncelli 2004, "Image
  Quality Assessment: From Error Visibility to Structural Similarity", IEEE TIP 13(4), eq. 13):
  SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)) with
  local statistics under an 11x11 Gaussian window of sigma 1.5 (valid positions only), C1 = (0.01 L)^2,
  C2 = (0.03 L)^2, L = 1; the mean over positions and channels. Images smaller than the window use a
  window of their shorter side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genzoo.errors import GenzooError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _check(a: torch.Tensor, b: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape or a.dim() != 4:
        raise GenzooError(
            f"{what}: images must both have shape (N, C, H, W), got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return a.double(), b.double()


def l1_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean |a - b| per image (B,)."""
    a, b = _check(a, b, "l1_error")
    return (a - b).abs().flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """10 log10(1 / MSE) per image (B,), dB."""
    a, b = _check(a, b, "psnr")
    mse = ((a - b) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)


def gaussian_window(size: int, sigma: float) -> torch.Tensor:
    """A (size, size) Gaussian that sums to 1."""
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Mean SSIM per image (B,) (Wang et al. 2004)."""
    a, b = _check(a, b, "ssim")
    c = a.shape[1]
    size = min(window, a.shape[2], a.shape[3])
    w = gaussian_window(size, sigma).to(a.device).expand(c, 1, size, size)  # (C, 1, k, k): per channel

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=c)  # (B, C, H - k + 1, W - k + 1)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)
