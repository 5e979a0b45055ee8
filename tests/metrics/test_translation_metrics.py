"""L1, PSNR and SSIM against their formulas and known values."""

import math

import pytest
import torch

from genzoo.errors import GenzooError
from genzoo.metrics.translation import gaussian_window, l1_error, psnr, ssim


def test_l1_and_psnr_equal_their_formulas():
    a = torch.zeros(2, 3, 4, 4)
    b = torch.full((2, 3, 4, 4), 0.1)
    b[1] = 0.5
    assert torch.allclose(l1_error(a, b), torch.tensor([0.1, 0.5], dtype=torch.float64))
    assert psnr(a, b).tolist() == pytest.approx([20.0, 10 * math.log10(4)])  # 10 log10(1 / 0.01), 1 / 0.25
    assert math.isinf(float(psnr(a, a)[0]))
    with pytest.raises(GenzooError, match="same shape|both have shape"):
        l1_error(a, b[:, :1])


def test_ssim_known_values():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 16, 16, generator=g)
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(ssim(x, x.flip(0)), ssim(x.flip(0), x))  # symmetric
    # constant images: sigma = 0, so SSIM = (2 a b + C1) / (a^2 + b^2 + C1)
    a, b, c1 = 0.2, 0.7, 0.01**2
    val = ssim(torch.full((1, 1, 12, 12), a), torch.full((1, 1, 12, 12), b))
    assert float(val) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1))
    assert float(ssim(x[:1], 1 - x[:1])) < 0.1 < float(ssim(x[:1], (x[:1] * 0.9 + 0.05)))


def test_ssim_is_eq_13_with_gaussian_statistics_on_one_window():
    """An 11x11 image has exactly one window: SSIM there is eq. 13 with Gaussian-weighted moments."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(1, 1, 11, 11, generator=g).double(), torch.rand(1, 1, 11, 11, generator=g).double()
    w = gaussian_window(11, 1.5)
    assert float(w.sum()) == pytest.approx(1.0)
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
    cxy = (w * (x - mx) * (y - my)).sum()
    c1, c2 = 0.01**2, 0.03**2
    expected = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert float(ssim(x, y)) == pytest.approx(float(expected), rel=1e-9)
