"""``char_rnn``: the lecture's RNN "writing poetry" -- a recurrent language model over tokens.

Graves 2013, "Generating Sequences With Recurrent Neural Networks", arXiv:1308.0850, section 2
(eq. 1-5 with an LSTM or GRU cell; a softmax output, eq. 7-8 of its text-prediction section 3):
each token enters as a 1-of-N vector (here its product with an embedding matrix, the same linear
map), the recurrent state carries the prefix, and a softmax over the N tokens gives
p(x_t | x_<t), so

    log p(x) = sum_t log p(x_t | x_<t)          (exact; Graves eq. 1-2)

in nats, reported by ``genzoo eval`` as bits per token (bits per character for char tokens) and
perplexity exp(NLL / tokens). Step 0 reads a learned start vector. On token data the sum runs over
the sentence up to and including ``<eos>`` and ``<pad>`` follows with probability 1
(:mod:`genzoo.models.text._sequence`); on any other discrete data the model is a plain 1-D RNN
over the sub-pixels in raster order, like the lecture's PixelRNN.

Tokens are characters or words as the data set says (``--tokens char|word``). Sampling and
completion (``genzoo complete RUN --prefix 床前明月光``) run the shared autoregressive loop
(:mod:`genzoo.sampling.autoregressive`); the cached path carries the hidden state from token to
token (one RNN step each) and draws the same tokens as the naive path that reruns the whole
prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from genzoo.data.base import ImageInfo
from genzoo.data.tokens import EOS_ID
from genzoo.models.base import AutoregressiveModel, ModelOutput
from genzoo.models.registry import register_model
from genzoo.models.text._sequence import (
    TINY_TEXT,
    as_sequence,
    ended_before,
    force_pad,
    from_sequence,
    scored_log_probs,
    sentence_mask,
)

Cell = Literal["lstm", "gru"]


@dataclass
class CharRNNConfig:
    cell: Cell = "lstm"
    embed: int = 64  # width of a token's input vector (the 1-of-N vector times an embedding matrix)
    hidden: int = 256
    layers: int = 1
    dropout: float = 0.0  # between stacked layers and before the softmax layer (training only)

    def __post_init__(self):
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be lstm or gru, got {self.cell!r}")
        if self.embed < 1 or self.hidden < 1 or self.layers < 1:
            raise ValueError("embed, hidden and layers must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@register_model("char_rnn")
class CharRNN(AutoregressiveModel):
    """An LSTM or GRU language model: exact log p(x) = sum_t log p(x_t | x_<t)."""

    family = "text"
    paper = "Graves 2013, Generating Sequences With Recurrent Neural Networks, arXiv:1308.0850"
    Config = CharRNNConfig
    test_info: ClassVar[ImageInfo] = TINY_TEXT  # the shared contract suite builds it for token data
    presets = {
        "tiny": {"embed": 8, "hidden": 16, "batch_size": 8, "lr": 1e-2},
        # Tang quatrains by character (a ~3.7k-character vocabulary): sized for a CPU.
        "poetry": {"embed": 128, "hidden": 256, "dropout": 0.3, "batch_size": 64, "lr": 2e-3},
        # Words (PTB, 10k vocabulary): a CPU-sized one-layer LSTM.
        "words": {"embed": 256, "hidden": 256, "dropout": 0.3, "batch_size": 64, "lr": 2e-3},
        # Tang quatrains on a GPU: two layers, heavier dropout (3.5k training poems overfit quickly).
        "poetry_gpu": {"embed": 256, "hidden": 512, "layers": 2, "dropout": 0.5, "batch_size": 64, "lr": 2e-3},
        # PTB words on a GPU: two layers of 650 with dropout 0.5 (the size of Zaremba et al. 2014's medium model).
        "words_gpu": {"embed": 650, "hidden": 650, "layers": 2, "dropout": 0.5, "batch_size": 64, "lr": 1e-3},
        # Two wide layers; too slow for a shared CPU.
        "large": {"embed": 256, "hidden": 700, "layers": 2, "dropout": 0.25, "batch_size": 64, "lr": 1e-3},
    }

    def __init__(self, config: CharRNNConfig, info):
        super().__init__(config, info)
        v = info.num_values
        self.embedding = nn.Parameter(torch.randn(v, config.embed) * 0.1)  # (V, E): 1-of-N input times E
        self.start = nn.Parameter(torch.zeros(config.embed))  # step 0's input
        rnn = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = rnn(
            config.embed,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, v)

    # -- teacher-forced: every position at once ------------------------------------------------------
    def _inputs(self, emb: torch.Tensor) -> torch.Tensor:
        """Token vectors (B, L, E) -> the RNN's inputs (B, L, E): start vector, then tokens 0..L-2."""
        start = self.start.to(emb.dtype).expand(len(emb), 1, -1)
        return torch.cat([start, emb[:, :-1]], dim=1)

    def _hidden(self, emb: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self._inputs(emb))  # (B, L, H)
        return self.drop(out)

    def _sequence_logits(self, emb: torch.Tensor) -> torch.Tensor:
        return self.head(self._hidden(emb))  # (B, L, V)

    def logits(self, onehot, condition=None):
        """``onehot`` (B, C, H, W, V) -> logits (B, C, H, W, V); the output at t reads inputs < t only."""
        self.check_condition(condition)
        seq = onehot.permute(0, 2, 3, 1, 4).reshape(len(onehot), -1, onehot.shape[-1])  # (B, L, V) raster order
        logits = self._sequence_logits(seq @ self.embedding.to(seq.dtype))  # (B, L, V)
        if self.info.is_text:
            logits = force_pad(logits, ended_before(seq.argmax(-1)))
        return from_sequence(logits, self.info.shape)

    def token_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x_t | x_<t) of every position (B, L), zero after a sentence's ``<eos>``."""
        ids = as_sequence(x).long()  # (B, L)
        hidden = self._hidden(self.embedding[ids])  # (B, L, H)
        return scored_log_probs(self.head, hidden, ids, self.info.is_text)

    def log_prob(self, x, condition=None):
        """log p(x) in nats (B,): of the sentence (to its ``<eos>``) on token data, of every value otherwise."""
        self.check_condition(condition)
        return self.token_log_probs(x).sum(1)

    def loss(self, batch):
        x = batch["x"]
        logp = self.token_log_probs(x)  # (B, L)
        nll = -logp.sum(1)  # (B,)
        loss = nll.mean()
        tokens = sentence_mask(as_sequence(x)).sum() if self.info.is_text else torch.tensor(x[0].numel() * len(x))
        per_token = nll.sum().item() / max(int(tokens), 1)
        metrics = {
            "nll_nats": loss.item(),
            "bits_per_dim": loss.item() / (self.info.dims * math.log(2)),
            "bits_per_token": per_token / math.log(2),
        }
        return ModelOutput(loss, metrics)

    # -- cached: one RNN step per token ------------------------------------------------------------------
    def init_cache(self, n, condition=None):
        return {"state": None, "ended": torch.zeros(n, dtype=torch.bool, device=self.device)}

    def step(self, cache, t, canvas, condition=None):
        """Logits (n, V) of position ``t`` given ``canvas`` filled before t, carrying the RNN state."""
        seq = as_sequence(canvas)  # (n, L)
        n = len(seq)
        if t == 0:
            inp = self.start.expand(n, 1, -1)
            ended = cache["ended"]
        else:
            prev = seq[:, t - 1].long()
            inp = self.embedding[prev].unsqueeze(1)  # (n, 1, E)
            ended = cache["ended"] | (prev == EOS_ID) if self.info.is_text else cache["ended"]
        out, state = self.rnn(inp, cache["state"])
        logits = self.head(out[:, 0])  # (n, V)
        if self.info.is_text:
            logits = force_pad(logits, ended)
        return logits, {"state": state, "ended": ended}
