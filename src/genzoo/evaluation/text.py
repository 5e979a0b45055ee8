"""``genzoo eval`` on token data: the language-model measures, per sentence and per token.

Registered as the ``text`` section (:func:`genzoo.evaluation.sections.register_section`); it
applies to likelihood models on token data (``text:``, ``tang:``, ``ptb:``), where the image
sections (bits/dim, pixel-space memorisation) do not. Every record counts the tokens of each
sentence up to and including its ``<eos>`` (:func:`genzoo.models.text._sequence.sentence_mask`):

* the NLL (exact, or the negative ELBO for a bound) in nats/sentence, bits/token (bits per
  character for character tokens) and perplexity exp(NLL / tokens) (Mikolov's convention: one
  ``<eos>`` per sentence counted);
* for :class:`~genzoo.models.base.ImportanceWeighted` models (the sentence VAE): the IWAE bound and
  the importance-sampled NLL with k draws (Burda et al. 2015, arXiv:1509.00519), per sentence,
  per token and as perplexity, on the first ``--max-images`` sentences;
* for models with a posterior (the sentence VAE): the mean KL(q(z | x) || p(z)) and the number
  of active units, dimensions with Cov_x(E_q[z_d]) > 0.01 (Burda et al.'s criterion).
"""

from __future__ import annotations

import math

import torch

from genzoo.evaluation.records import record
from genzoo.evaluation.sections import register_section
from genzoo.metrics.importance import importance_nll
from genzoo.models.base import ImportanceWeighted, LikelihoodModel
from genzoo.models.text._sequence import as_sequence, sentence_mask
from genzoo.models.text.sentence_vae import SentenceVAE

ACTIVE_UNIT_THRESHOLD = 0.01
TEXT_BATCH = 64  # sentences per forward pass (a 10k-word softmax over every scored token)
TOKENS_COUNTED = "tokens up to and including <eos>"


def _tokens(x: torch.Tensor) -> int:
    return int(sentence_mask(as_sequence(x)).sum())


def _three(name: str, nats_total: float, sentences: int, tokens: int, **proto) -> list[dict]:
    proto = {**proto, "sentences": sentences, "tokens": tokens, "tokens_counted": TOKENS_COUNTED}
    per_token = nats_total / max(tokens, 1)
    return [
        record(name, nats_total / sentences, "nats/sentence", **proto),
        record(name, per_token / math.log(2), "bits/token", **proto),
        record(f"{name}_perplexity", math.exp(min(per_token, 700.0)), "perplexity per token", **proto),
    ]


@torch.no_grad()
def text_section(model, data, split: str, batch_size: int, k: int, k_iwae: int, max_images, seed: int) -> list[dict]:
    was_training = model.training
    model.eval()
    n = data.size(split)
    total, tokens, mus, kl = 0.0, 0, [], 0.0
    try:
        for start in range(0, n, min(batch_size, TEXT_BATCH)):
            x = data.images(split, torch.arange(start, min(n, start + min(batch_size, TEXT_BATCH)))).to(model.device)
            total -= model.log_prob(x).double().sum().item()
            tokens += _tokens(x)
            if isinstance(model, SentenceVAE):
                mu, sigma = model.posterior(x)
                mus.append(mu.double().cpu())
                kl += (0.5 * (mu * mu + sigma * sigma - 1.0 - 2.0 * torch.log(sigma)).sum(-1)).sum().item()
    finally:
        model.train(was_training)
    bound = model.likelihood == "bound"
    out = _three(
        "negative_elbo" if bound else "nll",
        total,
        n,
        tokens,
        split=split,
        estimator="ELBO (bound)" if bound else "exact",
    )
    if mus:
        mu = torch.cat(mus)
        active = int((mu.var(0) > ACTIVE_UNIT_THRESHOLD).sum()) if len(mu) > 1 else 0
        out.append(record("kl", kl / n, "nats/sentence", split=split, sentences=n))
        out.append(
            record(
                "active_units",
                active,
                f"of {mu.shape[1]} code dimensions",
                split=split,
                sentences=n,
                rule=f"Cov_x(E_q[z_d]) > {ACTIVE_UNIT_THRESHOLD}",
            )
        )
    if isinstance(model, ImportanceWeighted) and isinstance(model, LikelihoodModel):
        res = importance_nll(model, data, split, k=k, k_iwae=k_iwae, seed=seed, max_images=max_images, progress=True)
        m = res["n_images"]
        sub_tokens = _tokens(data.images(split, torch.arange(m)))
        proto = {"split": split, "seed": seed}
        out += _three(
            "negative_iwae_bound", res["iwae_nats"] * m, m, sub_tokens, **proto, estimator="IWAE bound", k=k_iwae
        )
        out += _three("nll", res["is_nats"] * m, m, sub_tokens, **proto, estimator="importance sampling", k=k)
    return out


register_section(
    "text",
    "token data: NLL or ELBO per sentence, bits/token, perplexity; KL, active units, IS NLL (sentence VAE)",
    lambda m, d: d.info.is_text and isinstance(m, LikelihoodModel) and m.likelihood != "none",
)(lambda c: text_section(c.model, c.data, c.split, c.batch_size, c.k, c.k_iwae, c.max_images, c.seed))
