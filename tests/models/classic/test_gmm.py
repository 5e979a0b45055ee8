"""The Gaussian mixture: EM's monotone likelihood and its recovery of a known mixture, discrete
probabilities that sum to one and match an independent formula, the exact conditional behind
completion against brute force, sampling against the likelihood, and the running statistics of
online EM across a save/load."""
import itertools
import math

import pytest
import torch

from genzoo.data import ImageInfo
from genzoo.errors import GenzooError
from genzoo.evaluation.callbacks import HeldOutLikelihood
from genzoo.models.classic.gmm import GaussianMixture, GMMConfig, truncated_normal_moments
from genzoo.nn.gaussian import log_normal_mass

Normal = torch.distributions.Normal


def gmm(info, seed=0, **cfg):
    torch.manual_seed(seed)
    return GaussianMixture(GMMConfig(**cfg), info)


def all_images(info):
    """Every discrete image of a tiny shape, (K^D, C, H, W)."""
    vals = list(itertools.product(range(info.num_values), repeat=info.dims))
    return torch.tensor(vals).view(-1, *info.shape)


def random_params(model, seed=1):
    """Spread-out parameters, some means outside [0, 1] and some variances at the floor."""
    g = torch.Generator().manual_seed(seed)
    m, d = model.mean.shape
    with torch.no_grad():
        model.weight.copy_(torch.softmax(torch.randn(m, generator=g, dtype=torch.float64), 0))
        model.mean.copy_(torch.rand(m, d, generator=g, dtype=torch.float64) * 1.6 - 0.3)
        if model.config.covariance == "diag":
            model.var.copy_(torch.rand(m, d, generator=g, dtype=torch.float64) * 0.2 + model.config.reg)
        else:
            a = torch.randn(m, d, d, generator=g, dtype=torch.float64) * 0.3
            model.scale_tril.copy_(torch.linalg.cholesky(a @ a.transpose(1, 2) + 0.05 * torch.eye(d)))
    return model


def structured_images(info, n, seed=0):
    """Images from two clusters of levels (so a mixture has something to find)."""
    g = torch.Generator().manual_seed(seed)
    k = info.num_values
    centre = torch.where(torch.rand(n, 1, generator=g) < 0.5, 0.25 * (k - 1), 0.75 * (k - 1))
    noise = torch.randn(n, info.dims, generator=g) * 0.2 * (k - 1)
    return (centre + noise).round().clamp(0, k - 1).long().view(n, *info.shape)


LEVELS = ImageInfo(channels=1, height=3, width=3, num_values=4)
PALETTE = ImageInfo(channels=1, height=2, width=2, num_values=3, palette=((0, 0, 0), (250, 10, 10), (20, 200, 240)))
POINTS = ImageInfo(channels=2, height=1, width=1, num_values=0)


@pytest.mark.parametrize("info,covariance", [(LEVELS, "diag"), (LEVELS, "full"), (POINTS, "diag"),
                                             (POINTS, "full"), (PALETTE, "diag"), (PALETTE, "full")])
def test_full_batch_em_never_lowers_the_training_likelihood(info, covariance):
    if info.continuous:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(80, *info.shape, generator=g) + torch.randint(0, 2, (80, 1, 1, 1), generator=g) * 3.0
    elif info.palette is not None:
        x = torch.randint(0, info.num_values, (80, *info.shape), generator=torch.Generator().manual_seed(0))
    else:
        x = structured_images(info, 80)
    model = gmm(info, components=3, covariance=covariance)
    losses = [model.update({"x": x}).loss.item() for _ in range(10)]  # the NLL before each step
    for before, after in zip(losses, losses[1:]):
        assert after <= before + 1e-9 * abs(before)
    assert losses[-1] < losses[0]
    if info.palette is None:  # the logged loss is the likelihood log_prob reports
        nll = -model.log_prob(x).mean().item()
        assert model.update({"x": x}).loss.item() == pytest.approx(nll, rel=1e-12)


