"""The shared pieces of genzoo.nn and genzoo.data.kmeans, each serving several models: the Gaussian-bin
log-mass (VAE head and GMM), k-means++ (palette and GMM), the MLP builder, the shifted convolutions, and
the masked output stack's cached step."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from genzoo.data import kmeans
from genzoo.data.kmeans import kmeans_pp
from genzoo.nn.gaussian import TAIL, log_ndtr, log_normal_mass
from genzoo.nn.masked import IncrementalConv, MaskedConv2d, output_logits, output_logits_step
from genzoo.nn.mlp import mlp
from genzoo.nn.shifted import down_right_shifted, down_shifted

# -- the Gaussian bin ------------------------------------------------------------------------------

def _reference(lo: float, hi: float) -> float:
    """log(Phi(hi) - Phi(lo)) via erfc, relative-accurate in both tails."""
    if lo > 0:
        return math.log(0.5 * math.erfc(lo / math.sqrt(2)) - 0.5 * math.erfc(hi / math.sqrt(2)))
    return math.log(0.5 * math.erfc(-hi / math.sqrt(2)) - 0.5 * math.erfc(-lo / math.sqrt(2)))


@pytest.mark.parametrize("lo,hi", [(-37.0, -36.9), (TAIL - 0.3, TAIL - 0.1), (TAIL - 0.05, TAIL + 0.05),
                                   (TAIL + 0.1, TAIL + 0.3), (-12.0, -11.9), (-1.0, 0.5), (30.0, 30.2),
                                   (-math.inf, -25.0), (19.0, math.inf), (-math.inf, 0.3)])
def test_log_normal_mass_is_accurate_on_both_sides_of_the_series_threshold(lo, hi):
    got = log_normal_mass(torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)).item()
    assert got == pytest.approx(_reference(lo, hi), rel=1e-10)


def test_log_ndtr_gradient_is_the_mills_ratio_everywhere():
    x = torch.tensor([-1e4, -300.0, -40.0, TAIL - 1e-9, TAIL + 1e-9, -5.0, 0.0, 8.0], dtype=torch.float64,
                     requires_grad=True)
    (grad,) = torch.autograd.grad(log_ndtr(x).sum(), x)
    phi = torch.exp(-0.5 * x.detach() ** 2 - 0.5 * math.log(2 * math.pi))
    for xi, gi, ph in zip(x.detach().tolist(), grad.tolist(), phi.tolist()):
        if xi < -30:  # phi / Phi from the asymptotic series (Phi itself underflows far out)
            expect = -xi - 1 / xi + 2 / xi**3 - 10 / xi**5
        else:
            expect = ph / (0.5 * math.erfc(-xi / math.sqrt(2)))
        assert gi == pytest.approx(expect, rel=1e-9), xi


def test_the_values_do_not_depend_on_whether_a_gradient_is_wanted():
    """Without gradients the function skips the stand-ins; the numbers must be the same to the last bit."""
    g = torch.Generator().manual_seed(0)
    centre = torch.cat([torch.randn(200, generator=g, dtype=torch.float64) * 30, torch.tensor([-50.0, 50.0, 0.0])])
    width = torch.rand(200, generator=g, dtype=torch.float64) ** 8 * 3 + 1e-9  # down to far narrower than sigma
    width = torch.cat([width, torch.tensor([1e-3, 1e-3, 1e-30])])
    lower, upper = centre - width / 2, centre + width / 2
    lower[:20], upper[20:40] = -math.inf, math.inf
    plain = log_normal_mass(lower, upper)
    wanted = log_normal_mass(lower.clone().requires_grad_(True), upper.clone().requires_grad_(True))
    assert torch.equal(plain, wanted.detach()) and torch.isfinite(plain).all()


def test_infinite_edges_put_in_by_where_keep_gradients_finite():
    """The decoder head's use: edges computed from mu, the outer ones replaced by -inf / +inf."""
    mu = torch.tensor([0.2, 0.9], dtype=torch.float64, requires_grad=True)
    centre = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)  # (K,)
    lower = (centre[:, None] - 0.25 - mu) / 0.1  # (K, 2)
    upper = (centre[:, None] + 0.25 - mu) / 0.1
    lower = torch.where(torch.arange(3)[:, None] == 0, -math.inf, lower)
    upper = torch.where(torch.arange(3)[:, None] == 2, math.inf, upper)
    lp = log_normal_mass(lower, upper)  # (K, 2)
    torch.testing.assert_close(lp.exp().sum(0), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-12)
    (grad,) = torch.autograd.grad(lp.sum(), mu)
    assert torch.isfinite(grad).all()


