"""pix2pix, CycleGAN and the age-conditional GAN: the family laws of their nets and losses."""

import math

import pytest
import torch
from torch import nn

from conftest import random_dataset, tiny_model
from genzoo.data.base import MIN_SIZE
from genzoo.errors import GenzooError
from genzoo.losses.gan import discriminator_loss, generator_loss
from genzoo.nn.translation_nets import HistoryPool, PatchDiscriminator, UNetGenerator, patch_receptive_field
from genzoo.training.config import TrainConfig
from genzoo.training.trainer import Trainer


@pytest.mark.parametrize("side", [MIN_SIZE, 3, 5, 8, 13, 16, 31, 33, 64, 70])
def test_unet_skips_line_up_for_every_size(side):
    """Each decoder map meets an encoder map of its own size, and the output has the input's size."""
    torch.manual_seed(0)
    net = UNetGenerator(3, 3, (side, side), base=8, depth=8, dropout=0.0)
    met = []
    hooks = [layer.register_forward_pre_hook(lambda m, args: met.append(args[0].shape)) for layer in list(net.up)[:-1]]
    x = torch.randn(2, 3, side, side, requires_grad=True)
    out = net(x)
    for h in hooks:
        h.remove()
    assert out.shape == x.shape
    assert len(met) == net.depth - 1  # every level below the innermost reads a concatenated skip
    # the output is aligned with the input: pixel (0, 0) depends on the input's corner
    out[0, :, 0, 0].sum().backward()
    assert x.grad[0, :, :2, :2].abs().sum() > 0


def test_patchgan_receptive_field_is_70_by_gradients():
    d = PatchDiscriminator(6, (128, 128), base=4, layers=3)
    for name, m in list(d.net.named_children()):  # instance norm couples every position: measure the convs
        if isinstance(m, nn.InstanceNorm2d):
            d.net[int(name)] = nn.Identity()
    x = torch.randn(1, 6, 128, 128, requires_grad=True)
    out = d(x)  # (1, 1, 14, 14)
    out[0, 0, 7, 7].backward()
    rows, cols = torch.nonzero(x.grad.abs().sum((0, 1)), as_tuple=True)
    assert int(rows.max() - rows.min()) + 1 == 70 and int(cols.max() - cols.min()) + 1 == 70
    assert d.receptive_field == patch_receptive_field(3) == 70
    assert [patch_receptive_field(n) for n in (1, 2)] == [16, 34]
    with pytest.raises(GenzooError, match="needs images of at least 24x24"):
        PatchDiscriminator(3, (16, 16), layers=3)


def test_history_pool_mixes_old_and_new_with_probability_one_half():
    torch.manual_seed(0)
    pool = HistoryPool(50, (1, 1, 1))
    first = torch.arange(50.0).view(50, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: every fake is shown as it is
    new = 1000 + torch.arange(4000.0).view(4000, 1, 1, 1)  # every fake distinct
    shown = torch.cat([pool.query(new[i : i + 100]) for i in range(0, 4000, 100)])
    old = (shown != new).float().mean().item()
    assert abs(old - 0.5) < 4 * math.sqrt(0.25 / 4000)  # a stored image instead with probability 1/2
    assert bool((shown[shown != new] < new[shown != new]).all())  # what replaces a fake is an older one
    assert int(pool.count) == 50 and bool((pool.images >= 1000).all())  # the buffer now holds recent fakes


def _batch(model, n=4, seed=0):
    data = random_dataset(model.info, n=n, seed=seed, paired=True)
    return data.batch("train", list(range(n - 1)))


def test_cycle_and_identity_losses_equal_their_formulas():
    model = tiny_model("cyclegan")
    a, b = model.pair(_batch(model))
    g, f = model.generators["ab"], model.generators["ba"]
    cyc = (f(g(a)) - a).abs().mean() + (g(f(b)) - b).abs().mean()
    idt = (g(b) - b).abs().mean() + (f(a) - a).abs().mean()
    assert torch.allclose(model.cycle_loss(a, b), cyc) and torch.allclose(model.identity_loss(a, b), idt)
    torch.manual_seed(0)
    out = model.player_loss("generator", _batch(model))
    cfg = model.config
    adv = generator_loss("least_squares", model.discriminators["b"](g(a)).flatten()) + generator_loss(
        "least_squares", model.discriminators["a"](f(b)).flatten()
    )
    expected = adv + cfg.cycle_weight * cyc + cfg.identity_weight * cfg.cycle_weight * idt
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.metrics["cycle"] == pytest.approx(cyc.item(), rel=1e-5)


def test_least_squares_loss_formula():
    r, f = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 1.0])
    assert discriminator_loss("least_squares", r, f).item() == pytest.approx((0 + 0.25) / 2 + (0 + 1) / 2)
    assert generator_loss("least_squares", f).item() == pytest.approx((1 + 0) / 2)