def test_em_recovers_a_known_mixture_from_continuous_points():
    g = torch.Generator().manual_seed(0)
    n, pi = 3000, 0.3
    first = torch.rand(n, generator=g) < pi
    mu = torch.where(first[:, None], torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0]))
    sd = torch.where(first[:, None], torch.tensor([0.5, 0.5]), torch.tensor([0.7, 0.3]))
    x = (mu + sd * torch.randn(n, 2, generator=g)).view(n, 2, 1, 1)
    for covariance in ("diag", "full"):
        model = gmm(POINTS, components=2, covariance=covariance)
        for _ in range(30):
            model.update({"x": x})
        order = model.mean[:, 0].argsort()
        # 5 standard errors: sd / sqrt(n_m) for a mean, sqrt(pi (1 - pi) / n) for a weight
        assert torch.allclose(model.mean[order].float(), torch.tensor([[-2.0, 0.0], [2.0, 1.0]]),
                              atol=5 * 0.7 / math.sqrt(pi * n))
        assert model.weight[order[0]].item() == pytest.approx(pi, abs=5 * math.sqrt(pi * (1 - pi) / n))


def test_binned_em_recovers_latent_means_that_rounding_hides():
    """Data rounded to 16 levels from a mixture whose mean sits on the lowest level: the exact
    discrete model recovers the latent mean and spread; the density of the bin centres cannot."""
    info = ImageInfo(channels=1, height=1, width=2, num_values=16)
    g = torch.Generator().manual_seed(0)
    n = 4000
    first = torch.rand(n, generator=g) < 0.4
    mu = torch.where(first[:, None], torch.tensor([0.0, 0.6]), torch.tensor([0.7, 0.15]))
    sd = torch.where(first[:, None], torch.tensor([0.1, 0.05]), torch.tensor([0.08, 0.1]))
    x = ((mu + sd * torch.randn(n, 2, generator=g)).clamp(0, 1) * 15).round().long().view(n, 1, 1, 2)
    fits = {}
    for covariance in ("diag", "full"):
        model = gmm(info, components=2, covariance=covariance)
        for _ in range(60):
            model.update({"x": x})
        k = int(model.mean[:, 0].argmin())
        fits[covariance] = (model.mean[k, 0].item(), model._cov()[k, 0, 0].sqrt().item() if covariance == "full"
                            else model.var[k, 0].sqrt().item())
    # standard errors ~ 0.1 / sqrt(1600) = 0.0025 (mean), 0.1 / sqrt(3200) = 0.0018 (sd), times < 2 for
    # the half of the values censored into the lowest bin; tolerances of about 5 of those
    assert fits["diag"][0] == pytest.approx(0.0, abs=0.02)
    assert fits["diag"][1] == pytest.approx(0.1, abs=0.015)
    assert abs(fits["full"][0]) > 0.02 and abs(fits["full"][1] - 0.1) > 0.015  # bin centres are biased


@pytest.mark.parametrize("info", [ImageInfo(channels=1, height=2, width=1, num_values=4),
                                  ImageInfo(channels=3, height=1, width=1, num_values=3),
                                  ImageInfo(channels=1, height=1, width=2, num_values=2)])
def test_discrete_probabilities_sum_to_one_and_match_the_bin_masses(info):
    xs = all_images(info)  # (K^D, C, H, W)
    model = random_params(gmm(info, components=3))
    assert model.likelihood == "exact"
    logp = model.log_prob(xs)
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-12)
    # independent formula: sum_m pi_m prod_d [Phi(b) - Phi(a)], edges (k -+ 1/2)/(K-1), outer ones infinite
    k = info.num_values
    lo = (xs.flatten(1).double() - 0.5) / (k - 1)
    hi = (xs.flatten(1).double() + 0.5) / (k - 1)
    lo[xs.flatten(1) == 0], hi[xs.flatten(1) == k - 1] = -math.inf, math.inf
    dist = Normal(model.mean.unsqueeze(0), model.var.sqrt().unsqueeze(0))  # (1, M, D)
    mass = (dist.cdf(hi.unsqueeze(1)) - dist.cdf(lo.unsqueeze(1))).prod(-1)  # (N, M)
    assert torch.allclose(logp.exp(), (mass * model.weight).sum(1), rtol=1e-10, atol=0)
    # and after fitting (means drift past the outer edges, variances reach the floor)
    fitted = gmm(info, components=2, reg=1e-6)
    for _ in range(20):
        fitted.update({"x": xs[:5].repeat(4, 1, 1, 1)})
    assert fitted.log_prob(xs).exp().sum().item() == pytest.approx(1.0, abs=1e-12)


