"""Laws of the autoregressive family, checked on every registered autoregressive model."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_model
from genzoo.data import ImageInfo
from genzoo.data.base import position
from genzoo.models.base import AutoregressiveModel
from genzoo.models.registry import available_models

AR_MODELS = sorted(n for n, c in available_models().items() if issubclass(c, AutoregressiveModel))
SHAPES = [ImageInfo(channels=1, height=3, width=4, num_values=4),
          ImageInfo(channels=3, height=2, width=3, num_values=3)]


@pytest.mark.parametrize("info", SHAPES, ids=["grey", "rgb"])
@pytest.mark.parametrize("name", AR_MODELS)
def test_output_t_has_zero_gradient_from_inputs_at_or_after_t(name, info):
    """Causality by gradients: d logits[t] / d input[s] == 0 exactly for every s >= t."""
    model = tiny_model(name, info).double()
    x = torch.randint(0, info.num_values, (2, *info.shape))
    onehot = F.one_hot(x, info.num_values).double().requires_grad_(True)  # (B, C, H, W, K)
    logits = model.logits(onehot)
    L = info.dims
    seen_any_past = False
    for t in range(L):
        c, h, w = position(t, info)
        (grad,) = torch.autograd.grad(logits[:, c, h, w].sum(), onehot, retain_graph=True)
        per_pos = grad.abs().sum(dim=(0, 4)).permute(1, 2, 0).reshape(-1)  # (L,) raster, channel innermost
        assert torch.all(per_pos[t:] == 0), f"output {t} depends on inputs {torch.nonzero(per_pos[t:]).flatten() + t}"
        seen_any_past |= bool(per_pos[:t].abs().sum() > 0)
    assert seen_any_past, "no output depends on any earlier input"


@pytest.mark.parametrize("name", AR_MODELS)
def test_probabilities_sum_to_one_over_every_image(name):
    info = ImageInfo(channels=1, height=2, width=2, num_values=3)  # 3^4 = 81 images
    model = tiny_model(name, info).double().eval()
    every = torch.tensor(list(itertools.product(range(3), repeat=4))).view(-1, 1, 2, 2)
    total = model.log_prob(every).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("name", AR_MODELS)
def test_rgb_probabilities_sum_to_one(name):
    info = ImageInfo(channels=3, height=1, width=2, num_values=2)  # 2^6 = 64 images
    model = tiny_model(name, info).double().eval()
    every = torch.tensor(list(itertools.product(range(2), repeat=6))).view(-1, 1, 2, 3).permute(0, 3, 1, 2)
    assert model.log_prob(every).exp().sum().item() == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("name", AR_MODELS)
def test_cached_sampling_equals_naive_for_the_same_seed(name):
    info = ImageInfo(channels=1, height=5, width=5, num_values=6)
    model = tiny_model(name, info)
    cached = model.sample(8, generator=torch.Generator().manual_seed(11), precision=torch.float64)
    naive = model.sample(8, generator=torch.Generator().manual_seed(11), precision=torch.float64, naive=True)
    assert torch.equal(cached, naive)
    x = model.sample(4, generator=torch.Generator().manual_seed(1), precision=torch.float64)
    known = torch.zeros(1, 5, 5, dtype=torch.bool)
    known[:, :2] = True
    known[:, 3, 1] = True  # a known pixel after hidden ones (right-half style) is copied, not drawn
    a = model.complete(x, known, generator=torch.Generator().manual_seed(2), precision=torch.float64)
    b = model.complete(x, known, generator=torch.Generator().manual_seed(2), precision=torch.float64, naive=True)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", AR_MODELS)
def test_float32_cached_sampling_agrees_with_float32_naive_and_is_the_default(name):
    """The default path samples in the model's float32, and on a small case the cached and naive float32
    paths draw the same images (they differ only by float32 rounding of the same logits)."""
    info = ImageInfo(channels=1, height=4, width=4, num_values=5)
    model = tiny_model(name, info).eval()
    assert model.dtype == torch.float32
    default = model.sample(8, generator=torch.Generator().manual_seed(3))
    f32 = model.sample(8, generator=torch.Generator().manual_seed(3), precision=torch.float32)
    naive = model.sample(8, generator=torch.Generator().manual_seed(3), naive=True)
    assert torch.equal(default, f32)
    assert torch.equal(f32, naive)
    known = torch.zeros(1, 4, 4, dtype=torch.bool)
    known[:, :2] = True
    a = model.complete(f32, known, generator=torch.Generator().manual_seed(4))
    b = model.complete(f32, known, generator=torch.Generator().manual_seed(4), naive=True)
    assert torch.equal(a, b) and torch.equal(a[:, known], f32[:, known])


def test_temperature_zero_is_argmax_and_low_temperature_concentrates():
    from genzoo.sampling.autoregressive import draw

    logits = torch.tensor([[0.0, 1.0, 3.0, 0.5]]).repeat(4000, 1)
    u = torch.rand(4000, generator=torch.Generator().manual_seed(0))
    assert torch.all(draw(logits, u, 0.0) == 2)
    freq = torch.bincount(draw(logits, u, 1.0), minlength=4).float() / 4000
    assert torch.allclose(freq, torch.softmax(logits[0], 0), atol=0.03)
    assert (draw(logits, u, 0.3) == 2).float().mean() > freq[2]
