"""Token sequences as data: ``text:PATH``, ``tang:PATH`` (Tang poems), ``ptb:PATH`` (Penn Treebank).

Every kind gives an :class:`~genzoo.data.base.ImageDataset` whose examples are (1, 1, max_len)
rows of token ids (``info.tokens`` names the tokeniser, ``info.vocab`` the tokens by id; see
:mod:`genzoo.data.tokens`): a sentence's ids, then ``<eos>``, then ``<pad>`` to ``max_len``.
A sentence longer than ``max_len - 1`` tokens keeps its first ``max_len`` tokens and no ``<eos>``
(``meta["truncated"]`` counts them). So every command that works on discrete images -- train,
sample, complete, eval, compare -- works on text, and the models of :mod:`genzoo.models.text`
read ``<eos>``/``<pad>`` as the end of a sentence.

Options (the CLI's ``--tokens``, ``--vocab``, ``--max-len``, ``--form``):

* ``tokens``: ``char`` or ``word`` (defaults: ``char`` for text and Tang poems, ``word`` for PTB);
* ``vocab``: at most N vocabulary entries (the four special tokens included), built from the
  *training* split only; rarer tokens, and tokens first seen in valid/test, become ``<unk>``;
* ``max_len``: tokens per example including ``<eos>`` (default: the longest example + 1, at most
  :data:`DEFAULT_MAX_LEN`);
* ``form`` (Tang only): keep one form of poem, :data:`FORMS`.

Kinds:

* ``text:PATH`` -- a UTF-8 file, one example a line (blank lines skipped, counted in
  ``meta["blank_lines"]``); or a folder of ``*.txt`` files. A folder holding ``train.txt``,
  ``test.txt`` (and optionally ``valid.txt``) keeps those splits; otherwise every tenth line is
  the test split (:func:`~genzoo.data.base.every_tenth_split`).
* ``tang:PATH`` -- the complete Tang poems of the chinese-poetry collection (57,607 poems,
  traditional characters): the ``tang_poetry.tar.gz`` archive, read without extracting, or a
  folder of ``poet.tang.N.json`` files (JSON lists of ``{"author", "title", "paragraphs", "id"}``).
  One example a poem, its lines joined (the punctuation marks the verses); files in numeric
  order, every tenth poem the test split. ``form=quatrain5`` keeps five-character quatrains
  (2 lines of 12 characters with punctuation: 3,935 poems), ``quatrain7`` seven-character ones,
  ``regulated5``/``regulated7`` eight-verse regulated verse (4 lines of 12 or 16).
* ``ptb:PATH`` -- Mikolov's Penn Treebank (``ptb.zip`` holding ``ptb.train.txt``, ``ptb.valid.txt``,
  ``ptb.test.txt``, read from the zip; or a folder with those files): its own three splits; its
  ``<unk>`` is the vocabulary's ``<unk>``.

A file that cannot be text -- empty, holding a NUL byte (binary), or not UTF-8 -- is a one-line
:class:`~genzoo.errors.GenzooError` naming the file and line.
"""

from __future__ import annotations

import json
import re
import tarfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from genzoo.data.base import (
    MAX_FILE_BYTES,
    ImageDataset,
    ImageInfo,
    check_memory,
    decode_text,
    every_tenth_split,
    int_option,
    read_data_file,
    reason,
)
from genzoo.data.kinds import register_dataset
from genzoo.data.tokens import MAX_VOCAB, PAD_ID, UNK, UNK_ID, Vocabulary, check_tokenizer, tokenize
from genzoo.errors import GenzooError, choices_error

DEFAULT_MAX_LEN = 256  # tokens per example when --max-len is not given and an example is longer
MAX_LEN = 4096  # the largest --max-len
SPLIT_NAMES = ("train", "valid", "test")
TEXT_KINDS = ("text", "tang", "ptb")  # the data kinds of token sequences
FORMS = ("all", "quatrain5", "quatrain7", "regulated5", "regulated7")
# (verse lines, characters per line including its two punctuation marks) of each form
_FORM_SHAPES = {"quatrain5": (2, 12), "quatrain7": (2, 16), "regulated5": (4, 12), "regulated7": (4, 16)}
PUNCTUATION = frozenset("，。！？；：、「」『』（）《》〈〉…—·,.!?;:")


