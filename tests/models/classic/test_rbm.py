"""RBM, DBN and AIS: the laws that can be checked exactly on models small enough to enumerate."""
import math

import pytest
import torch

from conftest import random_dataset
from genzoo.data import ImageInfo
from genzoo.errors import GenzooError
from genzoo.metrics.ais import ais_log_z, beta_schedule, exact_log_z
from genzoo.models.classic.dbn import DBN, DBNConfig
from genzoo.models.classic.rbm import RBM, RBMConfig, RBMLayer, cd_surrogate
from genzoo.training.callbacks import OnStep
from genzoo.training.checkpoint import load_checkpoint
from genzoo.training.config import TrainConfig
from genzoo.training.run import load_run
from genzoo.training.trainer import Trainer, TrainingInterrupted

BINARY = ImageInfo(channels=1, height=4, width=4, num_values=2)


def _layer(d, h, kind="bernoulli", std=0.5, seed=0, sigma=0.5):
    torch.manual_seed(seed)
    layer = RBMLayer(d, h, kind, sigma=sigma, init_std=std).double()
    with torch.no_grad():
        layer.visible_bias.normal_(0, 0.5)
        layer.hidden_bias.normal_(0, 0.5)
    return layer


def _binary_states(n):
    return ((torch.arange(2 ** n).unsqueeze(1) >> torch.arange(n)) & 1).double()  # (2^n, n)


# -- free energy and AIS ------------------------------------------------------------------------------
def test_free_energy_and_exact_log_z_make_a_distribution():
    layer = _layer(7, 5, std=1.0)
    v = _binary_states(7)
    log_p = -layer.free_energy(v) - exact_log_z(layer)
    assert torch.logsumexp(log_p, 0).item() == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
def test_ais_matches_the_enumerated_log_z_within_a_few_standard_errors(kind):
    layer = _layer(20, 12, kind, std=0.5 if kind == "bernoulli" else 0.2)
    exact = exact_log_z(layer)
    v_data = (torch.rand(50, 20, generator=torch.Generator().manual_seed(2)) < 0.3).double()
    res = ais_log_z(layer, betas=500, chains=64, v_data=v_data, generator=torch.Generator().manual_seed(1))
    assert 0 < res.stderr < 0.1  # a real error bar, small enough for the check to mean something
    assert abs(res.log_z - exact) < 4 * res.stderr
    assert res.betas == 500 and res.chains == 64 and len(res.log_weights) == 64


def test_ais_is_reproducible_and_the_schedule_is_the_published_one():
    layer = _layer(10, 6)
    a = ais_log_z(layer, betas=50, chains=8, generator=torch.Generator().manual_seed(3))
    b = ais_log_z(layer, betas=50, chains=8, generator=torch.Generator().manual_seed(3))
    assert a.log_z == b.log_z
    betas = beta_schedule(14500)
    assert len(betas) == 14501 and betas[0] == 0 and betas[-1] == 1
    assert bool((betas[1:] > betas[:-1]).all())
    assert int((betas < 0.5).sum()) == 500 and int(((betas >= 0.5) & (betas < 0.9)).sum()) == 4000


# -- the CD update ----------------------------------------------------------------------------------
def _gradient_pieces(layer, data):
    """Exact quantities of a tiny Bernoulli RBM: the transition matrix of one Gibbs step and the
    sufficient statistics of every visible state."""
    d, h = layer.weight.shape
    vs, hs = _binary_states(d), _binary_states(h)
    a = layer.hidden_input(vs)  # (V, H)
    log_ph = hs @ torch.nn.functional.logsigmoid(a).T + (1 - hs) @ torch.nn.functional.logsigmoid(-a).T  # (Hs, V)
    bv = layer.visible_input(hs)  # (Hs, D)
    log_pv = vs @ torch.nn.functional.logsigmoid(bv).T + (1 - vs) @ torch.nn.functional.logsigmoid(-bv).T  # (V, Hs)
    trans = log_ph.T.exp() @ log_pv.T.exp()  # (V, V): T[v, v'] = sum_h p(h | v) p(v' | h)
    stats = vs.unsqueeze(2) * torch.sigmoid(a).unsqueeze(1)  # (V, D, H): v sigmoid(c + W^T v)^T
    idx = (data.long() * (2 ** torch.arange(d))).sum(1)  # each data vector's state index
    p_data = torch.bincount(idx, minlength=2 ** d).double() / len(data)
    p_model = torch.softmax(-layer.free_energy(vs), 0)
    positive = torch.einsum("v,vdh->dh", p_data, stats)
    exact = positive - torch.einsum("v,vdh->dh", p_model, stats)  # d mean log p(data) / dW
    return trans, stats, p_data, positive, exact


