"""``captions:PATH``: a folder of images with one or more captions each, for text-conditioned models.

The folder holds the images and ``captions.txt``, UTF-8, one caption a line::

    train/00017.png<TAB>a dark coat
    train/00017.png<TAB>a large dark coat
    test/00003.png<TAB>this sandal is light and small

``FILE`` is a path relative to PATH (no ``..``, not absolute); an image named on several lines has
several captions, and images not named in the file are not part of the data set. Blank lines are
skipped; any other line without a tab, with an empty caption, with more than ``max_len`` tokens or
naming a missing image is refused with one line naming ``captions.txt`` and the line number.

Images are read by :func:`genzoo.data.images.read_image` (RGB squares of ``size``; default: the
first image's side when it is square, else 32) and kept at their 256 levels per channel; when every
image is grey (R = G = B everywhere) they are stored with one channel. Splits: when every FILE starts
with ``train/``, ``valid/`` or ``test/`` (``train/`` among them) those folders are the splits, else
the every-tenth split of :func:`genzoo.data.base.every_tenth_split` over the images in file order.

Captions are lower-cased and cut into words and punctuation marks (:func:`caption_tokens`); the
vocabulary (:class:`genzoo.data.tokens.Vocabulary`, word tokens, at most ``vocab`` entries, the rarer
words read as ``<unk>``) is built from the train split's captions and travels with the images as
``info.vocab``, so a model trained on them rebuilds it from its run alone. A batch carries, beside the
images ``x``, ``tokens`` (B, L): one caption of each image, drawn with the global random generator
(which the trainer seeds and checkpoints), padded with ``<pad>`` (id 0) after its last word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from PIL import Image

from genzoo.data.base import (
    ImageDataset,
    ImageInfo,
    check_memory,
    decode_text,
    int_option,
    read_data_file,
    size_option,
    split_every_tenth,
)
from genzoo.data.images import read_image
from genzoo.data.kinds import register_dataset
from genzoo.data.tokens import MAX_VOCAB, PAD_ID, UNK_ID, Vocabulary
from genzoo.errors import GenzooError

CAPTIONS_FILE = "captions.txt"
DEFAULT_SIZE = 32  # when the first image is not square
MAX_CAPTION_TOKENS = 64  # default ``max_len``
SPLIT_FOLDERS = ("train", "valid", "test")
_TOKEN = re.compile(r"[^\W_]+(?:['-][^\W_]+)*|[^\w\s]|_")  # words (t-shirt, don't) and single marks


def caption_tokens(text: str) -> list[str]:
    """A caption as tokens: lower-cased words (inner ``-`` and ``'`` kept) and punctuation marks."""
    return _TOKEN.findall(text.lower())


def caption_vocabulary(info: ImageInfo) -> Vocabulary:
    """The vocabulary of captioned data (``info.vocab``), refused by name when the data has none."""
    if not info.vocab:
        raise GenzooError("the data has no captions (info.vocab is empty); use captions:PATH data")
    return Vocabulary(tuple(info.vocab), "word")


def encode_captions(texts: list[str], vocab: Vocabulary, max_len: int = MAX_CAPTION_TOKENS):
    """Captions -> (tokens (n, L) long, padded with ``<pad>``; the words read as ``<unk>``, in order).

    An empty caption (no token at all) or one longer than ``max_len`` tokens is a one-line error."""
    rows, unknown = [], []
    for text in texts:
        words = caption_tokens(text)
        if not words:
            raise GenzooError(f"caption {text!r}: empty (no words)")
        if len(words) > max_len:
            raise GenzooError(f"caption {text[:40]!r}...: {len(words)} tokens, more than {max_len}")
        ids = vocab.encode(words)
        unknown += [w for w, i in zip(words, ids) if i == UNK_ID and w not in unknown]
        rows.append(ids)
    return pad_tokens(rows), unknown


def pad_tokens(rows: list[list[int]]) -> torch.Tensor:
    """Token id lists -> (n, max length) long, ``<pad>`` after each row's end."""
    out = torch.full((len(rows), max(len(r) for r in rows)), PAD_ID, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


@dataclass
class CaptionedDataset(ImageDataset):
    """Images plus captions: ``captions`` (M, L) token ids and ``caption_image`` (M,) the image of each."""

    captions: torch.Tensor | None = None
    caption_image: torch.Tensor | None = None

    def check(self) -> None:
        super().check()
        spec, caps, owner = self.spec, self.captions, self.caption_image
        if caps is None or owner is None:
            raise GenzooError(f"{spec}: captioned data needs captions and the image of each")
        if caps.dim() != 2 or caps.is_floating_point() or owner.shape != (len(caps),):
            raise GenzooError(f"{spec}: captions must be (M, L) token ids with one image index each")
        if len(caps) and (int(caps.min()) < 0 or int(caps.max()) >= len(self.info.vocab)):
            raise GenzooError(f"{spec}: a caption holds a token id outside the vocabulary")
        counts = torch.bincount(owner.long(), minlength=len(self.x))
        if len(counts) != len(self.x) or bool((counts == 0).any()):
            raise GenzooError(f"{spec}: every image needs at least one caption")
        order = torch.argsort(owner.long(), stable=True)
        self._by_image = order  # caption indices grouped by image
        self._counts = counts
        self._starts = torch.cumsum(counts, 0) - counts

    def batch(self, split, positions):
        """The image batch plus ``tokens`` (B, L): one of each image's captions, drawn at random."""
        out = super().batch(split, positions)
        idx = self.indices(split)[torch.as_tensor(positions, dtype=torch.long)]
        pick = torch.randint(0, 1 << 62, (len(idx),)) % self._counts[idx]  # the global RNG
        assert self.captions is not None  # check() refuses captioned data without captions
        out["tokens"] = self.captions[self._by_image[self._starts[idx] + pick]].long()
        return out

    def captions_of(self, split: str, position: int) -> list[str]:
        """Every caption of one image, as text (tokens joined by spaces)."""
        image = int(self.indices(split)[position])
        vocab = caption_vocabulary(self.info)
        assert self.captions is not None and self.caption_image is not None
        rows = self.captions[self.caption_image == image]
        return [vocab.decode(r.tolist()) for r in rows]


@register_dataset(
    "captions",
    "captions:PATH",
    "images under PATH with captions.txt (FILE<TAB>caption a line, several captions per image allowed); "
    "--size (default: the images' own side); word vocabulary from the train captions",
)
def load_captions(
    spec: str,
    path: str,
    *,
    size: int | None = None,
    colors: int | None = None,
    vocab: int | None = None,
    max_len: int | None = None,
    **rest,
) -> CaptionedDataset:
    unknown = sorted(k for k, v in {**rest, "colors": colors}.items() if v is not None)
    if unknown:
        raise GenzooError(f"{spec}: options {unknown} do not apply; captions takes size, vocab, max_len")
    max_len = int_option(spec, "max_len", MAX_CAPTION_TOKENS if max_len is None else max_len, 1, 4096)
    if vocab is not None:
        vocab = int_option(spec, "vocab", vocab, 5, MAX_VOCAB)
    root = Path(path)
    if not root.is_dir():
        raise GenzooError(f"{root}: not a folder (captions:PATH needs a folder with {CAPTIONS_FILE})")
    source = root / CAPTIONS_FILE
    if not source.is_file():
        raise GenzooError(f"{source}: no such file (captions:PATH needs {CAPTIONS_FILE} in the folder)")
    files, texts = _read_captions(source, root, max_len)
    size = size_option(spec, size, _native_side(root / files[0][0]) if size is None else size)
    check_memory(root, len(files), size * size * 3, f"images of {size} x {size}")
    rgb = np.empty((len(files), size, size, 3), dtype=np.uint8)  # (N, S, S, 3)
    for i, (name, line) in enumerate(files):
        try:
            rgb[i] = read_image(root / name, size)
        except GenzooError as e:
            raise GenzooError(f"{source}:{line}: {e}") from None
    grey = bool((rgb[..., :1] == rgb).all())
    x = torch.from_numpy(rgb[..., :1] if grey else rgb).permute(0, 3, 1, 2).contiguous()  # (N, C, S, S) uint8
    splits = _splits(root, [name for name, _ in files])
    owner = torch.tensor([i for i, _ in texts], dtype=torch.long)  # (M,)
    words = [caption_tokens(t) for _, t in texts]
    train_images = set(splits["train"].tolist())
    train_words = [w for (i, _), w in zip(texts, words) if i in train_images]
    vocabulary = Vocabulary.build(train_words, "word", max_size=vocab)
    tokens = pad_tokens([vocabulary.encode(w) for w in words])  # (M, L)
    info = ImageInfo(channels=x.shape[1], height=size, width=size, num_values=256, vocab=vocabulary.tokens)
    meta: dict[str, Any] = {"files": [name for name, _ in files], "captions": len(texts), "options": {"size": size}}
    if vocab is not None:
        meta["options"]["vocab"] = vocab
    if max_len != MAX_CAPTION_TOKENS:
        meta["options"]["max_len"] = max_len
    return CaptionedDataset(spec=spec, x=x, info=info, splits=splits, meta=meta, captions=tokens, caption_image=owner)


def _read_captions(source: Path, root: Path, max_len: int) -> tuple[list[tuple[str, int]], list[tuple[int, str]]]:
    """captions.txt -> images in first-seen order (name, line) and captions (image index, text)."""
    text = decode_text(read_data_file(source), source)
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise GenzooError(f"{source}:{line}: holds a NUL byte (a binary file, not captions)")
    index: dict[str, int] = {}
    files: list[tuple[str, int]] = []
    captions: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        name, tab, caption = raw.partition("\t")
        where = f"{source}:{number}"
        if not tab:
            raise GenzooError(f"{where}: expected FILE<TAB>caption, found no tab")
        name, caption = name.strip(), caption.strip()
        if not name:
            raise GenzooError(f"{where}: no image file before the tab")
        n_tokens = len(caption_tokens(caption))
        if n_tokens == 0:
            raise GenzooError(f"{where}: empty caption for {name}")
        if n_tokens > max_len:
            raise GenzooError(f"{where}: caption of {n_tokens} tokens; the limit is {max_len} (max_len)")
        if name not in index:
            rel = PurePosixPath(name)
            if rel.is_absolute() or ".." in rel.parts or "\\" in name:
                raise GenzooError(f"{where}: image path {name!r} must be relative to the folder, without '..'")
            if not (root / rel).is_file():
                raise GenzooError(f"{where}: no image {name!r} in {root}")
            index[name] = len(files)
            files.append((name, number))
        captions.append((index[name], caption))
    if not files:
        raise GenzooError(f"{source}: no captions (expected FILE<TAB>caption lines)")
    return files, captions


def _native_side(first: Path) -> int:
    """The side of the first image when it is square (the default ``size``), else ``DEFAULT_SIZE``."""
    try:
        with Image.open(first) as im:
            w, h = im.size
    except (OSError, ValueError, SyntaxError, EOFError):  # read_image names the file and the fault just after
        return DEFAULT_SIZE
    return w if w == h and w >= 2 else DEFAULT_SIZE


def _splits(root: Path, names: list[str]) -> dict[str, torch.Tensor]:
    """train/valid/test folders when every image lies in one (train among them), else every tenth."""
    first = [PurePosixPath(n).parts[0] if len(PurePosixPath(n).parts) > 1 else "" for n in names]
    if "train" in first and all(f in SPLIT_FOLDERS for f in first):
        return {
            s: torch.tensor([i for i, f in enumerate(first) if f == s], dtype=torch.long)
            for s in SPLIT_FOLDERS
            if s in first
        }
    return split_every_tenth(root, len(names))