def test_full_covariance_reports_density_times_bin_volume():
    info = ImageInfo(channels=1, height=1, width=3, num_values=5)
    model = random_params(gmm(info, components=2, covariance="full"))
    assert model.likelihood == "approximate"
    x = torch.tensor([[[[0, 2, 4]]], [[[3, 3, 1]]]])
    v = x.flatten(1).double() / 4
    mvn = torch.distributions.MultivariateNormal(model.mean, scale_tril=model.scale_tril)
    dens = torch.logsumexp(mvn.log_prob(v.unsqueeze(1)) + model.weight.log(), 1)  # (B,)
    assert torch.allclose(model.log_prob(x), dens + 3 * math.log(1 / 4), rtol=1e-12, atol=0)


def test_log_normal_mass_and_truncated_moments_in_the_tails():
    edges = [(-math.inf, -30.0), (-35.0, -34.9), (-1.0, 0.5), (2.0, 2.01), (30.0, 30.1), (25.0, math.inf),
             (-math.inf, 3.0), (0.0, math.inf)]
    a = torch.tensor([e[0] for e in edges], dtype=torch.float64)
    b = torch.tensor([e[1] for e in edges], dtype=torch.float64)
    # reference: Phi via erfc, relative-accurate down to 1e-300 (all these masses are above that)
    phi = lambda t: 0.5 * math.erfc(-t / math.sqrt(2))  # noqa: E731
    upper = lambda t: 0.5 * math.erfc(t / math.sqrt(2))  # noqa: E731  1 - Phi(t), exact in the upper tail
    ref = [math.log(upper(lo) - upper(hi)) if lo > 0 else math.log(phi(hi) - phi(lo)) for lo, hi in edges]
    assert torch.allclose(log_normal_mass(a, b), torch.tensor(ref, dtype=torch.float64), rtol=1e-9, atol=0)
    # moments against quadrature of the density on each (finite-ised) interval
    mean, var = truncated_normal_moments(a, b)
    for i, (lo, hi) in enumerate(edges):
        lo_f = lo if math.isfinite(lo) else min(hi, 0.0) - 12  # the density beyond is below e^-72 of its peak
        hi_f = hi if math.isfinite(hi) else max(lo, 0.0) + 12
        t = torch.linspace(lo_f, hi_f, 200_001, dtype=torch.float64)
        peak = min(max(0.0, lo_f), hi_f)
        w = torch.exp(-0.5 * (t * t - peak * peak))  # the density scaled to 1 at its peak on the interval
        z = torch.trapezoid(w, t)
        m1 = torch.trapezoid(w * t, t) / z
        m2 = torch.trapezoid(w * (t - m1) ** 2, t) / z
        assert mean[i].item() == pytest.approx(m1.item(), rel=1e-7)
        assert var[i].item() == pytest.approx(m2.item(), rel=1e-5, abs=1e-11)