# -- k-means++ ------------------------------------------------------------------------------------

def test_kmeans_pp_never_picks_a_weightless_point_and_seeds_distinct_points():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(200, 5))
    weights = np.ones(200)
    weights[:100] = 0.0
    for seed in range(5):
        picks = kmeans_pp(points, 10, np.random.default_rng(seed), weights)
        assert (picks >= 100).all() and len(set(picks.tolist())) == 10


def test_kmeans_pp_repeats_the_first_seed_once_every_point_is_a_seed():
    points = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    picks = kmeans_pp(points, 5, np.random.default_rng(0))
    assert {tuple(points[i]) for i in picks} == {(0.0, 0.0), (1.0, 1.0)}
    assert (picks[2:] == picks[0]).all()


def test_kmeans_pp_distances_in_blocks_are_exact(monkeypatch):
    points = np.random.default_rng(1).normal(size=(300, 7))
    whole = kmeans_pp(points, 8, np.random.default_rng(3))
    monkeypatch.setattr(kmeans, "_CHUNK_ELEMENTS", 50)  # 7 points per block
    assert np.array_equal(kmeans_pp(points, 8, np.random.default_rng(3)), whole)


def test_kmeans_pp_spreads_seeds_over_separated_clusters():
    rng = np.random.default_rng(2)
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    points = np.concatenate([c + rng.normal(size=(50, 2)) for c in centres])
    for seed in range(10):
        picks = kmeans_pp(points, 4, np.random.default_rng(seed))
        assert sorted(picks // 50) == [0, 1, 2, 3]  # one seed per cluster: D^2 weighting


# -- the MLP builder ------------------------------------------------------------------------------

def test_mlp_alternates_linear_and_activation_with_an_optional_last_activation():
    layers = mlp([3, 4, 5], nn.ReLU)
    assert [type(m) for m in layers] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU]
    layers = mlp([3, 4, 5, 2], nn.Tanh, last_activation=False)
    assert [type(m) for m in layers] == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear]
    assert [(m.in_features, m.out_features) for m in layers if isinstance(m, nn.Linear)] == [(3, 4), (4, 5), (5, 2)]


# -- shifted convolutions --------------------------------------------------------------------------

@pytest.mark.parametrize("make,rows,cols", [(down_shifted, (-1, 0), (-1, 1)), (down_right_shifted, (-1, 0), (-1, 0))],
                         ids=["down", "down-right"])
def test_shifted_convs_read_the_rows_above_and_the_columns_they_name(make, rows, cols):
    torch.manual_seed(0)
    conv = make(2, 3).double()
    with torch.no_grad():
        conv.conv.weight.copy_(torch.rand_like(conv.conv.weight) + 0.1)
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    out = conv.box(x, (0, 6, 0, 7))  # (1, 3, 6, 7), the whole image
    torch.testing.assert_close(out, conv.box(x.detach(), (0, 6, 0, 7)))
    i, j = 3, 4
    (grad,) = torch.autograd.grad(out[0, :, i, j].sum(), x)
    seen = torch.nonzero(grad[0].abs().sum(0)).tolist()
    expect = [[i + a, j + b] for a in range(rows[0], rows[1] + 1) for b in range(cols[0], cols[1] + 1)]
    assert sorted(seen) == sorted(expect)
    # one position from the whole input equals the same position of the whole output
    torch.testing.assert_close(conv.box(x.detach(), (i, i + 1, j, j + 1))[..., 0, 0], out.detach()[..., i, j])


# -- the masked output stack ------------------------------------------------------------------------

def test_output_logits_step_equals_the_whole_stack_channel_by_channel():
    torch.manual_seed(0)
    c, k = 3, 4
    hidden, out = MaskedConv2d(9, 6, 1, "B", c).double(), MaskedConv2d(6, c * k, 1, "B", c).double()
    features = torch.randn(2, 9, 3, 3, dtype=torch.float64)
    full = output_logits(features, hidden, out, c)  # (2, C, 3, 3, K)
    buffer = torch.zeros(2, 6, dtype=torch.float64)
    for g in range(c):
        step = output_logits_step(features[:, :, 1, 2], IncrementalConv(hidden), IncrementalConv(out), buffer, g)
        torch.testing.assert_close(step, full[:, g, 1, 2], rtol=0, atol=1e-12)
