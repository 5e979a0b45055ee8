"""``sentence_vae``: a variational autoencoder of sentences.

Bowman, Vilnis, Vinyals, Dai, Jozefowicz & Bengio 2016, "Generating Sentences from a Continuous
Space", CoNLL, arXiv:1511.06349. An LSTM encoder reads the sentence and gives q(z | x) =
N(mu, diag sigma^2); the code z sets the initial state of an LSTM decoder, a language model
p(x | z) = prod_t p(x_t | x_<t, z) over the sentence up to its ``<eos>``
(:mod:`genzoo.models.text._sequence`); the prior is p(z) = N(0, I). Training maximises

    ELBO(x) = E_q[log p(x | z)] - beta_t * KL(q(z | x) || p(z))      (the paper's eq. 2-3, beta_t = 1 at the end)

with the paper's two fixes for posterior collapse (section 3.1):

* KL cost annealing: beta_t rises from 0 to 1 over training, a logistic
  beta_t = 1 / (1 + exp(-k (t - x0))) or a linear beta_t = min(1, t / x0) in training steps t
  (:func:`kl_weight`);
* word dropout: each decoder input token is replaced by ``<unk>`` with probability
  ``word_dropout`` (training only), so the decoder must lean on z.

The reported bound always uses beta = 1. ``genzoo eval`` adds the importance-sampled NLL
log p(x) ~ log (1/k) sum_i p(x, z_i) / q(z_i | x) (the paper's section 4.1 reports such
estimates), perplexity exp(NLL / tokens), the KL term and the number of active units (dimensions
whose posterior mean varies over the data, Cov_x(E_q[z_d]) > 0.01: Burda et al.'s criterion).

``sample`` draws z from the prior and then the tokens from the decoder (temperature 0: greedy, as
in the paper's figures); ``interpolate`` decodes greedily along the line between two sentences'
codes (the paper's homotopies, section 4.3, Table 8); ``complete`` keeps the given tokens and
draws the rest given a prior draw of z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from genzoo.data.base import ImageInfo
from genzoo.data.tokens import EOS_ID, UNK_ID
from genzoo.errors import GenzooError
from genzoo.models.base import ImportanceWeighted, LatentModel, LikelihoodModel, ModelOutput
from genzoo.models.registry import register_model
from genzoo.models.text._sequence import (
    TINY_TEXT,
    as_sequence,
    check_text,
    force_pad,
    scored_log_probs,
    sentence_mask,
)
from genzoo.nn.gaussian import gaussian_kl, reparameterize
from genzoo.sampling.autoregressive import sample_raster

SIGMA_FLOOR = 1e-4
EVAL_SEED = 0  # eps of log_prob in eval mode when no generator is given
LOG_2PI = math.log(2 * math.pi)
Anneal = Literal["logistic", "linear", "none"]


def kl_weight(step: int, schedule: str, k: float, x0: int) -> float:
    """beta_t of KL cost annealing after ``step`` training steps: logistic 1 / (1 + exp(-k (t - x0))),
    linear min(1, t / x0), or none (1)."""
    if schedule == "none":
        return 1.0
    if schedule == "linear":
        return 1.0 if x0 == 0 else min(1.0, step / x0)
    if schedule == "logistic":
        return 1.0 / (1.0 + math.exp(min(-k * (step - x0), 700.0)))
    raise GenzooError(f"unknown KL annealing schedule {schedule!r}; valid: linear, logistic, none")


@dataclass
class SentenceVAEConfig:
    embed: int = 353
    hidden: int = 191
    latent_dim: int = 13
    word_dropout: float = 0.0  # share of decoder input tokens replaced by <unk> in training
    anneal: Anneal = "logistic"
    anneal_k: float = 0.0025  # slope of the logistic schedule
    anneal_steps: int = 2500  # x0: the logistic schedule's midpoint, the linear one's length

    def __post_init__(self):
        if min(self.embed, self.hidden, self.latent_dim) < 1:
            raise ValueError("embed, hidden and latent_dim must be >= 1")
        if not 0.0 <= self.word_dropout <= 1.0:
            raise ValueError(f"word_dropout must be in [0, 1], got {self.word_dropout}")
        if self.anneal not in ("logistic", "linear", "none"):
            raise ValueError(f"anneal must be logistic, linear or none, got {self.anneal!r}")
        if self.anneal_k <= 0:
            raise ValueError(f"anneal_k must be > 0, got {self.anneal_k}")


@register_model("sentence_vae")
class SentenceVAE(LatentModel, LikelihoodModel, ImportanceWeighted):
    """LSTM encoder -> z -> LSTM decoder; the ELBO with KL annealing and word dropout."""

    family = "text"
    paper = "Bowman et al. 2016, Generating Sentences from a Continuous Space, arXiv:1511.06349"
    likelihood = "bound"
    has_encoder = True
    Config = SentenceVAEConfig
    test_info: ClassVar[ImageInfo] = TINY_TEXT  # the shared contract suite builds it for token data
    weights_budget = 2**23  # decoder softmax outputs per chunk in log_weights (bounds memory)
    presets = {
        "tiny": {"embed": 8, "hidden": 16, "latent_dim": 2, "anneal": "none", "batch_size": 8, "lr": 1e-2},
        # The config defaults (one-layer LSTMs of 191 units, 353-d embeddings, a 13-d code) with the
        # logistic anneal and word dropout; too slow to train well on a shared CPU.
        "bowman": {"word_dropout": 0.25, "batch_size": 32, "lr": 1e-3},
        # The same network with neither fix (no KL annealing, no word dropout): posterior collapse, shown.
        "no_fixes": {"anneal": "none", "batch_size": 32, "lr": 1e-3},
        # CPU-sized: the same shape, a faster anneal (beta ~0.98 after 800 steps, about 1.2 PTB epochs).
        "cpu": {
            "embed": 256,
            "hidden": 256,
            "latent_dim": 16,
            "word_dropout": 0.25,
            "anneal_k": 0.01,
            "anneal_steps": 400,
            "batch_size": 64,
            "lr": 2e-3,
        },
    }

    forward_passes: torch.Tensor  # buffer: training loss calls so far (the annealing clock)

    def __init__(self, config: SentenceVAEConfig, info):
        check_text("sentence_vae", info)
        super().__init__(config, info)
        v, e, h, d = info.num_values, config.embed, config.hidden, config.latent_dim
        self.embedding = nn.Embedding(v, e)  # shared by encoder and decoder
        self.encoder = nn.LSTM(e, h, batch_first=True)
        self.to_posterior = nn.Linear(h, 2 * d)
        self.to_state = nn.Linear(d, 2 * h)  # z -> the decoder's initial (h, c)
        self.start = nn.Parameter(torch.zeros(e))  # the decoder's first input
        self.decoder = nn.LSTM(e, h, batch_first=True)
        self.head = nn.Linear(h, v)
        self.register_buffer("forward_passes", torch.zeros((), dtype=torch.long))

    # -- the two networks -----------------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x) = N(mu, diag sigma^2): token rows (B, 1, 1, L) -> mu, sigma (B, D)."""
        ids = as_sequence(x).long()  # (B, L)
        lengths = sentence_mask(ids).sum(1).cpu()  # (B,) tokens up to <eos>
        packed = pack_padded_sequence(self.embedding(ids), lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.encoder(packed)  # h: (1, B, H), the state after each sentence's last token
        mu, raw = self.to_posterior(h[-1]).chunk(2, dim=1)
        return mu, F.softplus(raw) + SIGMA_FLOOR

    def _initial_state(self, z: torch.Tensor):
        h, c = self.to_state(z).chunk(2, dim=-1)  # (B, H) each
        return h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous()

    def decoder_log_prob(self, x: torch.Tensor, z: torch.Tensor, word_dropout: float = 0.0) -> torch.Tensor:
        """log p(x | z) (B,) in nats over each sentence (to its ``<eos>``)."""
        ids = as_sequence(x).long()  # (B, L)
        inputs = ids[:, :-1]
        if word_dropout > 0:
            drop = torch.rand(inputs.shape, device=ids.device) < word_dropout
            inputs = torch.where(drop, torch.full_like(inputs, UNK_ID), inputs)
        emb = torch.cat([self.start.expand(len(ids), 1, -1), self.embedding(inputs)], dim=1)  # (B, L, E)
        out, _ = self.decoder(emb, self._initial_state(z))  # (B, L, H)
        return scored_log_probs(self.head, out, ids, True).sum(1)

    # -- the bound ------------------------------------------------------------------------------------
    def beta_now(self) -> float:
        c = self.config
        return kl_weight(int(self.forward_passes), c.anneal, c.anneal_k, c.anneal_steps)

    def elbo_terms(self, x, generator=None, word_dropout: float = 0.0):
        """One-sample log p(x | z) and the closed-form KL, each (B,)."""
        mu, sigma = self.posterior(x)
        z, _ = reparameterize(mu, sigma, generator)  # (B, D)
        return self.decoder_log_prob(x, z, word_dropout), gaussian_kl(mu, sigma)

    def log_prob(self, x, condition=None, *, generator: torch.Generator | None = None):
        """The ELBO per sentence (B,), a lower bound on log p(x) in nats (one draw of z)."""
        self.check_condition(condition)
        if generator is None and not self.training:
            generator = torch.Generator(device=x.device).manual_seed(EVAL_SEED)
        recon, kl = self.elbo_terms(x, generator)
        return recon - kl

    def loss(self, batch):
        x = batch["x"]
        beta = self.beta_now()
        if self.training:
            with torch.no_grad():
                self.forward_passes += 1
        dropout = self.config.word_dropout if self.training else 0.0
        recon, kl = self.elbo_terms(x, word_dropout=dropout)  # (B,) each; eps from the global RNG
        loss = -(recon - beta * kl).mean()
        nll = -(recon - kl).mean().item()
        tokens = int(sentence_mask(as_sequence(x)).sum())
        return ModelOutput(
            loss,
            {
                "nll_nats": nll,
                "bits_per_dim": nll / (self.info.dims * math.log(2)),
                "bits_per_token": nll * len(x) / (max(tokens, 1) * math.log(2)),
                "kl": kl.mean().item(),
                "recon": -recon.mean().item(),
                "beta": beta,
            },
        )

    def log_weights(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x), z_i ~ q(z | x): (k, B)."""
        b, d = len(x), self.latent_dim
        mu, sigma = self.posterior(x)  # (B, D)
        per_draw = b * self.info.width * self.info.num_values
        chunk = max(1, self.weights_budget // per_draw)
        out = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            eps = torch.stack(
                [torch.randn((b, d), generator=generator, device=mu.device, dtype=mu.dtype) for _ in range(m)]
            )  # (m, B, D): one call per draw, so chunking never changes them
            z = mu + sigma * eps  # (m, B, D)
            log_px = self.decoder_log_prob(x.repeat(m, 1, 1, 1), z.reshape(m * b, d)).view(m, b)
            log_pz = -0.5 * (z * z).sum(-1) - 0.5 * d * LOG_2PI
            log_qz = -0.5 * (eps * eps).sum(-1) - torch.log(sigma).sum(-1) - 0.5 * d * LOG_2PI
            out.append(log_px + log_pz - log_qz)
        return torch.cat(out)  # (k, B)

    # -- decoding token by token (the shared autoregressive loop, given z) ----------------------------
    def decoder_start(self, z: torch.Tensor) -> dict:
        n = len(z)
        return {"state": self._initial_state(z), "ended": torch.zeros(n, dtype=torch.bool, device=z.device)}

    def decoder_step(self, cache: dict, t: int, canvas: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Logits (n, V) of position ``t`` given the tokens before it and the carried decoder state."""
        seq = as_sequence(canvas)
        if t == 0:
            inp, ended = self.start.expand(len(seq), 1, -1), cache["ended"]
        else:
            prev = seq[:, t - 1].long()
            inp, ended = self.embedding(prev).unsqueeze(1), cache["ended"] | (prev == EOS_ID)
        out, state = self.decoder(inp, cache["state"])
        return force_pad(self.head(out[:, 0]), ended), {"state": state, "ended": ended}

    def _draw(self, z, *, generator=None, temperature=1.0, x=None, known=None, progress=False):
        return sample_raster(
            _DecoderGivenCode(self),
            len(z),
            known_values=x,
            known=known,
            generator=generator,
            temperature=temperature,
            condition=z,
            progress=progress,
        )

    # -- the latent-model contract --------------------------------------------------------------------
    def encode(self, x, condition=None, *, generator=None):
        """mu(x), the posterior mean (B, D)."""
        self.check_condition(condition)
        return self.posterior(x.to(self.device))[0]

    def decode_unit(self, z, condition=None):
        raise GenzooError("sentence_vae decodes codes to sentences (token ids), not to [0, 1] images")

    def decode(self, z, condition=None):
        """Codes (B, D) -> token rows (B, 1, 1, L): the decoder's greedy sentence (argmax at each step)."""
        self.check_condition(condition)
        return self._draw(z.to(self.device), temperature=0.0)

    def _sample(self, n, *, generator=None, temperature=1.0, condition=None, progress=False):
        z = self.prior(n, generator)  # (n, D) from N(0, I)
        return self._draw(z, generator=generator, temperature=temperature, progress=progress)

    def _complete(self, x, known, *, generator=None, temperature=1.0, condition=None, progress=False):
        z = self.prior(len(x), generator)
        return self._draw(z, generator=generator, temperature=temperature, x=x, known=known, progress=progress)

    def diagnose(self, record):
        kl, step = record.get("kl"), record.get("step", 0)
        if kl is not None and kl < 0.1 and self.beta_now() > 0.99 and step > 500:
            return [
                f"KL(q || p) is {kl:.3g} nats: the posterior has collapsed onto the prior and the decoder ignores "
                "the code (more word_dropout, a slower anneal)"
            ]
        return []


class _DecoderGivenCode(nn.Module):
    """The decoder with z as its 'condition', in the shape :func:`sample_raster` drives (cached steps)."""

    def __init__(self, vae: SentenceVAE):
        super().__init__()
        self.vae = vae
        self.info = vae.info

    @property
    def dtype(self) -> torch.dtype:
        return self.vae.dtype

    @property
    def device(self) -> torch.device:
        return self.vae.device

    def check_condition(self, condition) -> None:
        """The condition is the code z (n, D), supplied by the model itself."""

    def init_cache(self, n, z):
        return self.vae.decoder_start(z.to(self.dtype))

    def step(self, cache, t, canvas, z=None):
        return self.vae.decoder_step(cache, t, canvas)