def test_cd_k_expected_update_approaches_the_exact_gradient_and_the_surrogate_gives_it():
    torch.set_num_threads(1)
    layer = _layer(5, 3, std=1.0, seed=4)
    data = (torch.rand(6, 5, generator=torch.Generator().manual_seed(5)) < 0.5).double()
    trans, stats, p_data, positive, exact = _gradient_pieces(layer, data)

    def cd_expected(k):
        q = p_data @ torch.linalg.matrix_power(trans, k)  # distribution of the k-step negatives
        return positive - torch.einsum("v,vdh->dh", q, stats)

    gaps = [(cd_expected(k) - exact).abs().max().item() for k in (1, 2, 400)]
    assert gaps[0] > 0.02  # CD-1 is biased here ...
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-8  # ... and CD-k is the likelihood gradient as k grows

    # the implementation: -grad of the surrogate, negatives by the layer's own Gibbs chain, averaged over
    # many copies of the data, is the CD-k expectation (Monte Carlo error ~ 0.5 / sqrt(N) per entry)
    torch.manual_seed(6)
    reps = data.repeat(8000, 1)  # N = 48,000
    for k in (1, 25):
        negatives = layer.gibbs(reps, k)
        layer.zero_grad()
        cd_surrogate(layer, reps, negatives).backward()
        assert torch.allclose(-layer.weight.grad, cd_expected(k), atol=0.015)


def test_rbm_loss_is_the_surrogate_of_its_own_negatives():
    torch.manual_seed(0)
    model = RBM(RBMConfig(hidden=6, cd_k=2), BINARY)
    x = random_dataset(BINARY).images("train", list(range(8)))
    torch.manual_seed(1)
    out = model.loss({"x": x})
    torch.manual_seed(1)
    v = model.visible(x)
    assert out.loss.item() == pytest.approx(cd_surrogate(model.layer, v, model.layer.gibbs(v, 2)).item(), abs=1e-5)


# -- sampling and completion ----------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: RBM(RBMConfig(hidden=6, gibbs_steps=5), BINARY),
    lambda: RBM(RBMConfig(hidden=6, gibbs_steps=5), ImageInfo(channels=1, height=4, width=4, num_values=5)),
    lambda: DBN(DBNConfig(hidden=(6, 5), layer_steps=(1, 1), gibbs_steps=5), BINARY),
])
def test_gibbs_completion_never_changes_clamped_pixels_and_seeds_repeat(make):
    torch.manual_seed(0)
    model = make()
    x = random_dataset(model.info).images("train", list(range(6)))
    g = torch.Generator().manual_seed(9)
    for _ in range(3):
        known = torch.rand(model.info.shape, generator=g) < 0.5
        out = model.complete(x, known, generator=torch.Generator().manual_seed(1), gibbs_steps=7)
        assert torch.equal(out[:, known], x[:, known])
        assert out.min() >= 0 and out.max() < model.info.num_values
    a = model.sample(5, generator=torch.Generator().manual_seed(2), gibbs_steps=3)
    b = model.sample(5, generator=torch.Generator().manual_seed(2), gibbs_steps=3)
    assert torch.equal(a, b)
    with pytest.raises(GenzooError, match="gibbs_steps"):
        model.sample(2, gibbs_steps=-1)
    with pytest.raises(GenzooError, match="sampling option"):
        model.sample(2, steps=3)


def test_bernoulli_visibles_refuse_grey_levels():
    with pytest.raises(GenzooError, match="binary"):
        RBM(RBMConfig(visible="bernoulli"), ImageInfo(channels=1, height=4, width=4, num_values=5))


# -- training: resume with persistent chains, the DBN's greedy schedule -------------------------------------
def _pcd_trainer(run_dir, steps=8):
    torch.manual_seed(0)
    model = RBM(RBMConfig(hidden=6, persistent=True, chains=7, cd_k=2, anneal_updates=10), BINARY)
    cfg = TrainConfig(steps=steps, batch_size=5, optimizer="sgd", lr=0.1, beta1=0.5, weight_decay=1e-3,
                      checkpoint_every=3, sample_every=0, eval_every=-1)
    return Trainer(model, random_dataset(BINARY, n=50), cfg, run_dir, model_name="rbm", seed=2, quiet=True)