def poem_form_ok(text: str, form: str) -> bool:
    """Whether ``text`` (a poem's lines joined) has the shape of ``form``: its length, a punctuation
    mark ending every half line (characters 5 and 11 of a 12-character line) and none elsewhere."""
    if form not in _FORM_SHAPES:
        raise choices_error("poem form", form, _FORM_SHAPES)
    lines, width = _FORM_SHAPES[form]
    half = width // 2
    if len(text) != lines * width:
        return False
    return all((ch in PUNCTUATION) == (i % half == half - 1) for i, ch in enumerate(text))


# -- reading text ---------------------------------------------------------------------------------
def text_lines(data: bytes, source: object) -> list[str]:
    """The lines of a text file's bytes; refused when empty, binary (a NUL byte) or not UTF-8."""
    if not data.strip():
        raise GenzooError(f"{source}: empty file (no text to read)")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data[:nul].count(b"\n") + 1
        raise GenzooError(f"{source}:{line}: a NUL byte: this is a binary file, not UTF-8 text")
    return decode_text(data, source).splitlines()


def _examples(lines: Iterable[str]) -> tuple[list[str], int]:
    """Non-blank lines, and how many blank ones were skipped."""
    out, blank = [], 0
    for line in lines:
        if line.strip():
            out.append(line)
        else:
            blank += 1
    return out, blank


# -- building the data set ------------------------------------------------------------------------
def token_dataset(
    spec: str,
    splits: dict[str, list[str]],
    tokenizer: str,
    vocab_size: int | None,
    max_len: int | None,
    meta: dict | None = None,
) -> ImageDataset:
    """Examples by split (strings) -> token rows (N, 1, 1, max_len), the vocabulary built on ``train``."""
    tokenized = {name: [tokenize(s, tokenizer) for s in lines] for name, lines in splits.items()}
    for name, seqs in tokenized.items():
        if not seqs:
            raise GenzooError(f"{spec}: the {name} split holds no example")
    vocab = Vocabulary.build(tokenized["train"], tokenizer, max_size=vocab_size)
    longest = max(len(s) for seqs in tokenized.values() for s in seqs) + 1
    length = min(longest, DEFAULT_MAX_LEN) if max_len is None else max_len
    n = sum(len(seqs) for seqs in tokenized.values())
    check_memory(spec, n, length * 4, "token rows")
    rows = np.full((n, length), PAD_ID, dtype=np.int32)
    index, start, truncated, unknown, total = {}, 0, 0, 0, 0
    for name, seqs in tokenized.items():
        for i, seq in enumerate(seqs):
            ids = vocab.encode(seq, eos=True)
            total += len(ids) - 1
            unknown += ids.count(UNK_ID) - seq.count(UNK)
            if len(ids) > length:
                ids, truncated = ids[:length], truncated + 1
            rows[start + i, : len(ids)] = ids
        index[name] = torch.arange(start, start + len(seqs))
        start += len(seqs)
    x = torch.from_numpy(rows).view(n, 1, 1, length).to(torch.uint8 if len(vocab) <= 256 else torch.int32)
    info = ImageInfo(channels=1, height=1, width=length, num_values=len(vocab), vocab=vocab.tokens, tokens=tokenizer)
    meta = dict(meta or {})
    meta.update(truncated=truncated, tokens=total, out_of_vocabulary=unknown, max_len=length)
    return ImageDataset(spec=spec, x=x, info=info, splits=index, meta=meta)


def _options(spec: str, options: dict, default_tokens: str, allowed: tuple[str, ...] = ()) -> tuple:
    extra = sorted(k for k, v in options.items() if v is not None and k not in ("tokens", "vocab", "max_len", *allowed))
    if extra:
        raise GenzooError(f"{spec}: options {extra} do not apply (token data takes --tokens, --vocab, --max-len)")
    tokens = check_tokenizer(options.get("tokens") or default_tokens)
    vocab = options.get("vocab")
    if vocab is not None:
        vocab = int_option(spec, "vocab", vocab, 5, MAX_VOCAB)
    max_len = options.get("max_len")
    if max_len is not None:
        max_len = int_option(spec, "max_len", max_len, 2, MAX_LEN)
    return tokens, vocab, max_len