def test_posterior_and_conditional_match_brute_force_on_discrete_images():
    info = ImageInfo(channels=1, height=3, width=1, num_values=3)
    model = random_params(gmm(info, components=3))
    xs = all_images(info)  # (27, 1, 3, 1)
    joint = model.joint_log_prob(xs)  # (27, M): log pi_m + log P(x | m)
    known = torch.tensor([[[True], [False], [False]]])
    x = torch.tensor([[[[2], [0], [0]]]])  # hidden values are ignored
    match = xs[:, 0, 0, 0] == 2  # the 9 completions of the visible pixel
    # brute force: P(m | x_V) and P(x_H | x_V) by summing the joint over completions
    post = torch.logsumexp(joint[match], 0)
    post = (post - torch.logsumexp(post, 0)).exp()
    cond_bf = torch.logsumexp(joint[match], 1)
    cond_bf = (cond_bf - torch.logsumexp(cond_bf, 0)).exp()  # (9,)
    c = model.condition_on(x, known)
    assert torch.allclose(c.log_weights.exp()[0], post, rtol=1e-12, atol=0)
    assert torch.allclose(model.posterior(x, known)[0], post, rtol=1e-12, atol=0)
    # the conditional's hidden values, level by level: sum_m w_m prod_h [Phi(b) - Phi(a)]
    hidden = xs[match][:, 0, 1:, 0].double()  # (9, 2)
    lo, hi = (hidden - 0.5) / 2, (hidden + 0.5) / 2
    lo[hidden == 0], hi[hidden == 2] = -math.inf, math.inf
    dist = Normal(c.mean[0].unsqueeze(0), c.scale.unsqueeze(0))  # (1, M, 2)
    mass = (dist.cdf(hi.unsqueeze(1)) - dist.cdf(lo.unsqueeze(1))).prod(-1)  # (9, M)
    assert torch.allclose((mass * c.log_weights.exp()).sum(1), cond_bf, rtol=1e-10, atol=0)


def test_full_covariance_conditional_is_the_joint_density_renormalised():
    info = ImageInfo(channels=4, height=1, width=1, num_values=0)
    model = random_params(gmm(info, components=3, covariance="full"))
    known = torch.tensor([True, False, True, False]).view(4, 1, 1)
    x = torch.tensor([0.3, 0.0, 0.9, 0.0]).view(1, 4, 1, 1)
    c = model.condition_on(x, known)
    g = torch.Generator().manual_seed(0)
    u_h = torch.randn(50, 2, generator=g).double()  # points where to compare (continuous data is float32)
    full = x.flatten(1).double().repeat(50, 1)
    full[:, [1, 3]] = u_h
    log_joint = model.log_prob(full.view(50, 4, 1, 1))  # log p(v_V, u_H)
    comps = torch.distributions.MultivariateNormal(c.mean[0], scale_tril=c.scale)  # (M,) over H
    log_cond = torch.logsumexp(comps.log_prob(u_h.unsqueeze(1)) + c.log_weights[0], 1)  # log q(u_H)
    # q(u_H) = p(v_V, u_H) / p(v_V): the difference is one constant, -log p(v_V) of the visible marginal
    marg = torch.distributions.MultivariateNormal(model.mean[:, [0, 2]], model._cov()[:, [0, 2]][:, :, [0, 2]])
    log_marg = torch.logsumexp(marg.log_prob(torch.tensor([0.3, 0.9]).double()) + model.weight.log(), 0)
    assert torch.allclose(log_joint - log_cond, log_marg.expand(50), rtol=0, atol=1e-10)


def test_complete_and_sample_draw_from_the_model():
    """Frequencies over many draws against the exact probabilities, within 5 binomial standard errors."""
    info = ImageInfo(channels=1, height=3, width=1, num_values=3)
    model = random_params(gmm(info, components=3))
    xs = all_images(info)
    n = 20_000
    code = lambda imgs: (imgs.flatten(1) * torch.tensor([9, 3, 1])).sum(1)  # noqa: E731  image -> 0..26
    p = model.log_prob(xs).exp()  # (27,) in the order of code(xs)
    freq = torch.bincount(code(model.sample(n, generator=torch.Generator().manual_seed(0))), minlength=27) / n
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / n).sqrt() + 1 / n).all()
    known = torch.tensor([[[True], [False], [False]]])
    x = torch.tensor([[[[1], [0], [0]]]]).repeat(n, 1, 1, 1)
    out = model.complete(x, known, generator=torch.Generator().manual_seed(1))
    assert (out[:, 0, 0, 0] == 1).all()
    cond = torch.where(xs[:, 0, 0, 0] == 1, p, torch.zeros_like(p))
    cond = cond / cond.sum()
    freq = torch.bincount(code(out), minlength=27) / n
    assert ((freq - cond).abs() <= 5 * (cond * (1 - cond) / n).sqrt() + 1 / n).all()


