"""The VAE, its likelihood heads and the importance-sampling metrics: laws checked on fixed numbers,
and on a VAE small enough (a 1-D code, 2x2 binary images) that log p(x) is an integral we can compute."""
import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from genzoo.data import ImageDataset, ImageInfo
from genzoo.errors import GenzooError
from genzoo.metrics.importance import draws_per_call, importance_nll, log_mean_exp
from genzoo.models.autoencoders.vae import VAE, VAEConfig
from genzoo.nn.coders import CoderConfig, Decoder, Encoder
from genzoo.nn.decoders import make_head, resolve_head_name
from genzoo.nn.gaussian import gaussian_kl, reparameterize
from genzoo.training.checkpoint import load_checkpoint
from genzoo.training.config import TrainConfig
from genzoo.training.trainer import Trainer

# -- likelihood heads ------------------------------------------------------------------------------

HEAD_CASES = [  # (head, info)
    ("bernoulli", ImageInfo(1, 1, 1, 2)),
    ("categorical", ImageInfo(1, 1, 1, 7)),
    ("categorical", ImageInfo(1, 1, 1, 4, palette=((0, 0, 0), (255, 0, 0), (0, 255, 0), (10, 20, 30)))),
    ("gaussian", ImageInfo(1, 1, 1, 2)),
    ("gaussian", ImageInfo(1, 1, 1, 256)),
    ("logistic", ImageInfo(1, 1, 1, 5)),
    ("logistic", ImageInfo(1, 1, 1, 256)),
]


@pytest.mark.parametrize("name,info", HEAD_CASES)
def test_every_head_sums_to_one_over_the_values_of_a_sub_pixel(name, info):
    head = make_head(name, info)
    k = info.num_values
    g = torch.Generator().manual_seed(0)
    for scale in (0.1, 1.0, 8.0, 60.0):  # up to means and log-scales far outside the data's range
        params = scale * torch.randn(5, head.param_channels, 1, 1, generator=g, dtype=torch.float64)
        every = torch.stack([head.log_prob(params, torch.full((5, 1, 1, 1), v)) for v in range(k)])  # (K, 5)
        assert torch.allclose(torch.logsumexp(every, 0), torch.zeros(5, dtype=torch.float64), atol=1e-9)
        assert torch.allclose(head.log_prob_all(params)[:, 0, 0, 0].T, every, atol=1e-9)


def test_discretized_gaussian_is_the_cdf_difference_over_each_bin():
    k = 256
    head = make_head("gaussian", ImageInfo(1, 1, 3, k))
    mu = np.array([0.3, -0.2, 0.97])
    sigma = np.array([0.05, 0.4, 0.002])
    params = torch.tensor(np.stack([mu, np.log(sigma)]), dtype=torch.float64).view(1, 2, 1, 3)
    got = head.log_prob_all(params)[0, 0, 0].exp().numpy()  # (3, K)
    edges = (np.arange(k - 1) + 0.5) / (k - 1)  # between the centres v / (K-1); outer bins reach +-inf
    for j in range(3):
        cdf = np.concatenate([[0.0], norm.cdf(edges, mu[j], sigma[j]), [1.0]])
        np.testing.assert_allclose(got[j], np.diff(cdf), rtol=1e-9, atol=1e-15)  # the plain difference rounds at 1e-16
    # and far in the tail, where the CDF difference itself underflows, log space stays exact
    far = torch.tensor([[-3.0], [math.log(0.01)]], dtype=torch.float64).view(1, 2, 1, 1)
    lp = make_head("gaussian", ImageInfo(1, 1, 1, k)).log_prob(far, torch.tensor([[[[200]]]]))
    lo, hi = (200 - 0.5) / 255, (200 + 0.5) / 255
    assert lp.item() == pytest.approx(norm.logsf((lo + 3.0) / 0.01) + math.log(-math.expm1(
        norm.logsf((hi + 3.0) / 0.01) - norm.logsf((lo + 3.0) / 0.01))), rel=1e-9)
    assert math.exp(lp.item()) == 0.0  # the probability itself underflows


