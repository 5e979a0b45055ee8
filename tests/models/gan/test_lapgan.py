"""LAPGAN (Denton et al. 2015, arXiv:1506.05751): levels conditioned on the coarser image, sampled coarse to fine."""

import pytest
import torch

from conftest import random_dataset, tiny_model
from genzoo.data import ImageInfo
from genzoo.errors import GenzooError
from genzoo.models.gan.lapgan import LAPGAN
from genzoo.models.registry import resolve_configs
from genzoo.nn.laplacian import decompose, upsample
from genzoo.training.config import TrainConfig

INFO = ImageInfo(channels=3, height=16, width=16, num_values=256)


def model(levels=3, **extra):
    cfg, _ = resolve_configs(LAPGAN, TrainConfig, "tiny", {"levels": str(levels), **extra})
    torch.manual_seed(0)
    return LAPGAN(cfg, INFO)


def test_each_levels_generator_output_and_gradient_depend_on_the_coarser_image():
    m = model()
    for k, g in enumerate(m.generator.bands):
        _, h, w = m.level_shape(k)
        z = torch.randn(2, m.config.noise_channels * h * w)
        coarse = torch.rand(2, 3, h, w, requires_grad=True)
        out = g(z, coarse)
        assert out.shape == (2, 3, h, w)
        assert not torch.allclose(out, g(z, coarse.detach() * 0.5))
        (grad,) = torch.autograd.grad(out.sum(), coarse)
        assert grad.abs().sum() > 0
        # and on its own noise
        assert not torch.allclose(out, g(torch.randn_like(z), coarse))
        # the discriminator of the level reads the coarser image too
        band = torch.randn(2, 3, h, w)
        d = m.discriminator.bands[k]
        assert not torch.allclose(d(band, coarse), d(band, coarse * 0.5))


def test_sampling_runs_coarse_to_fine_through_the_pyramid():
    m = model().eval()
    z = m.prior(4, torch.Generator().manual_seed(0))
    assert z.shape == (4, m.latent_dim) and m.latent_dim == 4 + 16 * 16 + 8 * 8
    levels = m.generator.levels(z)
    assert [t.shape[-1] for t in levels] == [16, 8, 4]
    codes = m.generator.split(z)
    for k in range(2):  # I~_k = u(I~_{k+1}) + G_k(z_k, u(I~_{k+1}))
        coarse = upsample(levels[k + 1])
        assert torch.allclose(levels[k], coarse + m.generator.bands[k](codes[k], coarse))
    # the finest image changes with the coarsest level's code (through the coarser images)
    z2 = z.clone()
    z2[:, :4] += 1
    assert not torch.allclose(m.generator(z2), levels[0])
    grids = m.pyramid_samples(3, torch.Generator().manual_seed(1))
    assert [g.shape for g in grids] == [(3, 3, 16, 16), (3, 3, 8, 8), (3, 3, 4, 4)]
    assert all(g.min() >= 0 and g.max() <= 1 for g in grids)


def test_training_pits_each_level_against_the_real_pyramid():
    m = model()
    x = torch.randint(0, 256, (6, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    out = m.player_loss("discriminator", {"x": x})
    assert {"d_real_0", "d_real_1", "d_real_2", "d_fake_2"} <= set(out.metrics)
    out.loss.backward()
    # every level's D gets gradient, and no G does in D's update
    assert all(p.grad is not None for p in m.discriminator.parameters())
    assert all(p.grad is None for p in m.generator.parameters())
    m.zero_grad(set_to_none=True)
    m.player_loss("generator", {"x": x}).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.generator.bands.parameters())
    assert all(p.grad is not None for p in m.generator.coarse.parameters())
    # the real band D_0 sees is the data's h_0, given the data's upsampled I_1
    seen = []
    m.discriminator.bands[0].register_forward_hook(lambda mod, args, out: seen.append(args))
    m.player_loss("discriminator", {"x": x})
    real = m.real_input(x)
    bands = decompose(real, 3)
    assert torch.allclose(seen[0][0], bands[0]) and torch.allclose(seen[0][1], upsample(bands[1] + upsample(bands[2])))
    assert torch.allclose(seen[1][1], seen[0][1])  # the fake band is judged given the same real coarse image


def test_bad_settings_are_refused():
    with pytest.raises(GenzooError, match="lapgan: .*not divisible by 4.*levels"):
        LAPGAN(resolve_configs(LAPGAN, TrainConfig, "tiny", {"levels": "3"})[0], ImageInfo(1, 6, 6, 5))
    for bad in ({"levels": "1"}, {"arch": "conv"}, {"loss": "wgan_gp"}, {"kernel": "4"}):
        with pytest.raises((GenzooError, ValueError)):
            resolve_configs(LAPGAN, TrainConfig, "tiny", bad)


def test_the_tiny_model_trains_on_the_shared_shape():
    m = tiny_model("lapgan")
    data = random_dataset(m.info)
    out = m.player_loss("generator", data.batch("train", torch.arange(4)))
    assert torch.isfinite(out.loss)


def test_minibatch_features_reach_the_coarsest_discriminator():
    """The coarsest level is a plain GAN: with minibatch_features its D's output for one image depends on the
    rest of the batch, without them it does not (a key that is accepted acts)."""
    for k, depends in ((3, True), (0, False)):
        m = model(minibatch_features=str(k))
        coarse = m.discriminator.coarse
        x = torch.randn(4, *m.level_shape(2))
        y = x.clone()
        y[3] += 1.0
        assert bool(coarse(x)[0] != coarse(y)[0]) is depends