def test_pcd_resume_equals_uninterrupted(tmp_path):
    full = _pcd_trainer(tmp_path / "full")
    full.fit()
    part = _pcd_trainer(tmp_path / "part")

    def stop_at_4(trainer):
        if trainer.step == 4:
            trainer._request_stop(None, None)

    part.callbacks.append(OnStep(stop_at_4))
    with pytest.raises(TrainingInterrupted):
        part.fit()
    torch.manual_seed(777)
    resumed = _pcd_trainer(tmp_path / "part")
    resumed.restore(load_checkpoint(tmp_path / "part" / "checkpoint.pt"))
    resumed.fit()
    state = resumed.model.state_dict()
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert int(state["updates"]) == 8 and state["chains"].shape == (7, 16)


def test_dbn_trains_its_layers_greedily_in_order(tmp_path):
    torch.manual_seed(0)
    model = DBN(DBNConfig(hidden=(6, 5), layer_steps=(2, 2)), BINARY)
    data = random_dataset(BINARY)

    def weights():
        return [layer.weight.detach().clone() for layer in model.layers]

    w0 = weights()
    cfg = TrainConfig(steps=2, batch_size=8, optimizer="sgd", lr=0.1, sample_every=0, eval_every=-1)
    Trainer(model, data, cfg, tmp_path / "a", model_name="dbn", quiet=True).fit()
    w1 = weights()
    assert not torch.equal(w0[0], w1[0]) and torch.equal(w0[1], w1[1])
    Trainer(model, data, cfg, tmp_path / "b", model_name="dbn", quiet=True).fit()
    w2 = weights()
    assert torch.equal(w1[0], w2[0]) and not torch.equal(w1[1], w2[1])


# -- likelihoods: the DBN's bound, the eval section -------------------------------------------------------
def test_dbn_bound_is_below_the_enumerated_log_likelihood():
    torch.manual_seed(3)
    model = DBN(DBNConfig(hidden=(4, 3), layer_steps=(0, 0), bound_samples=3000, init_std=1.0), BINARY).double()
    x = random_dataset(BINARY).images("train", list(range(5)))
    v = model.visible(x)
    bottom, top = model.layers
    h1 = _binary_states(4)
    log_top = -top.free_energy(h1) - exact_log_z(top)  # (16,) log p_top(h1)
    log_pv = torch.stack([bottom.log_p_visible(v, h.expand(len(v), -1)) for h in h1], 1)  # (B, 16)
    exact = torch.logsumexp(log_top + log_pv, 1)
    bound = model.log_prob_given_log_z(x, exact_log_z(top), generator=torch.Generator().manual_seed(0))
    assert bool((bound <= exact + 0.05).all())
    assert bool((bound > exact - 10).all())  # a bound, not a trivial one
    # one layer: the DBN is its RBM and the "bound" is exact
    one = DBN(DBNConfig(hidden=(4,), layer_steps=(0,), bound_samples=1), BINARY).double()
    lz = exact_log_z(one.layers[0])
    assert torch.allclose(one.log_prob_given_log_z(x, lz), -one.layers[0].free_energy(model.visible(x)) - lz)


def test_eval_reports_the_ais_estimate_with_its_protocol(tmp_path):
    from genzoo.evaluation.sections import applicable_sections, evaluate

    torch.manual_seed(0)
    model = RBM(RBMConfig(hidden=8, ais_betas=300, ais_chains=32), BINARY)
    data = random_dataset(BINARY)
    cfg = TrainConfig(steps=3, batch_size=8, optimizer="sgd", lr=0.1, sample_every=0, eval_every=-1)
    Trainer(model, data, cfg, tmp_path, model_name="rbm", quiet=True).fit()
    run = load_run(tmp_path)
    assert "partition" in applicable_sections(run.model, data) and "likelihood" not in applicable_sections(
        run.model, data)
    run.data = lambda: data
    res = evaluate(run, sections=["partition"], seed=4)
    rec = {(m["metric"], m["unit"]): m for m in res["metrics"]}
    nll = rec[("nll", "nats/image")]
    proto = nll["protocol"]
    assert proto["estimator"] == "AIS" and proto["betas"] == 300 and proto["chains"] == 32 and proto["seed"] == 4
    exact = (run.model.free_energy(data.images("test")).double().mean() + exact_log_z(run.model.layer)).item()
    assert abs(nll["value"] - exact) < 4 * proto["log_z_stderr"] + 1e-3
    assert rec[("nll", "bits/dim")]["value"] == pytest.approx(nll["value"] / (16 * math.log(2)))
    assert rec[("log_partition_function", "nats")]["value"] == proto["log_z"]