def test_cyclegan_learning_rate_decays_linearly_in_training(tmp_path):
    model = tiny_model("cyclegan")
    assert [model.lr_scale(s, 10) for s in (0, 4, 5, 6, 9)] == pytest.approx([1, 1, 1, 0.8, 0.2])
    data = random_dataset(model.info, paired=True)
    cfg = TrainConfig(steps=8, batch_size=2, sample_every=0, eval_every=-1, lr=1e-3)
    trainer = Trainer(model, data, cfg, tmp_path, model_name="cyclegan", quiet=True)
    trainer.fit()
    for opt in trainer.optims.values():  # last round: step 7 of 8 -> 1 - 3/4
        assert opt.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.25)


@pytest.mark.parametrize("name", ["pix2pix", "cyclegan"])
def test_translation_keeps_shapes_and_value_ranges(name):
    model = tiny_model(name)
    x = random_dataset(model.info, n=5).images("train")
    y = model.translate(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == torch.long and int(y.min()) >= 0 and int(y.max()) <= 255
    with pytest.raises(GenzooError, match="images must have shape"):
        model.translate(x[:, :1])
    batch = random_dataset(model.info, paired=True).batch("train", [0, 1])
    del batch["target"]
    with pytest.raises(GenzooError, match="no 'target' images"):
        model.player_loss("generator", batch)


def test_pix2pix_noise_is_dropout_and_the_l1_baseline_has_no_discriminator(tmp_path):
    model = tiny_model("pix2pix")
    x = random_dataset(model.info, n=6).images("train")[:4]
    one = model.translate(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(one, model.translate(x, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(one, model.translate(x, generator=torch.Generator().manual_seed(2)))
    from genzoo.models.gan.pix2pix import Pix2Pix
    from genzoo.models.registry import make_config

    cfg = make_config(Pix2Pix.Config, {"base_channels": 4, "depth": 3, "d_layers": 1, "gan_weight": 0.0})
    l1 = Pix2Pix(cfg, model.info)
    assert l1.discriminator is None and list(l1.schedule) == ["generator"]
    batch = random_dataset(model.info, paired=True).batch("train", [0, 1])
    out = l1.player_loss("generator", batch)
    torch.manual_seed(0)
    assert out.metrics["l1"] == pytest.approx(out.loss.item() / cfg.l1_weight)


def test_age_condition_changes_the_output():
    model = tiny_model("age_cgan")
    model.eval()
    x = random_dataset(model.info, n=6).images("train")[:4]
    young = model.translate(x, condition=torch.zeros(4, dtype=torch.long))
    old = model.translate(x, condition=torch.full((4,), 5, dtype=torch.long))
    assert young.shape == x.shape and not torch.equal(young, old)
    z = torch.randn(3, model.latent_dim)
    a = model.decode(z, torch.zeros(3, dtype=torch.long))
    b = model.decode(z, torch.full((3,), 5, dtype=torch.long))
    assert not torch.equal(a, b)
    with pytest.raises(GenzooError, match="target age group"):
        model.translate(x)
    with pytest.raises(GenzooError, match="out of range"):
        model.translate(x, condition=torch.full((4,), 6, dtype=torch.long))


def test_age_cgan_encoder_learns_to_invert_the_generator(tmp_path):
    model = tiny_model("age_cgan")
    data = random_dataset(model.info)
    losses = []
    for steps in (1, 60):
        cfg = TrainConfig(steps=steps, batch_size=8, sample_every=0, eval_every=-1, lr=1e-3)
        torch.manual_seed(0)
        m = tiny_model("age_cgan")
        last = Trainer(m, data, cfg, tmp_path / str(steps), model_name="age_cgan", quiet=True).fit()
        losses.append(last["encoder/code_mse"])
    assert losses[1] < losses[0]
