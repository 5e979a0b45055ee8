"""The GAN family: losses against their formulas, the per-sample gradient penalty, clipping, the k:1
schedule, unrolled gradients against finite differences, minibatch features, learning a Gaussian,
diagnostics, and the conv nets' handling of image sizes."""
import copy
import math

import pytest
import torch

from conftest import random_dataset, tiny_model
from genzoo.data import ImageDataset, ImageInfo, every_tenth_split
from genzoo.errors import GenzooError
from genzoo.losses.gan import discriminator_loss, generator_loss, gradient_penalty, pulling_away
from genzoo.models.gan.gan import GAN, GANConfig
from genzoo.models.registry import get_model_class, make_config, resolve_configs
from genzoo.nn.gan_nets import (
    DCGANDiscriminator,
    DCGANGenerator,
    MinibatchDiscrimination,
    MLPDiscriminator,
    conv_geometry,
)
from genzoo.training.config import TrainConfig
from genzoo.training.trainer import Trainer

POINTS = ImageInfo(channels=2, height=1, width=1, num_values=0)  # continuous 2-D data
L3 = math.log(3.0)


def quiet_cfg(**kw) -> TrainConfig:
    return TrainConfig(sample_every=0, eval_every=-1, log_every=1, checkpoint_every=10_000, **kw)


def gaussian_points(n: int, mean, std, seed: int = 0, dims: int = 2) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.tensor(mean) + torch.tensor(std) * torch.randn(n, dims, generator=g)  # (n, dims)
    info = ImageInfo(channels=dims, height=1, width=1, num_values=0)
    return ImageDataset(spec="gauss", x=x.view(n, dims, 1, 1).float(), info=info, splits=every_tenth_split(n))


# -- losses ----------------------------------------------------------------------------------------------
def test_each_loss_equals_its_formula_on_fixed_outputs():
    # logits with sigmoid 0.5 / 0.75 (real) and 0.75 / 0.5 (fake)
    r, f = torch.tensor([0.0, L3]), torch.tensor([L3, 0.0])
    log = math.log
    d_logistic = -(log(0.5) + log(0.75)) / 2 - (log(0.25) + log(0.5)) / 2
    assert discriminator_loss("minimax", r, f).item() == pytest.approx(d_logistic, rel=1e-6)
    assert discriminator_loss("non_saturating", r, f).item() == pytest.approx(d_logistic, rel=1e-6)
    assert generator_loss("minimax", f).item() == pytest.approx((log(0.25) + log(0.5)) / 2, rel=1e-6)
    assert generator_loss("non_saturating", f).item() == pytest.approx(-(log(0.75) + log(0.5)) / 2, rel=1e-6)
    # critic values
    r, f = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.5])
    for name in ("wasserstein", "wgan_gp"):
        assert discriminator_loss(name, r, f).item() == pytest.approx(-0.25 - 2.0)
        assert generator_loss(name, f).item() == pytest.approx(0.25)
    r, f = torch.tensor([0.5, 3.0]), torch.tensor([-2.0, 0.25])
    assert discriminator_loss("hinge", r, f).item() == pytest.approx((0.5 + 0) / 2 + (0 + 1.25) / 2)
    assert generator_loss("hinge", f).item() == pytest.approx(-(-2.0 + 0.25) / 2)
    # energies, margin 1
    r, f = torch.tensor([0.2, 0.4]), torch.tensor([0.5, 1.5])
    assert discriminator_loss("ebgan", r, f, margin=1.0).item() == pytest.approx(0.3 + (0.5 + 0) / 2)
    assert generator_loss("ebgan", f).item() == pytest.approx(1.0)
    # softplus forms stay finite where log(sigmoid) would not
    big = torch.tensor([200.0, -200.0])
    for name in ("minimax", "non_saturating"):
        assert torch.isfinite(discriminator_loss(name, big, -big)) and torch.isfinite(generator_loss(name, big))
    assert generator_loss("minimax", torch.tensor([-200.0])).item() == pytest.approx(0.0, abs=1e-30)


def test_pulling_away_term_is_mean_squared_cosine_over_distinct_pairs():
    codes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    # cos^2: (0,1) = 0, (0,2) = 1/2, (1,2) = 1/2; six ordered pairs
    assert pulling_away(codes).item() == pytest.approx(2 * (0 + 0.5 + 0.5) / 6)
    assert pulling_away(codes[:1]).item() == 0.0


