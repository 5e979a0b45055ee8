"""PixelCNN++: the discretized logistic mixture (arXiv:1701.05517, eq. 2-3) and the model's paths."""
import math
import re

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F

from genzoo.data import ImageInfo
from genzoo.data.base import position
from genzoo.errors import GenzooError
from genzoo.models.autoregressive.pixelcnn_pp import PixelCNNPP, PixelCNNPPConfig
from genzoo.models.base import AutoregressiveModel
from genzoo.nn.logistic_mixture import all_value_log_probs, channel_log_probs, log_prob_values, num_params, value_grid


def _params(channels, mixtures, shape=(2, 3, 3), scale=3.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape[0], num_params(channels, mixtures), *shape[1:], generator=g, dtype=dtype) * scale


def _single(mean, log_scale, dtype=torch.float64):
    """Params (1, 3, 1, 1) of one logistic (M = 1, C = 1)."""
    return torch.tensor([0.0, mean, log_scale], dtype=dtype).view(1, 3, 1, 1)


def _onehot_zero(k):
    """A one-pixel grey image of value 0 as one-hot (1, 1, 1, 1, K); C = 1 has no earlier channels to read."""
    return F.one_hot(torch.zeros(1, 1, 1, 1, dtype=torch.long), k).double()


# -- the likelihood ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("channels,k,m", [(1, 256, 3), (3, 256, 10), (3, 2, 2), (1, 3, 1)])
def test_mixture_sums_to_one_over_values_for_every_sub_pixel(channels, k, m, dtype):
    for scale in (1.0, 30.0):  # ordinary and extreme params (means far outside [-1, 1], scales e^-7 .. e^30)
        params = _params(channels, m, scale=scale, dtype=dtype)
        x = torch.randint(0, k, (2, channels, 3, 3), generator=torch.Generator().manual_seed(1))
        logp = all_value_log_probs(params, F.one_hot(x, k).to(dtype))  # (B, C, H, W, K)
        assert torch.isfinite(logp).all()
        assert (logp.exp().sum(-1) - 1).abs().max().item() < 1e-6


@pytest.mark.parametrize("mean,log_scale",
                         [(0.1, -3.0), (-0.7, -1.0), (0.9, -6.5), (0.0, 1.0), (3.0, -2.0), (-1.0, -5.0)])
def test_single_logistic_matches_scipy_cdf_differences(mean, log_scale):
    k = 256
    s, h = math.exp(log_scale), 1.0 / (k - 1)
    x = value_grid(k, dtype=torch.float64).numpy()
    upper = scipy.stats.logistic.cdf(x + h, loc=mean, scale=s)
    lower = scipy.stats.logistic.cdf(x - h, loc=mean, scale=s)
    upper[-1], lower[0] = 1.0, 0.0  # the edge bins reach +-inf
    expected = upper - lower
    logp = all_value_log_probs(_single(mean, log_scale), _onehot_zero(k))
    got = logp[0, 0, 0, 0].exp().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-15)
    values = torch.arange(k).view(1, 1, 1, k).permute(3, 0, 1, 2)  # (K, 1, 1, 1): each value once
    per_value = log_prob_values(_single(mean, log_scale).expand(k, -1, -1, -1), values, k)[:, 0, 0, 0]
    np.testing.assert_allclose(per_value.exp().numpy(), expected, rtol=1e-9, atol=1e-15)


def test_far_tail_bins_stay_finite_and_match_log_space_reference():
    """A bin 2000 scales from the mean: the CDF difference underflows, the log-space form does not."""
    k, mean, log_scale = 256, -0.9, -7.0
    logp = all_value_log_probs(_single(mean, log_scale), _onehot_zero(k))
    v = 200
    x, s, h = value_grid(k, dtype=torch.float64)[v].item(), math.exp(log_scale), 1.0 / (k - 1)
    log_sf_lower = scipy.stats.logistic.logsf(x - h, loc=mean, scale=s)  # P = sf(lower) - sf(upper), in logs
    log_sf_upper = scipy.stats.logistic.logsf(x + h, loc=mean, scale=s)
    ref = log_sf_lower + math.log1p(-math.exp(log_sf_upper - log_sf_lower))
    assert logp[0, 0, 0, 0, v].item() == pytest.approx(ref, rel=1e-10)
    assert logp[0, 0, 0, 0, v].item() < -1000  # exp() of it is 0: a difference of CDFs would give log(0)