# -- text:PATH ------------------------------------------------------------------------------------
@register_dataset(
    "text",
    "text:PATH",
    "UTF-8 text, one example a line (a file, or a folder of .txt files; train/valid/test.txt keep their "
    "split, else every tenth line is test); --tokens char|word, --vocab N, --max-len N",
)
def load_text(spec: str, path: str, **options) -> ImageDataset:
    tokens, vocab, max_len = _options(spec, options, "char")
    root = Path(path)
    if not root.exists():
        raise GenzooError(f"{root}: no such file or folder")
    blank = 0
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix == ".txt")
        if not files:
            raise GenzooError(f"{root}: holds no .txt file")
        named = {p.stem: p for p in files if p.stem in SPLIT_NAMES}
        if "train" in named and "test" in named:
            splits = {}
            for name in SPLIT_NAMES:
                if name in named:
                    splits[name], b = _examples(text_lines(read_data_file(named[name]), named[name]))
                    blank += b
            return token_dataset(spec, splits, tokens, vocab, max_len, {"blank_lines": blank})
        lines: list[str] = []
        for f in files:
            ex, b = _examples(text_lines(read_data_file(f), f))
            lines, blank = lines + ex, blank + b
    else:
        lines, blank = _examples(text_lines(read_data_file(root), root))
    if len(lines) < 2:
        raise GenzooError(f"{root}: {len(lines)} non-blank line(s); at least 2 are needed (train and test)")
    idx = every_tenth_split(len(lines))
    splits = {name: [lines[i] for i in ids.tolist()] for name, ids in idx.items()}
    return token_dataset(spec, splits, tokens, vocab, max_len, {"blank_lines": blank})


# -- ptb:PATH -------------------------------------------------------------------------------------
@register_dataset(
    "ptb",
    "ptb:PATH",
    "Penn Treebank, Mikolov's split (ptb.zip or a folder with ptb.train/valid/test.txt), word tokens",
)
def load_ptb(spec: str, path: str, **options) -> ImageDataset:
    tokens, vocab, max_len = _options(spec, options, "word")
    root = Path(path)
    if not root.exists():
        raise GenzooError(f"{root}: no such file or folder")
    splits = {}
    for name in SPLIT_NAMES:
        member = f"ptb.{name}.txt"
        source: object
        if root.is_dir():
            source, data = root / member, read_data_file(root / member)
        else:
            source, data = f"{root}:{member}", _zip_member(root, member)
        splits[name], _ = _examples(text_lines(data, source))
    return token_dataset(spec, splits, tokens, vocab, max_len)


def _zip_member(path: Path, member: str) -> bytes:
    """One member of a zip archive, read into memory (never extracted to disk), size-checked first."""
    try:
        with zipfile.ZipFile(path) as z:
            try:
                entry = z.getinfo(member)
            except KeyError:
                raise GenzooError(f"{path}: the archive holds no {member}") from None
            if entry.file_size > MAX_FILE_BYTES:
                raise GenzooError(f"{path}:{member}: {entry.file_size:,} bytes; the limit is {MAX_FILE_BYTES:,}")
            return z.read(entry)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as e:
        raise GenzooError(f"{path}: cannot read the zip archive ({reason(e)})") from None


# -- tang:PATH ------------------------------------------------------------------------------------
_TANG_FILE = re.compile(r"poet\.tang\.(\d+)\.json$")


