"""PCA, probabilistic PCA, factor analysis and ICA: fits against their closed forms, the likelihood
against dense Gaussians and exact enumeration, EM's monotonicity, ICA's recovery of a known mixing,
completion from the exact Gaussian conditional; the Olivetti loader."""
import itertools
import math

import numpy as np
import pytest
import scipy.io
import torch

from conftest import SHARED_DATA
from genzoo.data import ImageInfo, load_dataset
from genzoo.errors import GenzooError
from genzoo.models.registry import get_model_class, make_config
from genzoo.nn.gaussian import log_normal_mass


def build(name, info, **config):
    cls = get_model_class(name)
    return cls(make_config(cls.Config, config), info)


def continuous(x: torch.Tensor) -> tuple[ImageInfo, torch.Tensor]:
    """Points (N, D) as continuous 'images' (N, D, 1, 1)."""
    return ImageInfo(channels=x.shape[1], height=1, width=1, num_values=0), x.float().view(*x.shape, 1, 1)


def ppca_data(n=4000, d=6, q=2, seed=0, noise=None):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, q, generator=g, dtype=torch.float64)
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    sd = noise if noise is not None else torch.full((d,), 0.3, dtype=torch.float64)
    z = torch.randn(n, q, generator=g, dtype=torch.float64)
    return mu + z @ w.T + sd * torch.randn(n, d, generator=g, dtype=torch.float64)


def test_ppca_fit_is_the_closed_form_and_its_density_the_dense_gaussian():
    v = ppca_data()
    info, x = continuous(v)
    model = build("ppca", info, components=2, reg=1e-8)
    model.update({"x": x})
    v = x.double().flatten(1)  # what the model saw (float32 storage)
    mu = v.mean(0)
    s = (v - mu).T @ (v - mu) / len(v)
    lam, vec = torch.linalg.eigh(s)
    lam, vec = lam.flip(0), vec.flip(1)
    sigma2 = lam[2:].mean()
    expected = vec[:, :2] @ torch.diag(lam[:2] - sigma2) @ vec[:, :2].T  # W W^T, free of the rotation
    assert torch.allclose(model.mean, mu)
    assert model.noise.allclose(sigma2.expand(6))
    assert torch.allclose(model.weight @ model.weight.T, expected, atol=1e-10)
    assert model.likelihood == "exact"
    dense = torch.distributions.MultivariateNormal(mu, expected + sigma2 * torch.eye(6))
    assert torch.allclose(model.log_prob(x[:50]), dense.log_prob(v[:50]), atol=1e-8)
    # a refit on the same data changes nothing: the fit is closed-form
    before = {k: t.clone() for k, t in model.state_dict().items()}
    model.update({"x": x})
    assert all(torch.allclose(before[k], t) for k, t in model.state_dict().items())


def test_factor_analysis_em_is_monotone_and_beats_ppca_on_unequal_noise():
    noise = torch.tensor([0.05, 0.1, 0.3, 0.6, 1.0, 0.2], dtype=torch.float64)
    info, x = continuous(ppca_data(noise=noise, seed=1))
    fa = build("factor_analysis", info, components=2, iterations=1, reg=1e-6)
    v = x.double().flatten(1)
    lls = []
    for _ in range(30):
        fa.update({"x": x})
        lls.append(fa.gaussian_log_density(v).mean().item())
    assert all(b >= a - 1e-9 for a, b in zip(lls, lls[1:])), "an EM step lowered the likelihood"
    ppca = build("ppca", info, components=2)
    ppca.update({"x": x})
    assert lls[-1] > ppca.gaussian_log_density(v).mean().item() + 0.1
    assert torch.allclose(fa.noise.sqrt(), noise, atol=0.05, rtol=0)  # the per-dimension noise is recovered