def test_gradient_penalty_is_per_sample():
    torch.manual_seed(0)
    critic = MLPDiscriminator((2, 1, 1), (8, 8)).double()
    real, fake = torch.randn(6, 2, 1, 1, dtype=torch.float64), torch.randn(6, 2, 1, 1, dtype=torch.float64)
    gp = gradient_penalty(critic, real, fake)
    assert len(set(gp.eps.tolist())) == 6 and gp.eps.min() >= 0 and gp.eps.max() <= 1
    norms = []
    for i in range(6):  # each sample's own gradient, one at a time
        x_hat = (gp.eps[i] * real[i] + (1 - gp.eps[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)
        norms.append(g.norm())
    norms = torch.stack(norms)
    assert torch.allclose(gp.norms, norms, rtol=1e-10)
    assert gp.penalty.item() == pytest.approx(((norms - 1) ** 2).mean().item(), rel=1e-10)
    gp.penalty.backward()  # differentiable w.r.t. the critic (create_graph); biases of the output layer
    weights = [p for n, p in critic.named_parameters() if n.endswith("weight")]  # do not move the gradient
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)


def test_wgan_gp_critic_loss_is_wasserstein_plus_weighted_penalty():
    model = GAN(GANConfig(latent_dim=3, g_hidden=(8,), d_hidden=(8,), loss="wgan_gp", gp_weight=2.5), POINTS)
    x = torch.randn(5, 2, 1, 1)
    torch.manual_seed(7)
    out = model.player_loss("discriminator", {"x": x})
    torch.manual_seed(7)
    fake = model.generator(model.prior(5)).detach()
    f_real, f_fake = model.discriminator(x), model.discriminator(fake)
    gp = gradient_penalty(model.discriminator, x, fake)  # draws the same eps from the same RNG state
    assert out.loss.item() == pytest.approx((f_fake.mean() - f_real.mean() + 2.5 * gp.penalty).item(), rel=1e-5)
    assert out.metrics["gp"] == pytest.approx(gp.penalty.item(), rel=1e-5)
    assert out.metrics["wasserstein"] == pytest.approx((f_real.mean() - f_fake.mean()).item(), rel=1e-5)


def test_ebgan_losses_use_energies_margin_and_pulling_away():
    model = GAN(GANConfig(latent_dim=3, g_hidden=(8,), d_hidden=(8, 4), loss="ebgan", margin=0.7, pt_weight=0.3),
                POINTS)
    x = torch.randn(5, 2, 1, 1)
    torch.manual_seed(3)
    d_out = model.player_loss("discriminator", {"x": x})
    g_out = model.player_loss("generator", {"x": x})
    torch.manual_seed(3)
    fake = model.generator(model.prior(5))
    e_real, e_fake = model.discriminator(x), model.discriminator(fake)
    assert d_out.loss.item() == pytest.approx((e_real.mean() + torch.relu(0.7 - e_fake).mean()).item(), rel=1e-5)
    fake2 = model.generator(model.prior(5))
    energy, code = model.discriminator(fake2, return_code=True)
    recon = model.discriminator.decoder(model.discriminator.encoder(fake2.flatten(1)))
    assert torch.allclose(energy, ((recon - fake2.flatten(1)) ** 2).mean(1))
    assert g_out.loss.item() == pytest.approx((energy.mean() + 0.3 * pulling_away(code)).item(), rel=1e-5)


# -- the game's mechanics --------------------------------------------------------------------------------
def test_clipping_keeps_every_critic_weight_in_range_after_training(tmp_path):
    model = tiny_model("wgan")
    c = model.config.clip
    assert c == 0.01 and model.config.loss == "wasserstein"
    Trainer(model, random_dataset(model.info), quiet_cfg(steps=2, batch_size=4), tmp_path, model_name="wgan",
            quiet=True).fit()
    weights = torch.cat([p.detach().flatten() for p in model.discriminator.parameters()])
    assert weights.abs().max() <= c
    assert (weights.abs() == c).any()  # the clip was active (N(0, 0.02) init lies partly outside)
    assert torch.cat([p.detach().flatten() for p in model.generator.parameters()]).abs().max() > c  # G unclipped


def test_k_to_1_schedule_makes_k_discriminator_updates_per_generator_update(tmp_path):
    model = GAN(GANConfig(latent_dim=2, g_hidden=(4,), d_hidden=(4,), d_steps=3), POINTS)
    calls, updates = [], []
    loss_fn, after_fn = model.player_loss, model.after_update
    model.player_loss = lambda player, batch: (calls.append(player), loss_fn(player, batch))[1]
    model.after_update = lambda player: (updates.append(player), after_fn(player))[1]
    trainer = Trainer(model, gaussian_points(60, [0.0, 0.0], [1.0, 1.0]), quiet_cfg(steps=4, batch_size=5),
                      tmp_path, model_name="gan", quiet=True)
    trainer.fit()
    assert calls == updates == (["discriminator"] * 3 + ["generator"]) * 4
    assert trainer.batches == 16  # a fresh batch for every update


def test_paper_optimisers_reach_the_trainer(tmp_path):
    info = ImageInfo(1, 4, 4, 5)
    data = random_dataset(info)
    expect = {"wgan": (torch.optim.RMSprop, 5e-5, None), "wgan_gp": (torch.optim.Adam, 1e-4, (0.0, 0.9)),
              "dcgan": (torch.optim.Adam, 2e-4, (0.5, 0.999)), "gan": (torch.optim.Adam, 1e-3, (0.9, 0.999))}
    for name, (kind, lr, betas) in expect.items():
        model = tiny_model(name, info)
        trainer = Trainer(model, data, quiet_cfg(steps=1, batch_size=4), tmp_path / name, model_name=name, quiet=True)
        for player in ("discriminator", "generator"):
            group = trainer.optims[player].param_groups[0]
            assert type(trainer.optims[player]) is kind and group["lr"] == lr
            if betas is not None:
                assert group["betas"] == betas
        assert model.schedule == {"discriminator": model.config.d_steps, "generator": 1}


def _unrolled_model(k: int, lr: float = 0.5) -> GAN:
    torch.manual_seed(0)
    cfg = GANConfig(latent_dim=3, g_hidden=(5,), d_hidden=(6,), loss="non_saturating", unrolled_steps=k,
                    unrolled_lr=lr)
    return GAN(cfg, POINTS).double()


def _generator_loss(model, x, seed=11):
    torch.manual_seed(seed)  # the same z for every evaluation
    return model.player_loss("generator", {"x": x}).loss


def test_unrolled_generator_gradient_matches_finite_differences_and_differs_from_plain():
    x = torch.randn(8, 2, 1, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model = _unrolled_model(3)
    d_before = copy.deepcopy(model.discriminator.state_dict())
    loss = _generator_loss(model, x)
    weight = model.generator.net[0].weight
    (grad,) = torch.autograd.grad(loss, weight)
    assert all(torch.equal(v, model.discriminator.state_dict()[k]) for k, v in d_before.items())  # D untouched
    h = 1e-6
    for idx in [(0, 0), (3, 2)]:
        with torch.no_grad():
            weight[idx] += h
        up = _generator_loss(model, x).item()
        with torch.no_grad():
            weight[idx] -= 2 * h
        down = _generator_loss(model, x).item()
        with torch.no_grad():
            weight[idx] += h
        assert grad[idx].item() == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9)
    plain = _unrolled_model(0)
    plain.load_state_dict(model.state_dict())
    (grad0,) = torch.autograd.grad(_generator_loss(plain, x), plain.generator.net[0].weight)
    assert (grad - grad0).norm() > 0.05 * grad0.norm()


def test_unrolled_steps_are_gradient_descent_on_the_discriminator_loss():
    x = torch.randn(8, 2, 1, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model = _unrolled_model(1, lr=0.3)
    real = model.real_input(x)
    fake = model.generator(model.prior(8)).detach()
    params = model.unrolled_discriminator(real, fake)
    loss = model.discriminator_objective(real, fake)[0]
    grads = torch.autograd.grad(loss, list(model.discriminator.parameters()))
    for (name, p), g in zip(model.discriminator.named_parameters(), grads):
        assert torch.allclose(params[name], p - 0.3 * g)


# -- minibatch discrimination ----------------------------------------------------------------------------
def test_minibatch_features_follow_the_formula_and_see_the_rest_of_the_batch():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(3, 4, kernel_dim=2).double()
    f = torch.randn(5, 3, dtype=torch.float64)
    out = layer(f)
    assert torch.equal(out[:, :3], f)
    m = (f @ layer.T).view(5, 4, 2)  # M_i (B, C)
    expect = torch.zeros(5, 4, dtype=torch.float64)
    for i in range(5):
        for j in range(5):
            if j != i:
                expect[i] += torch.exp(-(m[i] - m[j]).abs().sum(-1))
    assert torch.allclose(out[:, 3:], expect)
    g = f.clone()
    g[2] += 1.0
    changed = layer(g)[:, 3:]
    assert not torch.allclose(changed[0], out[0, 3:])  # sample 0's features depend on sample 2
    assert torch.equal(layer(f[:1])[:, 3:], torch.zeros(1, 4, dtype=torch.float64))  # a batch of one: none
    # inside a discriminator: D(x_0) depends on x_3 only with minibatch features
    x = torch.randn(4, 2, 1, 1)
    y = x.clone()
    y[3] += 1.0
    with_mbd, without = MLPDiscriminator((2, 1, 1), (8,), minibatch_features=3), MLPDiscriminator((2, 1, 1), (8,))
    assert with_mbd(x)[0] != with_mbd(y)[0]
    assert without(x)[0] == without(y)[0]


# -- learning ----------------------------------------------------------------------------------------------
def test_gan_moves_its_samples_toward_a_gaussian(tmp_path):
    mean, std = 3.0, 1.5
    data = gaussian_points(2000, [mean], [std], dims=1)
    torch.manual_seed(0)
    model = GAN(GANConfig(latent_dim=4, g_hidden=(64,), d_hidden=(64, 64), loss="non_saturating", optim="adam",
                          d_lr=1e-3, g_lr=1e-3, betas=(0.5, 0.999)), data.info)

    def errors():
        s = model.sample(4000, generator=torch.Generator().manual_seed(1)).flatten()
        return abs(s.mean().item() - mean), abs(s.std().item() - std)

    mean0, std0 = errors()
    Trainer(model, data, quiet_cfg(steps=400, batch_size=128), tmp_path, model_name="gan", quiet=True).fit()
    mean1, std1 = errors()
    assert mean1 < mean0 / 4 and std1 < std0 / 4, (mean0, mean1, std0, std1)


# -- diagnostics -------------------------------------------------------------------------------------------
def test_diagnose_flags_a_winning_discriminator_and_collapse_from_the_models_own_metrics():
    x = torch.randn(16, 2, 1, 1)
    model = GAN(GANConfig(latent_dim=3, g_hidden=(8,), d_hidden=(8,), loss="minimax"), POINTS)
    with torch.no_grad():
        model.discriminator.head[-1].bias.fill_(-30.0)  # D says "fake" to everything near the data
        model.generator.net[-1].weight.zero_()  # every z gives the same point
    torch.manual_seed(0)
    record = {f"{p}/{k}": v for p in model.players for k, v in model.player_loss(p, {"x": x}).metrics.items()}
    assert record["discriminator/d_fake"] < 1e-9 and record["generator/g_grad_norm"] < 1e-9
    assert record["generator/sample_spread"] == 0.0
    warnings = model.diagnose(record)
    assert any(w.startswith("discriminator wins outright") for w in warnings)
    assert any(w.startswith("samples collapse") for w in warnings)
    # The non-saturating loss keeps the generator's gradient alive against the same D: no D-wins warning.
    model.config.loss = "non_saturating"
    torch.manual_seed(0)
    g = model.player_loss("generator", {"x": x}).metrics
    assert g["g_grad_norm"] > 1e-3
    assert not any(w.startswith("discriminator wins") for w in model.diagnose({**record, "generator/g_grad_norm":
                                                                               g["g_grad_norm"]}))
    assert model.diagnose({"discriminator/d_fake": 0.3, "generator/g_grad_norm": 1.0,
                           "generator/sample_spread": 0.9}) == []


def test_generator_gradient_norm_is_the_mean_per_sample_gradient_norm():
    model = GAN(GANConfig(latent_dim=3, g_hidden=(8,), d_hidden=(8,), loss="non_saturating"), POINTS)
    x = torch.randn(6, 2, 1, 1)
    torch.manual_seed(0)
    out = model.player_loss("generator", {"x": x})
    torch.manual_seed(0)
    fake = model.generator(model.prior(6)).detach()
    norms = []
    for i in range(6):  # sample i's own loss term, softplus(-D(G(z)_i)), w.r.t. its own image
        xi = fake[i:i + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(torch.nn.functional.softplus(-model.discriminator(xi)).sum(), xi)
        norms.append(g.norm())
    assert out.metrics["g_grad_norm"] == pytest.approx(torch.stack(norms).mean().item(), rel=1e-5)
    pd = torch.pdist(fake.flatten(1)).mean() / torch.pdist(x.flatten(1)).mean()
    assert out.metrics["sample_spread"] == pytest.approx(pd.item(), rel=1e-5)


# -- networks, pixels and options ---------------------------------------------------------------------------
@pytest.mark.parametrize("size,levels,start,offset", [
    ((4, 4), 0, (4, 4), (0, 0)), ((20, 20), 2, (5, 5), (0, 0)), ((28, 28), 2, (7, 7), (0, 0)),
    ((32, 32), 3, (4, 4), (0, 0)), ((30, 30), 2, (8, 8), (1, 1)), ((64, 36), 3, (8, 5), (0, 2)),
])
def test_conv_nets_cover_any_size_by_drawing_the_next_multiple_and_cropping(size, levels, start, offset):
    geo = conv_geometry(*size)
    assert (geo.levels, geo.start, geo.offset) == (levels, start, offset)
    assert 4 * 2 ** levels <= min(size) < 8 * 2 ** levels
    torch.manual_seed(0)
    g = DCGANGenerator(8, (3, *size), base=4)
    z = torch.randn(2, 8)
    y = g(z)
    assert y.shape == (2, 3, *size) and y.abs().max() <= 1
    h0, w0 = geo.start
    full = g.up(torch.relu(g.bn0(g.project(z).view(2, g.ch0, h0, w0))))  # (2, 3, full_h, full_w)
    assert full.shape[-2:] == geo.full
    assert torch.equal(y, torch.tanh(full[..., offset[0]:offset[0] + size[0], offset[1]:offset[1] + size[1]]))
    d = DCGANDiscriminator((3, *size), base=4)
    assert d(y).shape == (2,)


def test_dcgan_layers_follow_the_paper():
    g, d = DCGANGenerator(16, (3, 32, 32), base=8), DCGANDiscriminator((3, 32, 32), base=8)
    convs_t = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.stride) for m in convs_t] == [(32, 16, (2, 2)), (16, 8, (2, 2)),
                                                                            (8, 3, (2, 2))]
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.stride) for m in convs] == [(3, 8, (2, 2)), (8, 16, (2, 2)),
                                                                          (16, 32, (2, 2))]
    body = list(d.body)
    assert isinstance(body[1], torch.nn.LeakyReLU) and body[1].negative_slope == 0.2  # no norm on layer 1
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules()) == 2
    critic = DCGANDiscriminator((3, 32, 32), base=8, norm="layer")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in critic.modules())