def test_mid_bin_approximation_only_where_the_bin_width_underflows():
    k = 16
    onehot = _onehot_zero(k)
    huge = all_value_log_probs(_single(0.0, 800.0), onehot)[0, 0, 0, 0]  # exp(-800) underflows to 0
    width = 2.0 / (k - 1)
    mid = math.log(width) - 800.0 - 2 * math.log(2.0)  # log(pdf(centre) * width), pdf(0) = 1/(4 s)
    assert torch.allclose(huge[1:-1], torch.full((k - 2,), mid, dtype=torch.float64), rtol=1e-12)
    assert torch.allclose(huge[[0, -1]].exp(), torch.full((2,), 0.5, dtype=torch.float64))
    wide = all_value_log_probs(_single(0.0, 30.0), onehot)[0, 0, 0, 0]  # wide but representable: exact form
    exact = math.log(math.tanh(width / 4 * math.exp(-30.0)))  # sigmoid(a) - sigmoid(-a) = tanh(a / 2)
    assert wide[k // 2].item() == pytest.approx(exact, rel=1e-6)


def test_rgb_conditionals_multiply_to_the_papers_joint_mixture():
    """sum_c log p(x_c | x_<c) == log sum_i pi_i P(r|i) P(g|i, r) P(b|i, r, g) (eq. 3), by hand."""
    k, m = 7, 3
    params = _params(3, m, shape=(1, 1, 1), scale=1.0)  # moderate: scipy's CDF differences stay accurate
    x = torch.tensor([2, 5, 0]).view(1, 3, 1, 1)
    p = params[0, :, 0, 0].numpy()
    logit_pi, means = p[:m], p[m:4 * m].reshape(3, m)
    log_s, coeffs = p[4 * m:7 * m].reshape(3, m), p[7 * m:].reshape(3, m)
    alpha, beta, gamma = np.tanh(coeffs)
    grid = value_grid(k, dtype=torch.float64).numpy()
    r, g, b = grid[x.flatten().numpy()]
    centre = [means[0], means[1] + alpha * r, means[2] + beta * r + gamma * g]
    h = 1.0 / (k - 1)

    def bin_prob(v, mu, ls):
        s = np.exp(np.maximum(ls, -7.0))
        up = 1.0 if v == k - 1 else scipy.stats.logistic.cdf(grid[v] + h, loc=mu, scale=s)
        lo = 0.0 if v == 0 else scipy.stats.logistic.cdf(grid[v] - h, loc=mu, scale=s)
        return up - lo

    pi = np.exp(logit_pi - logit_pi.max())
    pi /= pi.sum()
    values = x.flatten().tolist()
    joint = sum(pi[i] * np.prod([bin_prob(values[c], centre[c][i], log_s[c][i]) for c in range(3)]) for i in range(m))
    per_channel = log_prob_values(params, x, k)  # (1, 3, 1, 1)
    assert per_channel.sum().item() == pytest.approx(math.log(joint), rel=1e-10)
    table = all_value_log_probs(params, F.one_hot(x, k).double())
    assert torch.allclose(table.gather(-1, x.unsqueeze(-1)).squeeze(-1), per_channel, atol=1e-12)
    for c in range(3):  # the sampling path's one-channel table, with garbage in channels >= c
        garbage = torch.cat([x[:, :c], torch.full_like(x[:, c:], 6)], dim=1)
        assert torch.allclose(channel_log_probs(params, garbage, c, k), table[:, c], atol=1e-12)


def test_channel_c_ignores_its_own_and_later_values_of_the_pixel():
    k = 5
    params = _params(3, 2, shape=(1, 1, 1))
    base = F.one_hot(torch.tensor([1, 3, 4]).view(1, 3, 1, 1), k).double()
    for c in range(3):
        other = base.clone()
        other[:, c:] = F.one_hot(torch.tensor([4, 0, 2])[c:].view(1, -1, 1, 1), k).double()
        a, b = all_value_log_probs(params, base), all_value_log_probs(params, other)
        assert torch.equal(a[:, :c + 1], b[:, :c + 1])
        if c < 2:
            assert not torch.allclose(a[:, c + 1], b[:, c + 1])


def test_gradcheck_of_both_functions_in_float64():
    k = 5
    params = _params(3, 2, shape=(1, 1, 2), scale=1.0).requires_grad_(True)
    x = torch.tensor([[[[0, 4]], [[2, 1]], [[4, 3]]]])  # (1, 3, 1, 2): both edge bins and interior ones
    assert torch.autograd.gradcheck(lambda p: log_prob_values(p, x, k), (params,), fast_mode=True)
    onehot = (F.one_hot(x, k).double() * 0.9 + 0.02).requires_grad_(True)  # off the one-hot corners too
    assert torch.autograd.gradcheck(all_value_log_probs, (params, onehot), fast_mode=True)


# -- the model -----------------------------------------------------------------------------------
def _model(info, seed=0, **overrides):
    torch.manual_seed(seed)
    cfg = {**{k: v for k, v in PixelCNNPP.presets["tiny"].items() if k in PixelCNNPPConfig.__dataclass_fields__},
           **overrides}
    return PixelCNNPP(PixelCNNPPConfig(**cfg), info)


@pytest.mark.parametrize("info", [ImageInfo(1, 5, 7, 256), ImageInfo(3, 3, 5, 256), ImageInfo(3, 1, 1, 4)],
                         ids=["grey-odd", "rgb-odd", "rgb-1x1"])
def test_direct_log_prob_equals_the_softmax_path_of_the_base_class(info):
    model = _model(info).eval()
    x = torch.randint(0, info.num_values, (3, *info.shape), generator=torch.Generator().manual_seed(0))
    direct = model.log_prob(x)
    via_table = AutoregressiveModel.log_prob(model, x)
    assert torch.allclose(direct, via_table, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("info", [ImageInfo(1, 5, 6, 9), ImageInfo(3, 5, 3, 7), ImageInfo(1, 2, 1, 3)],
                         ids=["grey", "rgb", "column"])
def test_cached_step_equals_teacher_forcing_and_never_reads_the_future(info):
    model = _model(info).double().eval()
    n, g = 3, torch.Generator().manual_seed(0)
    x = torch.randint(0, info.num_values, (n, *info.shape), generator=g)
    with torch.no_grad():
        expected = model.logits(F.one_hot(x, info.num_values).double())  # (n, C, H, W, K)
        cache = model.init_cache(n)
        for t in range(info.dims):
            c, h, w = position(t, info)
            canvas = torch.randint(0, info.num_values, x.shape, generator=g)  # garbage at and after t
            flat, truth = canvas.permute(0, 2, 3, 1).reshape(n, -1), x.permute(0, 2, 3, 1).reshape(n, -1)
            flat[:, :t] = truth[:, :t]
            canvas = flat.view(n, info.height, info.width, info.channels).permute(0, 3, 1, 2)
            before = {k: v.clone() for k, v in cache.items()} if c > 0 else None
            logits, cache = model.step(cache, t, canvas)
            assert torch.allclose(logits, expected[:, c, h, w], atol=1e-10), f"sub-pixel {t}"
            if before is not None:  # G and B reuse the pixel's features: no layer is recomputed
                assert all(torch.equal(before[k], v) for k, v in cache.items())


@pytest.mark.parametrize("size", [(20, 20), (28, 28), (7, 5), (1, 9)])
def test_cached_sampling_computes_each_position_about_once(size):
    """The plan's boxes add up to about one forward pass per image, not one per pixel."""
    model = _model(ImageInfo(3, *size, 256))
    plan = model.sampling_plan()
    computed = sum((r1 - r0) * (c1 - c0) for step in plan for _, (r0, r1, c0, c1) in step)
    one_pass = sum(node.size[0] * node.size[1] for node in model.nodes)
    assert computed <= 1.25 * one_pass
    assert len(plan) == size[0] * size[1]  # one update per pixel, shared by its C channels


def test_ready_maps_bound_the_dependencies_of_strided_and_transposed_layers():
    """A position's ready time (last pixel it reads) is >= every pixel with a non-zero gradient."""
    info = ImageInfo(1, 5, 6, 4)
    model = _model(info).double()
    maps = model.ready_maps()
    values = torch.rand(1, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    cache = model.activations(values)
    keys = [node.key for node in model.nodes if "stride" in node.key or "deconv" in node.key] + ["head"]
    raster = torch.arange(30).view(5, 6)
    for key in keys:
        out, ready = cache[key], maps[key]  # (1, F, h, w), (h, w)
        h, w = ready.shape
        probes = torch.eye(h * w, dtype=out.dtype).view(h * w, 1, 1, h, w).expand(-1, *out.shape)  # one per position
        (grads,) = torch.autograd.grad(out, values, probes, retain_graph=True, is_grads_batched=True)
        for pos in range(h * w):
            seen = raster[grads[pos, 0, 0] != 0]
            assert seen.numel() == 0 or seen.max() <= ready.flatten()[pos], (key, pos)
    assert torch.all(maps["head"].flatten() <= torch.arange(30) - 1)


def test_odd_grey_image_is_causal_by_gradients():
    info = ImageInfo(1, 5, 3, 4)
    model = _model(info).double()
    onehot = F.one_hot(torch.randint(0, 4, (1, *info.shape)), 4).double().requires_grad_(True)
    logits = model.logits(onehot)
    for t in range(info.dims):
        c, h, w = position(t, info)
        (grad,) = torch.autograd.grad(logits[0, c, h, w].sum(), onehot, retain_graph=True)
        per_pixel = grad.abs().sum(dim=(0, 1, 4)).flatten()  # (H*W,)
        assert torch.all(per_pixel[t:] == 0) and (t == 0 or per_pixel[:t].sum() > 0)


def test_conditional_model_uses_the_label_and_samples_the_same_cached_or_naive():
    info = ImageInfo(3, 3, 3, 5, num_classes=4)
    model = _model(info, conditional=True).eval()
    x = torch.randint(0, 5, (2, *info.shape))
    assert not torch.allclose(model.log_prob(x, torch.tensor([0, 0])), model.log_prob(x, torch.tensor([3, 3])))
    y = torch.tensor([1, 2, 3])
    a = model.sample(3, generator=torch.Generator().manual_seed(0), precision=torch.float64, condition=y)
    b = model.sample(3, generator=torch.Generator().manual_seed(0), precision=torch.float64, condition=y, naive=True)
    assert torch.equal(a, b)
    with pytest.raises(GenzooError):
        _model(ImageInfo(1, 3, 3, 5), conditional=True)


def test_dropout_is_active_in_training_only():
    info = ImageInfo(1, 4, 4, 6)
    model = _model(info, dropout=0.5)
    x = torch.randint(0, 6, (2, *info.shape))
    assert not torch.equal(model.log_prob(x), model.log_prob(x))
    model.eval()
    assert torch.equal(model.log_prob(x), model.log_prob(x))


def test_config_rejects_bad_values_and_the_cifar_preset_is_the_papers():
    for bad in ({"filters": 0}, {"resnets": 0}, {"mixtures": 0}, {"dropout": 1.0}):
        with pytest.raises(ValueError):
            PixelCNNPPConfig(**bad)
    cifar = PixelCNNPP.presets["cifar"]
    paper = {"resnets": 5, "filters": 160, "mixtures": 10, "dropout": 0.5, "lr": 1e-3}
    assert {k: cifar[k] for k in paper} == paper
    model = _model(ImageInfo(3, 8, 8, 256), resnets=2)
    blocks = [n.key for n in model.nodes if re.fullmatch(r"(down|up)\d\.u\d", n.key)]
    assert len(blocks) == 3 * 2 + 2 + 3 + 3  # u-stream blocks: 3 stages down, then R, R+1, R+1 up
    assert model.nodes[-1].nin.out_channels == 10 * 2  # 10 numbers per mixture component for RGB