def test_discretized_logistic_is_the_sigmoid_difference_with_open_edge_bins():
    k = 5
    head = make_head("logistic", ImageInfo(1, 1, 1, k))
    mean, log_s = 0.2, math.log(0.3)
    params = torch.tensor([mean, log_s], dtype=torch.float64).view(1, 2, 1, 1)
    got = head.log_prob_all(params)[0, 0, 0, 0].exp()
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    centres = [2 * v / (k - 1) - 1 for v in range(k)]
    half = 1 / (k - 1)
    expect = [sig((c + half - mean) / 0.3) - (sig((c - half - mean) / 0.3) if v > 0 else 0.0)
              if v < k - 1 else 1 - sig((c - half - mean) / 0.3) for v, c in enumerate(centres)]
    assert torch.allclose(got, torch.tensor(expect, dtype=torch.float64), atol=1e-12)


def test_head_mean_mode_and_sample_follow_the_probabilities():
    info = ImageInfo(1, 1, 2, 3, palette=((0, 0, 0), (255, 0, 0), (0, 0, 255)))
    head = make_head("auto", info)
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]).T.reshape(1, 3, 1, 2)  # (B, K, H, W)
    p = torch.softmax(logits[0, :, 0].T, dim=-1)  # (W, K)
    pal = torch.tensor(info.palette, dtype=torch.float32) / 255
    assert torch.allclose(head.mean_unit(logits)[0, :, 0].T, p @ pal)  # the expected colour
    assert head.mode(logits).tolist() == [[[[1, 2]]]]
    draws = head.sample(logits.expand(20000, -1, -1, -1), torch.Generator().manual_seed(1))[:, 0, 0]  # (N, W)
    freq = torch.stack([(draws == v).float().mean(0) for v in range(3)], dim=1)  # (W, K)
    assert (freq - p).abs().max() < 4 * math.sqrt(0.25 / 20000)
    again = head.sample(logits.expand(20000, -1, -1, -1), torch.Generator().manual_seed(1))[:, 0, 0]
    assert torch.equal(draws, again)
    grey = make_head("gaussian", ImageInfo(1, 1, 1, 4))
    params = torch.tensor([0.4, -1.0]).view(1, 2, 1, 1)
    probs = grey.log_prob_all(params)[0, 0, 0, 0].exp()
    assert grey.mean_unit(params).item() == pytest.approx((probs * torch.arange(4) / 3).sum().item(), rel=1e-6)


def test_auto_head_choice_and_bad_choices():
    pal = ((0, 0, 0), (1, 1, 1), (2, 2, 2))
    assert resolve_head_name("auto", ImageInfo(1, 28, 28, 2)) == "bernoulli"
    assert resolve_head_name("auto", ImageInfo(1, 20, 20, 3, palette=pal)) == "categorical"
    assert resolve_head_name("auto", ImageInfo(3, 32, 32, 256)) == "logistic"
    assert resolve_head_name("auto", ImageInfo(2, 1, 1, 0)) == "gaussian"
    for name, info in (("bernoulli", ImageInfo(1, 4, 4, 5)), ("logistic", ImageInfo(1, 4, 4, 3, palette=pal)),
                       ("categorical", ImageInfo(2, 1, 1, 0))):
        with pytest.raises(GenzooError, match=name):
            make_head(name, info)


@pytest.mark.parametrize("shape", [(1, 20, 20), (1, 28, 28), (3, 32, 32), (2, 7, 5), (1, 4, 4), (2, 1, 1)])
def test_coders_give_back_exactly_the_image_size(shape):
    c, h, w = shape
    for arch in ("mlp", "conv"):
        cfg = CoderConfig(arch=arch, channels=(4, 8, 8), hidden=(16,), latent_dim=3)
        assert Encoder(c, h, w, 6, cfg)(torch.rand(2, c, h, w)).shape == (2, 6)
        assert Decoder(3, 5, h, w, cfg)(torch.randn(2, 3)).shape == (2, 5, h, w)


# -- the bound's pieces ------------------------------------------------------------------------------