def test_ica_recovers_a_known_mixing_up_to_permutation_and_sign():
    g = torch.Generator().manual_seed(0)
    n, d = 5000, 3
    u = torch.rand(n, d, generator=g, dtype=torch.float64) - 0.5
    s = -torch.sign(u) * torch.log1p(-2 * u.abs()) / math.sqrt(2)  # unit-variance Laplace sources
    mixing = torch.tensor([[1.0, 0.5, 0.2], [0.3, 1.0, -0.4], [-0.6, 0.2, 1.0]], dtype=torch.float64)
    info, x = continuous(s @ mixing.T + 0.5)
    torch.manual_seed(0)
    model = build("ica", info, components=3, reg=1e-8, iterations=500)
    model.update({"x": x})
    est = model.encode(x).double()  # (N, 3)
    corr = torch.corrcoef(torch.cat([est, s], 1).T)[:3, 3:].abs()  # estimated x true
    assert (corr.max(1).values > 0.98).all() and (corr.max(0).values > 0.98).all()
    assert sorted(corr.argmax(1).tolist()) == [0, 1, 2]  # a permutation
    assert (model.source_kind == 2).all(), "every source should be judged Laplace"
    # the columns of A are the mixing's columns up to permutation, sign (and scale ~1)
    a = model.weight
    cos = (a.T @ mixing).abs() / (a.norm(dim=0).unsqueeze(1) * mixing.norm(dim=0))
    assert (cos.max(1).values > 0.99).all()


def exact_discrete_log_prob(model, x):
    """log P(x) for a one-factor model on a few sub-pixels, by dense quadrature over z."""
    nodes, weights = np.polynomial.hermite.hermgauss(200)
    z = torch.tensor(nodes * math.sqrt(2), dtype=torch.float64)  # (n,)
    logw = torch.tensor(np.log(weights / math.sqrt(math.pi)), dtype=torch.float64)
    lo, hi = model._edges()
    flat = x.flatten(1)
    m = model.mean + z.view(-1, 1, 1) * model.weight[:, 0]  # (n, 1, D)
    s = model.noise.sqrt()
    ll = log_normal_mass((lo[flat] - m) / s, (hi[flat] - m) / s).sum(-1)  # (n, B)
    return torch.logsumexp(ll + logw.view(-1, 1), 0)


@pytest.mark.parametrize("name", ["ppca", "factor_analysis", "ica"])
def test_discrete_likelihood_is_a_bound_on_a_distribution_and_importance_sampling_closes_it(name):
    info = ImageInfo(channels=1, height=2, width=2, num_values=2)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(400, 1, generator=g)
    x = ((0.5 + z * torch.tensor([0.4, 0.3, -0.35, 0.2]) + 0.2 * torch.randn(400, 4, generator=g)) > 0.5).long()
    torch.manual_seed(0)
    model = build(name, info, components=1)
    model.update({"x": x.view(-1, 1, 2, 2)})
    assert model.likelihood == "bound"
    every = torch.tensor(list(itertools.product([0, 1], repeat=4))).view(-1, 1, 2, 2)  # all 16 images
    bound = model.log_prob(every)
    if name != "ica":  # the exact mass by quadrature over the Gaussian z
        exact = exact_discrete_log_prob(model, every)
        assert exact.exp().sum().item() == pytest.approx(1.0, abs=1e-6)  # a distribution over the images
        assert (bound <= exact + 1e-6).all()
        lw = model.log_weights(every, 20000, generator=torch.Generator().manual_seed(1))  # (k, 16)
        is_est = torch.logsumexp(lw, 0) - math.log(20000)
        assert torch.allclose(is_est, exact, atol=0.02)
    else:  # non-Gaussian sources: the ELBO stays below the importance-sampled estimate
        lw = model.log_weights(every, 20000, generator=torch.Generator().manual_seed(1))
        is_est = torch.logsumexp(lw, 0) - math.log(20000)
        assert (bound <= is_est + 1e-3).all()
        assert is_est.exp().sum().item() == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("name", ["ppca", "factor_analysis"])
def test_completion_at_temperature_zero_is_the_gaussian_conditional_mean(name):
    info, x = continuous(ppca_data(d=6, seed=2, noise=torch.linspace(0.1, 0.5, 6, dtype=torch.float64)))
    model = build(name, info, components=2)
    model.update({"x": x})
    known = torch.tensor([True, False, True, True, False, False]).view(6, 1, 1)
    out = model.complete(x[:5], known, temperature=0.0)
    c = model.weight @ model.weight.T + torch.diag(model.noise)
    k, h = known.flatten(), ~known.flatten()
    v = x[:5].double().flatten(1)
    mean = model.mean[h] + (v[:, k] - model.mean[k]) @ torch.linalg.solve(c[k][:, k], c[k][:, h])
    assert torch.equal(out[:, known], x[:5][:, known])
    assert torch.allclose(out.flatten(1)[:, h].double(), mean, atol=1e-5)
    # at temperature 1 the hidden values scatter around that mean with the conditional covariance
    many = model.complete(x[:1].expand(4000, -1, -1, -1), known, generator=torch.Generator().manual_seed(0))
    hid = many.flatten(1)[:, h].double()
    cond_cov = c[h][:, h] - c[h][:, k] @ torch.linalg.solve(c[k][:, k], c[k][:, h])
    assert torch.allclose(hid.mean(0), mean[0], atol=0.05)
    assert torch.allclose(torch.cov(hid.T), cond_cov, atol=0.05)