@register_dataset(
    "tang",
    "tang:PATH",
    "the complete Tang poems (tang_poetry.tar.gz or a folder of poet.tang.N.json), one poem an example, "
    "characters; --form " + "|".join(FORMS),
)
def load_tang(spec: str, path: str, **options) -> ImageDataset:
    form = options.pop("form", None) or "all"
    if form not in FORMS:
        raise choices_error("poem form", form, FORMS)
    tokens, vocab, max_len = _options(spec, options, "char")
    poems = [text for text in _tang_poems(Path(path)) if form == "all" or _has_form(text, form)]
    if len(poems) < 2:
        raise GenzooError(f"{path}: {len(poems)} poem(s) of the form {form}; at least 2 are needed")
    joined = ["".join(p) for p in poems]
    idx = every_tenth_split(len(joined))
    splits = {name: [joined[i] for i in ids.tolist()] for name, ids in idx.items()}
    return token_dataset(spec, splits, tokens, vocab, max_len, {"form": form, "poems": len(joined)})


def _has_form(lines: list[str], form: str) -> bool:
    """The form filter of the data set: the number of lines and characters per line (with punctuation)."""
    n, width = _FORM_SHAPES[form]
    return len(lines) == n and all(len(line) == width for line in lines)


def _tang_poems(root: Path) -> list[list[str]]:
    """Every poem's lines, files in numeric order (``poet.tang.0.json``, ``poet.tang.1000.json``, ...)."""
    if not root.exists():
        raise GenzooError(f"{root}: no such file or folder")
    files: list[tuple[int, str, bytes]] = []
    if root.is_dir():
        for p in root.rglob("poet.tang.*.json"):
            m = _TANG_FILE.search(p.name)
            if m:
                files.append((int(m.group(1)), str(p), read_data_file(p)))
    else:
        try:
            with tarfile.open(root, "r:*") as tar:
                for member in tar:
                    m = _TANG_FILE.search(member.name)
                    if not (m and member.isfile()):
                        continue
                    if member.size > MAX_FILE_BYTES:
                        raise GenzooError(f"{root}:{member.name}: larger than MAX_FILE_BYTES")
                    f = tar.extractfile(member)
                    if f is not None:
                        files.append((int(m.group(1)), f"{root}:{member.name}", f.read()))
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise GenzooError(f"{root}: cannot read the archive ({reason(e)})") from None
    if not files:
        raise GenzooError(f"{root}: holds no poet.tang.N.json file")
    poems = []
    for _, source, data in sorted(files):
        text = "\n".join(text_lines(data, source))
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise GenzooError(f"{source}:{e.lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(doc, list):
            raise GenzooError(f"{source}: expected a JSON list of poems")
        for i, poem in enumerate(doc):
            lines = poem.get("paragraphs") if isinstance(poem, dict) else None
            if not isinstance(lines, list) or not all(isinstance(s, str) for s in lines):
                raise GenzooError(f"{source}: poem {i} has no list of strings under 'paragraphs'")
            if "".join(lines).strip():
                poems.append(lines)
    return poems


# -- text in and out of token rows (the CLI's --prefix, --between and text samples) ------------------
def rows_to_text(info: ImageInfo, rows: torch.Tensor) -> list[str]:
    """Token rows (N, 1, 1, L) -> one string each: up to ``<eos>``, ``<pad>`` dropped."""
    vocab = info.vocabulary
    return [vocab.decode(r.flatten().tolist()) for r in rows]


def text_to_row(info: ImageInfo, text: str, *, sentence: bool, what: str = "text") -> tuple[torch.Tensor, list[str]]:
    """``text`` as a token row (1, 1, 1, L) long: a whole ``sentence`` (with ``<eos>``) or a prefix
    (no ``<eos>``: the tokens to continue). Returns the row and the tokens read as ``<unk>``."""
    vocab = info.vocabulary
    tokens = tokenize(text, info.tokens)
    if not tokens:
        raise GenzooError(f"{what} {text!r}: holds no token")
    ids = vocab.encode(tokens, eos=sentence)
    room = info.width - (0 if sentence else 1)  # a prefix leaves at least one token to draw
    if len(ids) > room:
        raise GenzooError(f"{what} {text[:40]!r}: {len(ids)} tokens; the run's rows hold {room}")
    row = torch.full((1, *info.shape), PAD_ID, dtype=torch.long)
    row[0, 0, 0, : len(ids)] = torch.tensor(ids)
    unknown = [t for t, i in zip(tokens, ids) if i == UNK_ID and t != UNK]
    return row, unknown