def test_closed_form_kl_equals_a_monte_carlo_estimate():
    mu = torch.tensor([[0.5, -1.2, 2.0]], dtype=torch.float64)
    sigma = torch.tensor([[0.3, 1.5, 0.9]], dtype=torch.float64)
    n = 200_000
    z, eps = reparameterize(mu.expand(n, -1), sigma.expand(n, -1), torch.Generator().manual_seed(0))
    log_q = (-0.5 * eps ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(1)
    log_p = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(1)
    d = log_q - log_p  # (n,)
    se = d.std().item() / math.sqrt(n)
    assert abs(d.mean().item() - gaussian_kl(mu, sigma).item()) < 4 * se


def test_reparameterisation_passes_gradients_to_mu_and_sigma_and_follows_the_generator():
    mu = torch.tensor([[0.1, -0.4]], requires_grad=True)
    sigma = torch.tensor([[0.7, 2.0]], requires_grad=True)
    z, eps = reparameterize(mu, sigma, torch.Generator().manual_seed(3))
    (z * torch.tensor([[1.0, 3.0]])).sum().backward()
    assert torch.allclose(mu.grad, torch.tensor([[1.0, 3.0]]))  # dz/dmu = 1
    assert torch.allclose(sigma.grad, eps * torch.tensor([[1.0, 3.0]]))  # dz/dsigma = eps
    z2, _ = reparameterize(mu, sigma, torch.Generator().manual_seed(3))
    z3, _ = reparameterize(mu, sigma, torch.Generator().manual_seed(4))
    assert torch.equal(z, z2) and not torch.equal(z, z3)
    # through a model: the loss reaches the encoder's mean and scale outputs
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", hidden=(8,), latent_dim=2), ImageInfo(1, 3, 3, 2))
    x = torch.randint(0, 2, (6, 1, 3, 3))
    model.loss({"x": x}).loss.backward()
    last = model.encoder.net[-1].weight.grad  # rows 0-1: mu, rows 2-3: sigma
    assert last[:2].abs().sum() > 0 and last[2:].abs().sum() > 0
    a = model.log_weights(x, 7, torch.Generator().manual_seed(2))
    b = model.log_weights(x, 7, torch.Generator().manual_seed(2))
    assert a.shape == (7, 6) and torch.equal(a, b)


def test_log_weights_chunks_give_the_same_draws_in_the_same_order():
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", hidden=(8,), latent_dim=2), ImageInfo(1, 3, 3, 2)).double()
    x = torch.randint(0, 2, (4, 1, 3, 3))
    whole = model.log_weights(x, 12, torch.Generator().manual_seed(0))
    model.weights_budget = 4 * 9 * 5  # five draws per decoder call
    chunked = model.log_weights(x, 12, torch.Generator().manual_seed(0))
    assert torch.allclose(whole, chunked, atol=1e-12)


def test_kl_warmup_ramps_and_its_counter_survives_state_dict():
    torch.manual_seed(0)
    cfg = VAEConfig(arch="mlp", hidden=(8,), latent_dim=2, beta=2.0, kl_warmup_steps=4)
    model = VAE(cfg, ImageInfo(1, 3, 3, 2))
    x = torch.randint(0, 2, (5, 1, 3, 3))
    betas = [model.loss({"x": x}).metrics["beta"] for _ in range(3)]
    assert betas == [0.0, 0.5, 1.0]
    model.eval()
    assert model.loss({"x": x}).metrics["beta"] == 1.5  # evaluation does not advance the ramp
    assert model.loss({"x": x}).metrics["beta"] == 1.5
    model.train()
    copy = VAE(cfg, ImageInfo(1, 3, 3, 2))
    copy.load_state_dict(model.state_dict())
    assert [copy.loss({"x": x}).metrics["beta"] for _ in range(3)] == [1.5, 2.0, 2.0]
    # the loss weighs the KL by the current beta; nll_nats is -ELBO whatever beta is
    torch.manual_seed(7)
    out = copy.loss({"x": x})
    torch.manual_seed(7)
    recon, kl = copy.elbo_terms(x)
    assert torch.allclose(out.loss, -(recon - 2.0 * kl).mean())
    assert out.metrics["nll_nats"] == pytest.approx(-(recon - kl).mean().item(), rel=1e-6)


def test_a_resumed_run_continues_the_warm_up_exactly(tmp_path):
    info = ImageInfo(1, 3, 3, 2)
    data = ImageDataset(spec="rand", x=torch.randint(0, 2, (40, 1, 3, 3), generator=torch.Generator().manual_seed(0))
                        .to(torch.uint8), info=info, splits={"train": torch.arange(40)})

    def trainer(run_dir, steps):
        torch.manual_seed(0)
        model = VAE(VAEConfig(arch="mlp", hidden=(8,), latent_dim=2, kl_warmup_steps=6), info)
        cfg = TrainConfig(steps=steps, batch_size=8, sample_every=0, eval_every=-1, log_every=1)
        return Trainer(model, data, cfg, run_dir, model_name="vae", seed=1, quiet=True)

    full = trainer(tmp_path / "full", 8)
    full.fit()
    trainer(tmp_path / "part", 3).fit()
    torch.manual_seed(999)  # whatever happens in between must not matter
    resumed = trainer(tmp_path / "part", 8)
    resumed.restore(load_checkpoint(tmp_path / "part" / "checkpoint.pt"))
    resumed.fit()
    assert int(resumed.model.forward_passes) == 8
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    betas = [json.loads(line)["beta"] for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert betas == [0.0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0, 1.0]


def test_eval_log_prob_is_reproducible_and_training_draws_fresh_noise():
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", hidden=(8,), latent_dim=2), ImageInfo(1, 3, 3, 4))
    x = torch.randint(0, 4, (5, 1, 3, 3))
    model.eval()
    assert torch.equal(model.log_prob(x), model.log_prob(x))
    model.train()
    assert not torch.equal(model.log_prob(x), model.log_prob(x))


# -- a VAE small enough to integrate -------------------------------------------------------------------

def _exact_vae():
    """1-D code, 2x2 binary images; q(z | x) has sigma = 1.2 for every x (so the weights p/q are bounded)."""
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", hidden=(8,), activation="tanh", latent_dim=1, decoder="bernoulli"),
                ImageInfo(1, 2, 2, 2)).double().eval()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.normal_(0.0, 1.5)  # p(x | z) changes a lot along z
        last = model.encoder.net[-1]
        last.weight[1].zero_()
        last.bias[1] = math.log(math.expm1(1.2 - 1e-4))  # softplus(b) + 1e-4 = 1.2
    return model


def _all_images():
    v = torch.arange(16)
    return torch.stack([(v >> i) & 1 for i in range(4)], dim=1).view(16, 1, 2, 2)


def _quadrature(model, x):
    """log p(x) and the exact ELBO for each image, by the trapezoid rule on a dense grid of z."""
    z = torch.linspace(-12, 12, 24001, dtype=torch.float64)
    dz = z[1] - z[0]
    with torch.no_grad():
        params = model.decoder_params(z.view(-1, 1))  # (G, 1, 2, 2)
        log_lik = torch.stack([model.head.log_prob(params, xi.expand(len(z), -1, -1, -1)) for xi in x])  # (16, G)
        mu, sigma = model.posterior(x)  # (16, 1)
    trap = torch.full_like(z, math.log(dz))
    trap[[0, -1]] -= math.log(2)
    log_prior = -0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)
    log_px = torch.logsumexp(log_lik + log_prior + trap, dim=1)  # (16,)
    q = torch.exp(-0.5 * ((z - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi)) * trap.exp()  # (16, G)
    elbo = (q * log_lik).sum(1) - gaussian_kl(mu, sigma)
    return log_px, elbo


def test_exact_vae_is_normalised_and_its_elbo_is_below_log_p():
    model = _exact_vae()
    x = _all_images()
    log_px, elbo = _quadrature(model, x)
    assert torch.logsumexp(log_px, 0).item() == pytest.approx(0.0, abs=1e-9)  # sum_x p(x) = 1
    assert (elbo < log_px).all()
    # the model's one-draw ELBO is unbiased for the exact one
    n = 20000
    g = torch.Generator().manual_seed(0)
    draws = model.log_prob(x.repeat(n, 1, 1, 1), generator=g).view(n, 16)
    se = draws.std(0) / math.sqrt(n)
    assert ((draws.mean(0) - elbo).abs() < 4 * se).all()


def test_iwae_bound_rises_with_k_towards_log_p_and_importance_sampling_reaches_it():
    model = _exact_vae()
    x = _all_images()
    log_px, elbo = _quadrature(model, x)
    reps = 400
    with torch.no_grad():
        log_w = model.log_weights(x, 100 * reps, torch.Generator().manual_seed(1))  # (100 R, 16)
    bounds = {}
    for k in (1, 10, 100):  # the same draws in groups of k: common noise makes the differences sharp
        per_group = log_mean_exp(log_w.view(-1, k, 16), dim=1)  # (100 R / k, 16)
        bounds[k] = (per_group.mean(0), per_group.std(0) / math.sqrt(per_group.shape[0]))
    assert ((bounds[1][0] - elbo).abs() < 4 * bounds[1][1]).all()  # IWAE_1 is the ELBO
    step1 = bounds[10][0] - bounds[1][0]
    step2 = bounds[100][0] - bounds[10][0]
    assert (step1 > 0).all() and (step2 > 0).all()
    assert (bounds[100][0] < log_px + 4 * bounds[100][1]).all()
    assert (log_px - bounds[100][0] < log_px - bounds[10][0]).all()
    # k = 5000: the importance-sampled estimate is within its own standard error of log p(x)
    with torch.no_grad():
        lw = model.log_weights(x, 5000, torch.Generator().manual_seed(2))  # (5000, 16)
    est = log_mean_exp(lw, dim=0)
    w = torch.exp(lw - lw.max(0).values)
    se = w.std(0) / (w.mean(0) * math.sqrt(5000))  # delta method: sd of log(mean w)
    assert ((est - log_px).abs() < 4 * se).all()
    assert (est - log_px).abs().max() < 0.1  # small: se is 0.007-0.018 nats here, log p(x) is -7 to -2


def test_importance_nll_reports_the_three_estimates_in_order_with_protocol():
    model = _exact_vae()
    x = _all_images()
    log_px, _ = _quadrature(model, x)
    data = ImageDataset(spec="all16", x=x.to(torch.uint8), info=model.info,
                        splits={"test": torch.arange(16)})
    res = importance_nll(model, data, "test", k=5000, k_iwae=50, seed=0)
    assert res["elbo_nats"] > res["iwae_nats"] > res["is_nats"]
    assert res["is_nats"] == pytest.approx(-log_px.mean().item(), abs=0.02)  # ~5 standard errors of this mean
    assert res["is_bits_per_dim"] == pytest.approx(res["is_nats"] / (4 * math.log(2)))
    assert (res["k"], res["k_iwae"], res["n_images"], res["split"]) == (5000, 50, 16, "test")
    again = importance_nll(model, data, "test", k=5000, k_iwae=50, seed=0, max_images=6)
    assert again["n_images"] == 6


def test_importance_nll_is_the_same_whatever_the_memory_budget_and_streams_its_sums(monkeypatch):
    # k = 230, k_iwae = 50: four groups (the last 30 draws are in no group); chunks of 7 draws cut groups
    import genzoo.metrics.importance as imp

    model = _exact_vae()
    x = _all_images()
    data = ImageDataset(spec="all16", x=x.to(torch.uint8), info=model.info, splits={"test": torch.arange(16)})
    # the estimates written out from the whole (k,) weights of each image, drawn from its own generator
    ref = {"elbo": 0.0, "iwae": 0.0, "is": 0.0}
    for i in range(16):
        with torch.no_grad():
            lw = model.log_weights(x[i:i + 1], 230, torch.Generator().manual_seed(3 * 1_000_003 + i))[:, 0].double()
        ref["elbo"] -= lw.mean().item() / 16
        ref["iwae"] -= log_mean_exp(lw[:200].view(4, 50), dim=1).mean().item() / 16
        ref["is"] -= log_mean_exp(lw, dim=0).item() / 16

    updates = []

    class Bar:  # records how the progress bar moves
        def __init__(self, *a, total=None, **kw):
            self.total = total

        def update(self, n):
            updates.append(n)

        def close(self):
            pass

    monkeypatch.setattr(imp, "tqdm", Bar)
    whole = importance_nll(model, data, "test", k=230, k_iwae=50, seed=3)
    m, per_draw = imp.draws_per_call(model, x[:1], 230)
    assert whole["draws_per_call"] == m == 230  # the default budget holds every draw of this tiny model at once
    updates.clear()
    chunked = importance_nll(model, data, "test", k=230, k_iwae=50, seed=3, memory_budget=7 * per_draw,
                             progress=True)
    assert chunked["draws_per_call"] == 7
    for key in ref:
        assert whole[f"{key}_nats"] == pytest.approx(ref[key], abs=1e-9)
        assert chunked[f"{key}_nats"] == pytest.approx(ref[key], abs=1e-9)
    assert sum(updates) == 16 * 230 and len(updates) == 16 * 33  # the bar moves every 7 draws


def test_the_draws_per_call_fit_the_budget_and_count_the_decoders_output():
    info = ImageInfo(1, 20, 20, 167)  # the lecture's Pokemon: a softmax over 167 colours per pixel
    model = VAE(VAEConfig(arch="conv", channels=(32, 64), hidden=(256,), latent_dim=10, decoder="categorical"), info)
    x = torch.randint(0, 167, (1, 1, 20, 20))
    m, per_draw = draws_per_call(model, x, 5000, budget=2**30)
    assert per_draw >= 2 * 167 * 20 * 20 * 4  # at least the decoder's float32 output, doubled
    assert m * per_draw <= 2**30 < (m + 1) * per_draw
    assert draws_per_call(model, x, 5000, budget=1)[0] == 1 and draws_per_call(model, x, 3)[0] == 3