def test_palette_data_is_fitted_on_colours_and_has_no_discrete_likelihood():
    model = gmm(PALETTE, components=2, covariance="full")
    x = torch.randint(0, 3, (30, *PALETTE.shape), generator=torch.Generator().manual_seed(0))
    out = model.update({"x": x})
    assert model.likelihood == "none" and "density_nll_nats" in out.metrics and "bits_per_dim" not in out.metrics
    assert model.mean.shape == (2, 3 * 4)  # RGB of every pixel
    with pytest.raises(GenzooError, match="palette"):
        model.log_prob(x)
    s = model.sample(50, generator=torch.Generator().manual_seed(0))
    assert s.dtype == torch.long and s.min() >= 0 and s.max() < 3
    # a pixel's RGB colour is a 3-dimensional unit; a known pixel keeps its colour index
    known = torch.tensor([[[True, False], [False, True]]])
    c = model.complete(x[:5], known, generator=torch.Generator().manual_seed(0))
    assert torch.equal(c[:, known], x[:5][:, known])
    assert model.condition_on(x[:5], known).hidden.tolist() == [1, 2, 5, 6, 9, 10]


def test_online_em_first_step_is_a_batch_step_and_resumes_exactly():
    x = structured_images(LEVELS, 60)
    batch, online = gmm(LEVELS, components=3), gmm(LEVELS, components=3, em="online")
    torch.manual_seed(1)
    batch.update({"x": x})
    torch.manual_seed(1)  # the same k-means++ seeds
    online.update({"x": x})  # step size 1: the running statistics are this batch's
    assert torch.equal(batch.mean, online.mean) and torch.equal(batch.var, online.var)
    # save after 3 of 6 mini-batch steps, reload into a fresh model: the rest is identical
    parts = x.split(20)
    for part in parts:
        online.update({"x": part})
    state = {k: v.clone() for k, v in online.state_dict().items()}
    resumed = gmm(LEVELS, components=3, em="online", seed=9)
    resumed.load_state_dict(state)
    for part in reversed(parts):
        online.update({"x": part})
        resumed.update({"x": part})
    assert torch.equal(online.mean, resumed.mean) and torch.equal(online.s2, resumed.s2)
    assert int(resumed.em_steps) == 7


def test_variances_stay_above_the_floor():
    x = structured_images(LEVELS, 40)
    x[:, :, 0, 0] = 0  # a constant sub-pixel: its spread would collapse to 0
    diag, full = gmm(LEVELS, components=3, reg=1e-3), gmm(LEVELS, components=3, covariance="full", reg=1e-3)
    for _ in range(5):
        diag.update({"x": x})
        full.update({"x": x})
    assert diag.var.min().item() >= 1e-3
    assert torch.linalg.eigvalsh(full._cov()).min().item() >= 1e-3 * (1 - 1e-9)


def test_bad_config_and_bad_images_are_rejected():
    for bad in ({"components": 0}, {"reg": 0.0}, {"step_power": 0.5}):
        with pytest.raises(ValueError):
            GMMConfig(**bad)
    model = gmm(LEVELS, components=2)
    with pytest.raises(GenzooError, match=r"\(1, 3, 3\)"):
        model.log_prob(torch.zeros(2, 1, 4, 4, dtype=torch.long))
    with pytest.raises(GenzooError, match="0-3"):
        model.log_prob(torch.full((2, 1, 3, 3), 4))


def test_trainer_runs_full_batch_em_with_sample_grids_and_test_nll(tmp_path):
    from conftest import random_dataset
    from genzoo.training.config import TrainConfig
    from genzoo.training.trainer import Trainer

    model = gmm(LEVELS, components=2)
    assert model.conditional is False and model.default_condition(4) is None
    data = random_dataset(LEVELS, n=50)
    cfg = TrainConfig(steps=3, batch_size=10**9, sample_every=3, n_samples=4, checkpoint_every=3)
    last = Trainer(model, data, cfg, tmp_path, model_name="gmm", quiet=True,
                   callbacks=[HeldOutLikelihood("test")]).fit()
    assert (tmp_path / "samples" / "step_0000003.png").exists()
    assert last["test_nll_nats"] == pytest.approx(-model.log_prob(data.images("test")).mean().item(), rel=1e-9)
    assert int(model.em_steps) == 3
