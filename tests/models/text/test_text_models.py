"""Laws of the text models: a distribution over sentences, causality, cached == naive sampling,
ELBO <= log p with the importance-sampled estimate converging to log p, KL annealing by formula."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import random_dataset, tiny_model
from genzoo.data import ImageInfo
from genzoo.data.tokens import EOS_ID, PAD_ID, SPECIALS
from genzoo.errors import GenzooError
from genzoo.models.text._sequence import TINY_TEXT, as_sequence, ended_before
from genzoo.models.text.sentence_vae import kl_weight

SMALL = ImageInfo(channels=1, height=1, width=3, num_values=6, vocab=(*SPECIALS, "a", "b"), tokens="char")


def every_sentence(info):
    """Every canvas a text model can produce: k non-<eos> tokens, <eos>, <pad>s (k < L), or L tokens."""
    length, v = info.width, info.num_values
    words = [i for i in range(v) if i != EOS_ID]
    rows = []
    for k in range(length + 1):
        for body in itertools.product(words, repeat=k):
            row = list(body) + ([EOS_ID] if k < length else [])
            rows.append(row + [PAD_ID] * (length - len(row)))
    return torch.tensor(rows).view(-1, 1, 1, length)


def test_char_rnn_probabilities_sum_to_one_over_every_sentence_and_every_step():
    model = tiny_model("char_rnn", SMALL).double().eval()
    every = every_sentence(SMALL)  # 1 + 5 + 25 + 125 sentences
    assert model.log_prob(every).exp().sum().item() == pytest.approx(1.0, abs=1e-10)
    onehot = F.one_hot(every, SMALL.num_values).double()
    probs = model.logits(onehot).softmax(-1)  # (N, 1, 1, L, V)
    assert torch.allclose(probs.sum(-1), torch.ones(()).double())
    ended = ended_before(as_sequence(every))  # after <eos>: <pad> with probability 1
    assert torch.all(probs[:, 0, 0][ended][:, PAD_ID] == 1)


@pytest.mark.parametrize("name", ["char_rnn", "sentence_vae"])
def test_loss_at_t_does_not_depend_on_later_tokens(name):
    """Causality by gradients (char_rnn's logits) and by values (both models' per-position scores)."""
    torch.manual_seed(0)
    model = tiny_model(name).double().eval()
    info = model.info
    x = torch.randint(4, info.num_values, (3, *info.shape))  # words only: every position is scored
    if name == "char_rnn":
        onehot = F.one_hot(x, info.num_values).double().requires_grad_(True)
        logits = model.logits(onehot)[:, 0, 0]  # (B, L, V)
        for t in range(info.width):
            (g,) = torch.autograd.grad(logits[:, t].logsumexp(-1).sum() - logits[:, t, 5].sum(), onehot,
                                       retain_graph=True)
            assert torch.all(g[..., t:, :] == 0)
            assert t == 0 or g[..., :t, :].abs().sum() > 0
        per_position = model.token_log_probs
    else:
        z = torch.randn(3, model.latent_dim, dtype=torch.float64)

        def per_position(rows):
            return torch.stack([model.decoder_log_prob(rows[..., : t + 1], z) for t in range(info.width)], 1)

        # decoder_log_prob of the first t+1 tokens; later tokens must not change position t's term
    base = per_position(x)
    for t in range(info.width - 1):
        y = x.clone()
        y[..., t + 1 :] = torch.randint(4, info.num_values, y[..., t + 1 :].shape)
        assert torch.allclose(per_position(y)[:, : t + 1], base[:, : t + 1])


def test_cached_sampling_equals_naive_and_prefix_completion_keeps_the_prefix():
    model = tiny_model("char_rnn")
    a = model.sample(16, generator=torch.Generator().manual_seed(3))
    b = model.sample(16, generator=torch.Generator().manual_seed(3), naive=True)
    assert torch.equal(a, b)
    seq = as_sequence(a)
    after_eos = torch.cumsum(seq == EOS_ID, 1) - (seq == EOS_ID).long() > 0
    assert torch.all(seq[after_eos] == PAD_ID)  # nothing but <pad> after a sentence ends
    x = torch.zeros(4, *TINY_TEXT.shape, dtype=torch.long)
    x[..., :2] = torch.tensor([4, 5])
    known = torch.zeros(TINY_TEXT.shape, dtype=torch.bool)
    known[..., :2] = True
    c = model.complete(x, known, generator=torch.Generator().manual_seed(1))
    d = model.complete(x, known, generator=torch.Generator().manual_seed(1), naive=True)
    assert torch.equal(c, d) and torch.all(c[..., :2] == x[..., :2])


def _quadrature_log_p(model, x, grid=4001, span=9.0):
    """log p(x) = log int p(x | z) N(z; 0, 1) dz for a one-dimensional code, by the trapezoid rule."""
    z = torch.linspace(-span, span, grid, dtype=torch.float64).unsqueeze(1)  # (G, 1)
    log_prior = -0.5 * z[:, 0] ** 2 - 0.5 * math.log(2 * math.pi)
    out = []
    for row in x:
        log_px = model.decoder_log_prob(row.expand(grid, -1, -1, -1), z)  # (G,)
        w = torch.full((grid,), (z[1, 0] - z[0, 0]).item(), dtype=torch.float64)
        w[0] = w[-1] = w[0] / 2
        out.append(torch.logsumexp(log_px + log_prior + w.log(), 0))
    return torch.stack(out)


def test_sentence_vae_elbo_below_log_p_and_importance_sampling_converges():
    torch.manual_seed(1)
    model = tiny_model("sentence_vae", SMALL)
    model.config.latent_dim = 1
    model.__init__(model.config, SMALL)  # rebuilt with a one-number code: log p(x) by quadrature
    model = model.double().eval()
    with torch.no_grad():
        model.to_state.weight.mul_(8.0)  # a decoder that depends strongly on z: a non-trivial posterior
        every = every_sentence(SMALL)
        log_p = _quadrature_log_p(model, every)
        assert log_p.exp().sum().item() == pytest.approx(1.0, abs=1e-6)  # a distribution over sentences
        x = every[[5, 17, 40, 100, 150]]
        lp = log_p[[5, 17, 40, 100, 150]]
        g = torch.Generator().manual_seed(0)
        elbo = torch.stack([model.log_prob(x, generator=g) for _ in range(400)]).mean(0)
        assert torch.all(elbo < lp)
        gap_elbo = (lp - elbo).abs()
        lw = model.log_weights(x, 20000, generator=g)  # (k, B)
        is_est = torch.logsumexp(lw, 0) - math.log(lw.shape[0])
        assert torch.allclose(is_est, lp, atol=0.02)
        assert torch.all((lp - is_est).abs() < gap_elbo)
        few = torch.logsumexp(lw[:10], 0) - math.log(10)
        assert torch.all((lp - is_est).abs() <= (lp - few).abs() + 1e-3)


@pytest.mark.parametrize("schedule", ["logistic", "linear", "none"])
def test_kl_annealing_matches_its_formula(schedule):
    k, x0 = 0.0025, 2500
    for t in (0, 1, 100, 2499, 2500, 2501, 5000, 10**6):
        expected = {"logistic": 1 / (1 + math.exp(-k * (t - x0))), "linear": min(1.0, t / x0), "none": 1.0}[schedule]
        assert kl_weight(t, schedule, k, x0) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(GenzooError, match="schedule"):
        kl_weight(0, "cosine", k, x0)


def test_sentence_vae_anneals_by_training_steps_and_word_dropout_hides_inputs():
    from genzoo.models.registry import make_config
    from genzoo.models.text.sentence_vae import SentenceVAE

    cfg = make_config(SentenceVAE.Config, {"embed": 8, "hidden": 8, "latent_dim": 2, "anneal": "linear",
                                           "anneal_steps": 4, "word_dropout": 1.0})
    model = SentenceVAE(cfg, TINY_TEXT)
    x = random_dataset(TINY_TEXT).images("train", [0, 1, 2])
    betas = [model.loss({"x": x}).metrics["beta"] for _ in range(6)]
    assert betas == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    z = torch.randn(3, 2)
    y = x.clone()
    y[..., :-1] = torch.randint(4, 8, y[..., :-1].shape)  # other inputs, the same targets at the last position
    torch.manual_seed(0)
    a = model.decoder_log_prob(x, z, word_dropout=1.0)
    torch.manual_seed(0)
    b = model.decoder_log_prob(x, z)
    assert not torch.allclose(a, b)  # every input replaced by <unk> changes the decoder's view


def test_sentence_vae_decode_is_greedy_and_interpolation_ends_at_the_codes():
    model = tiny_model("sentence_vae").eval()
    z = torch.randn(4, model.latent_dim, generator=torch.Generator().manual_seed(0))
    greedy = model.decode(z)
    again = model._draw(z, generator=torch.Generator().manual_seed(9), temperature=0.0)
    assert torch.equal(greedy, again)
    # greedy decoding picks the most likely token given the greedy prefix and z
    seq = as_sequence(greedy)
    cache = model.decoder_start(z)
    for t in range(seq.shape[1]):
        logits, cache = model.decoder_step(cache, t, greedy)
        assert torch.equal(logits.argmax(-1), seq[:, t])


def test_text_models_refuse_images():
    from genzoo.models.registry import make_config
    from genzoo.models.text.sentence_vae import SentenceVAE

    with pytest.raises(GenzooError, match="token sequences"):
        SentenceVAE(make_config(SentenceVAE.Config, {}), ImageInfo(channels=1, height=4, width=4, num_values=5))
