"""Tokens and vocabularies: text -> integer ids -> text, for every text kind of data and text model.

Two tokenisers, chosen by name:

- ``char``: every Unicode code point is a token (``"床前明月光"`` -> 5 tokens); exact round trip.
- ``word``: tokens are the whitespace-separated words (``str.split()``); decoding joins them with
  one space, so the round trip is exact for text whose words are separated by single spaces
  (Penn Treebank, or any line after ``" ".join(line.split())``).

A :class:`Vocabulary` maps tokens to ids. Ids 0-3 are always the special tokens
``<pad>`` (fills a batch's short sequences), ``<unk>`` (any token outside the vocabulary),
``<bos>`` (starts every sequence a model reads) and ``<eos>`` (ends it); the corpus tokens
follow, most frequent first (ties in first-seen order). ``Vocabulary.build(..., max_size=N)``
keeps the N - 4 most frequent tokens, so ``len(vocab) <= N``; the rest become ``<unk>``.
A corpus token spelt like a special one (Penn Treebank's ``<unk>``) *is* that special token.

A vocabulary travels with a run as JSON (``vocab.json``: ``{"format", "tokenizer", "tokens"}``),
never as a pickle; :meth:`Vocabulary.load` checks every key and names the file in its errors.

Usage::

    vocab = Vocabulary.build([tokenize(line, "char") for line in lines], "char", max_size=5000)
    ids = vocab.encode("床前明月光", bos=True, eos=True)   # [2, ..., 3]
    vocab.decode(ids)                                       # "床前明月光"
    vocab.save(run_dir / "vocab.json"); Vocabulary.load(run_dir / "vocab.json") == vocab
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from genzoo.errors import GenzooError, choices_error
from genzoo.io import atomic_write_text, read_json

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
TOKENIZERS = ("char", "word")
VOCAB_FORMAT = "genzoo-vocab-1"
MAX_VOCAB = 1 << 20  # ids a vocabulary may hold (a model's embedding table is this tall)
VOCAB_FILE = "vocab.json"  # the name a vocabulary has inside a run folder


def check_tokenizer(name: object) -> str:
    """``name`` if it is a tokeniser (``char`` or ``word``), else the one-line 'unknown tokenizer' error."""
    if name not in TOKENIZERS:
        raise choices_error("tokenizer", name, TOKENIZERS)
    return str(name)


def tokenize(text: str, tokenizer: str) -> list[str]:
    """``text`` as a list of tokens: code points (``char``) or whitespace-separated words (``word``)."""
    check_tokenizer(tokenizer)
    return list(text) if tokenizer == "char" else text.split()


def detokenize(tokens: Iterable[str], tokenizer: str) -> str:
    """The inverse of :func:`tokenize`: tokens joined with nothing (``char``) or one space (``word``)."""
    check_tokenizer(tokenizer)
    return ("" if tokenizer == "char" else " ").join(tokens)


@dataclass(frozen=True)
class Vocabulary:
    """Tokens by id (``tokens[i]`` is the token of id ``i``; the four specials first) and the tokeniser."""

    tokens: tuple[str, ...]
    tokenizer: str
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        self.check("vocabulary")
        object.__setattr__(self, "_ids", {t: i for i, t in enumerate(self.tokens)})

    def check(self, source: object) -> None:
        """Refuse a vocabulary that could not have come from :meth:`build`, naming ``source``."""
        check_tokenizer(self.tokenizer)
        if tuple(self.tokens[: len(SPECIALS)]) != SPECIALS:
            raise GenzooError(f"{source}: a vocabulary must start with the tokens {', '.join(SPECIALS)}")
        if len(self.tokens) > MAX_VOCAB:
            raise GenzooError(f"{source}: {len(self.tokens):,} tokens; the limit is {MAX_VOCAB:,} (MAX_VOCAB)")
        seen: set[str] = set()
        for i, t in enumerate(self.tokens):
            if not isinstance(t, str) or not t:
                raise GenzooError(f"{source}: token {i} is {t!r}; tokens are non-empty strings")
            if t in seen:
                raise GenzooError(f"{source}: token {t!r} appears twice (id {i})")
            if self.tokenizer == "char" and len(t) != 1 and t not in SPECIALS:
                raise GenzooError(f"{source}: token {i} {t!r} is not one character (tokenizer char)")
            if self.tokenizer == "word" and t.split() != [t]:
                raise GenzooError(f"{source}: token {i} {t!r} is not one word (tokenizer word)")
            seen.add(t)

    @classmethod
    def build(
        cls, sequences: Iterable[Sequence[str]], tokenizer: str, max_size: int | None = None, min_count: int = 1
    ) -> Vocabulary:
        """The vocabulary of tokenised ``sequences``: the specials, then tokens seen at least ``min_count``
        times, most frequent first (ties in first-seen order), at most ``max_size`` entries in all."""
        check_tokenizer(tokenizer)
        if max_size is not None and not len(SPECIALS) < max_size <= MAX_VOCAB:
            raise GenzooError(f"vocabulary size {max_size} out of range ({len(SPECIALS) + 1}-{MAX_VOCAB})")
        counts: Counter[str] = Counter()
        for seq in sequences:
            counts.update(seq)
        for s in SPECIALS:
            counts.pop(s, None)
        ranked = [t for t, c in sorted(counts.items(), key=lambda tc: -tc[1]) if c >= min_count]  # stable sort
        if max_size is not None:
            ranked = ranked[: max_size - len(SPECIALS)]
        return cls(SPECIALS + tuple(ranked), tokenizer)

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        """The id of ``token``; ``UNK_ID`` for a token outside the vocabulary."""
        return self._ids.get(token, UNK_ID)

    def encode(self, text: str | Sequence[str], bos: bool = False, eos: bool = False) -> list[int]:
        """Ids of ``text`` (a string, tokenised here, or a token list), with ``<bos>``/``<eos>`` if asked."""
        tokens = tokenize(text, self.tokenizer) if isinstance(text, str) else text
        ids = [self._ids.get(t, UNK_ID) for t in tokens]
        return ([BOS_ID] if bos else []) + ids + ([EOS_ID] if eos else [])

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``: stops at the first ``<eos>``, drops ``<bos>`` and ``<pad>``; ``<unk>`` stays
        visible as ``<unk>``. An id outside the vocabulary is an error (it names the id)."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i in (BOS_ID, PAD_ID):
                continue
            if not 0 <= i < len(self.tokens):
                raise GenzooError(f"token id {i} outside the vocabulary (0-{len(self.tokens) - 1})")
            out.append(self.tokens[i])
        return detokenize(out, self.tokenizer)

    def to_dict(self) -> dict:
        return {"format": VOCAB_FORMAT, "tokenizer": self.tokenizer, "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, d: object, source: object = "vocabulary") -> Vocabulary:
        """The inverse of :meth:`to_dict`, every key checked; errors name ``source``."""
        if not isinstance(d, dict):
            raise GenzooError(f"{source}: a vocabulary must be a JSON object")
        unknown = sorted(set(d) - {"format", "tokenizer", "tokens"})
        if unknown:
            raise GenzooError(f"{source}: unknown vocabulary key {unknown[0]!r}; valid: format, tokenizer, tokens")
        if d.get("format") != VOCAB_FORMAT:
            raise GenzooError(f"{source}: vocabulary format {d.get('format')!r}; expected {VOCAB_FORMAT!r}")
        tokens = d.get("tokens")
        if not isinstance(tokens, list):
            raise GenzooError(f"{source}: vocabulary 'tokens' must be a list of strings")
        if d.get("tokenizer") not in TOKENIZERS:
            raise GenzooError(f"{source}: vocabulary tokenizer {d.get('tokenizer')!r}; valid: {', '.join(TOKENIZERS)}")
        try:
            return cls(tuple(tokens), d["tokenizer"])
        except GenzooError as e:  # the constructor names "vocabulary"; name the file instead
            raise GenzooError(str(e).replace("vocabulary: ", f"{source}: ", 1)) from None

    def save(self, path: Path) -> None:
        """Write the vocabulary as JSON, atomically (a crash leaves the old file or the new one)."""
        atomic_write_text(Path(path), json.dumps(self.to_dict(), ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`; any fault is one line naming the file."""
        return cls.from_dict(read_json(Path(path), "vocabulary"), path)
