"""The Laplacian pyramid (Denton et al. 2015, arXiv:1506.05751, Sec. 3.1): exact decomposition and reconstruction."""

import pytest
import torch

from genzoo.errors import GenzooError
from genzoo.nn.laplacian import decompose, downsample, gaussian_pyramid, reconstruct, upsample


@pytest.mark.parametrize("levels,size", [(1, 8), (2, 8), (3, 32), (3, 28), (4, 16)])
def test_decompose_then_reconstruct_is_exact(levels, size):
    x = torch.rand(3, 2, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    bands = decompose(x, levels)
    assert len(bands) == levels
    assert [b.shape[-1] for b in bands] == [size >> k for k in range(levels)]
    assert torch.allclose(reconstruct(bands), x, rtol=0, atol=1e-12)  # float64 rounding only
    # float32 images of 8-bit levels come back to the same level
    img = torch.randint(0, 256, (2, 3, size, size), generator=torch.Generator().manual_seed(1))
    back = reconstruct(decompose(img.float() / 255, levels))
    assert torch.equal((back * 255).round().long(), img)


def test_bands_are_band_pass_and_the_last_is_the_low_pass():
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    bands, gauss = decompose(x, 3), gaussian_pyramid(x, 3)
    assert torch.equal(bands[-1], gauss[-1])
    assert torch.allclose(bands[0], x - upsample(downsample(x)))
    # a constant image has no detail: every band but the low-pass one is zero
    flat = torch.full((1, 3, 8, 8), 0.3, dtype=torch.float64)
    const = decompose(flat, 3)
    assert all(b.abs().max() < 1e-15 for b in const[:-1]) and torch.allclose(const[-1], flat[..., :2, :2])


def test_a_size_the_pyramid_cannot_halve_is_a_one_line_error():
    with pytest.raises(GenzooError, match="28x28 is not divisible by 8"):
        decompose(torch.zeros(1, 1, 28, 28), 4)
    with pytest.raises(GenzooError, match="at least one level"):
        reconstruct([])
