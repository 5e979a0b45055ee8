"""What the text models share: a token row as a sequence, where a sentence ends, the first input.

Token data (:mod:`genzoo.data.text`) stores each example as a (1, 1, L) row of ids: the sentence,
``<eos>``, then ``<pad>``. A text model scores a row as its *sentence*: the tokens up to and
including the first ``<eos>`` (all L when there is none), and draws ``<pad>`` with probability 1
after an ``<eos>``. The log-likelihood is therefore a proper distribution over sentences, and the
number of tokens scored (:func:`sentence_mask`) is the denominator of bits per token and perplexity.
"""

from __future__ import annotations

import torch

from genzoo.data.base import ImageInfo
from genzoo.data.tokens import EOS_ID, PAD_ID, SPECIALS
from genzoo.errors import GenzooError

# Six-token rows over four words: the data shape the shared contract suite builds text models for.
TINY_TEXT = ImageInfo(channels=1, height=1, width=6, num_values=8, vocab=(*SPECIALS, "a", "b", "c", "d"), tokens="char")


def as_sequence(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) values -> (B, L) in raster order, channels innermost (a token row: (B, 1, 1, L))."""
    return x.permute(0, 2, 3, 1).reshape(len(x), -1)


def from_sequence(seq: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """The inverse of :func:`as_sequence` for tensors with trailing dims: (B, L, ...) -> (B, C, H, W, ...)."""
    c, h, w = shape
    rest = seq.shape[2:]
    return seq.reshape(len(seq), h, w, c, *rest).permute(0, 3, 1, 2, *range(4, 4 + len(rest)))


def ended_before(ids: torch.Tensor) -> torch.Tensor:
    """(B, L) bool: an ``<eos>`` occurs strictly before position t."""
    seen = torch.cumsum((ids == EOS_ID).long(), dim=1)  # (B, L): <eos> at or before t
    return torch.cat([torch.zeros_like(seen[:, :1]), seen[:, :-1]], dim=1) > 0


def sentence_mask(ids: torch.Tensor) -> torch.Tensor:
    """(B, L) bool: the positions scored -- up to and including the first ``<eos>``."""
    return ~ended_before(ids)


def force_pad(logits: torch.Tensor, ended: torch.Tensor) -> torch.Tensor:
    """Logits (..., V) where ``ended`` (...) is True replaced by a point mass on ``<pad>``."""
    pad_only = torch.full_like(logits[..., :1].expand_as(logits), float("-inf"))
    pad_only[..., PAD_ID] = 0.0
    return torch.where(ended.unsqueeze(-1), pad_only, logits)


def check_text(name: str, info) -> None:
    """Refuse data that is not token sequences, naming the model and the data kinds it takes."""
    if not info.is_text:
        raise GenzooError(
            f"model {name!r} reads token sequences (text:PATH, tang:PATH, ptb:PATH data), not images of shape "
            f"{info.shape}"
        )


def scored_log_probs(head: torch.nn.Module, hidden: torch.Tensor, ids: torch.Tensor, text: bool) -> torch.Tensor:
    """log softmax(head(hidden)) at the observed ``ids`` (B, L), zero where a sentence has ended.

    On token data only the scored positions go through the softmax layer (a 10k-word softmax
    at every padding position would cost more than the rest of the model).
    """
    if not text:
        logp = torch.log_softmax(head(hidden), dim=-1)  # (B, L, V)
        return logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    mask = sentence_mask(ids)  # (B, L)
    logp = torch.log_softmax(head(hidden[mask]), dim=-1)  # (T, V): the T scored positions
    out = torch.zeros(ids.shape, dtype=logp.dtype, device=logp.device)
    out[mask] = logp.gather(-1, ids[mask].unsqueeze(-1)).squeeze(-1)
    return out