def test_pca_codes_are_whitened_scores_and_it_has_no_likelihood():
    from genzoo.models.base import LikelihoodModel

    info, x = continuous(ppca_data(seed=3))
    model = build("pca", info, components=2)
    assert not isinstance(model, LikelihoodModel)
    model.update({"x": x})
    v = x.double().flatten(1)
    mu = v.mean(0)
    lam, vec = torch.linalg.eigh((v - mu).T @ (v - mu) / len(v))
    scores = (v - mu) @ vec[:, -2:].flip(1) / lam[-2:].flip(0).sqrt()
    code = model.encode(x).double()
    assert torch.allclose(code.abs(), scores.abs(), atol=1e-4)  # up to each axis's sign
    assert torch.allclose(code.T @ code / len(code), torch.eye(2, dtype=torch.float64), atol=1e-4)


def test_linear_models_refuse_more_components_than_dimensions_and_bad_images():
    info = ImageInfo(channels=1, height=2, width=2, num_values=2)
    with pytest.raises(GenzooError, match="components=5 exceeds the 4 dimensions"):
        build("ppca", info, components=5)
    model = build("factor_analysis", info, components=1)
    with pytest.raises(GenzooError, match="values must lie in 0-1"):
        model.log_prob(torch.full((1, 1, 2, 2), 2))


# -- Olivetti faces ---------------------------------------------------------------------------------
def test_olivetti_loader_layout_split_and_shrinking(tmp_path):
    faces = np.arange(4096 * 400, dtype=np.int64).reshape(400, 64, 64) % 251  # face i, row r, column c
    faces = faces.astype(np.uint8)
    columns = faces.transpose(0, 2, 1).reshape(400, 4096).T  # one face a column, column-major
    scipy.io.savemat(tmp_path / "olivettifaces.mat", {"faces": columns})
    data = load_dataset(f"olivetti:{tmp_path}")
    assert data.info.shape == (1, 64, 64) and data.info.num_values == 256 and data.info.num_classes == 40
    assert np.array_equal(data.x[:, 0].numpy(), faces)  # upright: rows stay rows
    assert data.size("train") == 360 and data.size("test") == 40
    assert data.labels[data.indices("test")].tolist() == list(range(40))  # one face of each person
    small = load_dataset(f"olivetti:{tmp_path}", size=16)
    block = faces[:, :4, :4].reshape(400, -1).mean(1)
    assert np.array_equal(small.x[:, 0, 0, 0].numpy(), np.rint(block).astype(np.uint8))
    with pytest.raises(GenzooError, match="must divide 64"):
        load_dataset(f"olivetti:{tmp_path}", size=24)
    scipy.io.savemat(tmp_path / "other.mat", {"X": columns})
    with pytest.raises(GenzooError, match="no key 'faces'.*keys found: X"):
        load_dataset(f"olivetti:{tmp_path / 'other.mat'}")
    scipy.io.savemat(tmp_path / "short.mat", {"faces": columns[:, :10]})
    with pytest.raises(GenzooError, match=r"faces has shape \(4096, 10\)"):
        load_dataset(f"olivetti:{tmp_path / 'short.mat'}")


@pytest.mark.skipif(not (SHARED_DATA / "olivetti" / "olivettifaces.mat").is_file(), reason="no shared Olivetti file")
def test_olivetti_shared_file_and_eigenfaces_explain_most_variance():
    data = load_dataset(f"olivetti:{SHARED_DATA / 'olivetti'}", size=32)
    model = build("pca", data.info, components=40)
    out = model.update({"x": data.images("train")})
    assert out.metrics["explained_variance"] > 0.85