def test_pixels_enter_d_in_minus_one_to_one_and_continuous_data_passes_unchanged():
    info = ImageInfo(1, 4, 4, 5)
    model = tiny_model("dcgan", info)
    x = torch.tensor([0, 1, 2, 3, 4] * 3 + [0]).view(1, 1, 4, 4)
    assert torch.allclose(model.real_input(x), x.float() / 4 * 2 - 1)
    z = torch.randn(3, model.latent_dim)
    model.eval()
    assert torch.allclose(model.decode_unit(z), (model.generator(z) + 1) / 2)
    points = GAN(GANConfig(latent_dim=4, g_hidden=(8,), d_hidden=(8,)), POINTS).eval()
    assert torch.equal(points.decode(z), points.generator(z))  # linear output, no rounding
    assert points.generator(z * 100).abs().max() > 1  # not squashed by a tanh
    s = points.sample(4, generator=torch.Generator().manual_seed(0))
    assert s.dtype == torch.float32 and s.shape == (4, 2, 1, 1)


def test_sampling_uses_batch_norm_statistics_and_leaves_them_alone():
    model = tiny_model("dcgan")
    model.train()
    before = copy.deepcopy(model.state_dict())
    a = model.sample(5, generator=torch.Generator().manual_seed(2))
    b = model.sample(2, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a[:2], b)  # a sample does not depend on the others in its batch
    assert model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_bad_options_are_one_line_errors():
    cls = get_model_class("dcgan")
    with pytest.raises(GenzooError, match="d_norm"):  # batch norm asked for explicitly with the penalty
        resolve_configs(cls, TrainConfig, None, {"loss": "wgan_gp", "d_norm": "batch"})
    # `genzoo train dcgan --set loss=wgan_gp` works: the default d_norm=auto takes layer norm then
    cfg, _ = resolve_configs(cls, TrainConfig, None, {"loss": "wgan_gp"})
    assert cfg.norm == "layer" and make_config(cls.Config, {}, {}).norm == "batch"
    with pytest.raises(GenzooError, match="loss"):
        resolve_configs(cls, TrainConfig, None, {"loss": "relativistic"})  # not a loss genzoo names
    with pytest.raises(GenzooError, match="d_steps"):
        make_config(cls.Config, {}, {"d_steps": "0"})
    with pytest.raises(GenzooError, match="minibatch_features"):
        make_config(cls.Config, {}, {"loss": "ebgan", "minibatch_features": "4"})
    with pytest.raises(GenzooError, match="dcgan: arch=conv needs images of at least 4x4"):
        cls(cls.Config(), POINTS)
    cfg, _ = resolve_configs(cls, TrainConfig, None, {"loss": "wgan_gp", "d_norm": "layer", "betas": "0,0.9"})
    assert cfg.betas == (0.0, 0.9)
