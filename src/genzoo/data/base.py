"""What every data set hands to models and the trainer.

A data set is a table of examples plus named splits. The trainer only asks for
``len(split)`` and ``batch(split, indices)``; a batch is a ``dict`` of tensors
(``x`` always; ``y`` for class labels; later families add keys such as a paired
target image or a token sequence) so new kinds of data need no trainer change.

Bad data is refused here, once, for every kind: an :class:`ImageDataset` checks its shape,
values, labels and splits when it is built, and the limits below (with the readers
:func:`read_data_file` and :func:`decode_text`) keep a hostile file from exhausting memory.
Every refusal is a one-line :class:`~genzoo.errors.GenzooError` naming the file (the spec).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from genzoo.data.tokens import Vocabulary
from genzoo.errors import GenzooError

# Limits on what a data file may ask for, checked before anything is allocated.
MAX_IMAGE_SIDE = 1024  # largest height or width of a stored image (``--size`` included)
MAX_SOURCE_PIXELS = 1 << 26  # largest image file decoded: 67,108,864 pixels (8192 x 8192), below Pillow's warning
MAX_DATA_BYTES = 8 << 30  # the decoded images of one data set in memory: 8 GiB
MAX_FILE_BYTES = 1 << 30  # one text or IDX file (after gunzip) or archive member read whole: 1 GiB
MAX_VALUES = 65536  # values a sub-pixel may take (palette colours or levels)
MAX_CHANNELS = 4096  # channels of one image (continuous data stores points as (N, D, 1, 1))
MIN_SIZE = 2  # smallest ``--size``


@dataclass(frozen=True)
class ImageInfo:
    """The shape of discrete images: what a model must know to be built for the data.

    Every sub-pixel takes one of ``num_values`` values (palette indices, 0/1, or 0..255).
    ``palette`` (``num_values`` RGB triples) is set when values are colour indices.
    ``num_values == 0`` marks continuous data (float values, e.g. the 2-D toy mixtures of
    :mod:`genzoo.data.toy`, stored as (N, 2, 1, 1)); only continuous-output models take it.
    ``vocab`` lists the word tokens of the images' captions by id (``captions`` data,
    :mod:`genzoo.data.captions`): a text-conditioned model's embedding table is this tall.
    ``tokens`` (``char`` or ``word``, the tokeniser of :mod:`genzoo.data.tokens`) marks token
    sequences (``text:``, ``tang:``, ``ptb:`` data): each example is a (1, 1, max_len) "image"
    whose values are ids into ``vocab`` (``num_values == len(vocab)``, the four special tokens
    first), ``<eos>`` ends a sentence and ``<pad>`` fills the rest; empty for images.
    """

    channels: int
    height: int
    width: int
    num_values: int
    palette: tuple[tuple[int, int, int], ...] | None = None
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    vocab: tuple[str, ...] = ()
    tokens: str = ""

    @property
    def is_text(self) -> bool:
        """Token sequences (values are ids into ``vocab``), not images."""
        return bool(self.tokens)

    @property
    def vocabulary(self) -> Vocabulary:
        """The :class:`~genzoo.data.tokens.Vocabulary` of token data (encode/decode text)."""
        if not self.tokens:
            raise GenzooError("these data are images, not token sequences: they have no vocabulary")
        return Vocabulary(self.vocab, self.tokens)

    @property
    def dims(self) -> int:
        """Number of sub-pixels: the ``D`` of bits per dimension."""
        return self.channels * self.height * self.width

    @property
    def continuous(self) -> bool:
        return self.num_values == 0

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["palette"] = [list(c) for c in self.palette] if self.palette is not None else None
        d["class_names"] = list(self.class_names)
        d["vocab"] = list(self.vocab)
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "image info") -> ImageInfo:
        """The inverse of :meth:`to_dict`, every key and value checked (see :meth:`check`)."""
        if not isinstance(d, dict):
            raise GenzooError(f"{source}: image info must be a mapping, got {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise GenzooError(f"{source}: unknown image info key {unknown[0]!r}; valid: {', '.join(names)}")
        missing = [k for k in ("channels", "height", "width", "num_values") if k not in d]
        if missing:
            raise GenzooError(f"{source}: image info lacks the key {missing[0]!r}")
        d = dict(d)
        palette, names_ = d.get("palette"), d.get("class_names", ())
        if palette is not None:
            if not isinstance(palette, (list, tuple)) or not all(isinstance(c, (list, tuple)) for c in palette):
                raise GenzooError(f"{source}: image info palette must be a list of [R, G, B], got {palette!r:.60}")
            d["palette"] = tuple(tuple(c) for c in palette)
        if not isinstance(names_, (list, tuple)):
            raise GenzooError(f"{source}: image info class_names must be a list, got {names_!r:.60}")
        d["class_names"] = tuple(names_)
        vocab = d.get("vocab", ())
        if not isinstance(vocab, (list, tuple)):
            raise GenzooError(f"{source}: image info vocab must be a list of tokens, got {vocab!r:.60}")
        d["vocab"] = tuple(vocab)
        info = cls(**d)
        info.check(source)
        return info

    def check(self, source: str) -> None:
        """Refuse impossible or oversized values, naming ``source`` and the key."""
        for key, lo, hi in (
            ("channels", 1, MAX_CHANNELS),
            ("height", 1, MAX_IMAGE_SIDE),
            ("width", 1, MAX_IMAGE_SIDE),
            ("num_values", 0, MAX_VALUES),
            ("num_classes", 0, MAX_VALUES),
        ):
            value = getattr(self, key)
            if not _is_int(value) or not lo <= value <= hi:
                raise GenzooError(f"{source}: image info {key}={value!r} is not an integer {lo}-{hi}")
        if self.palette is not None:
            if len(self.palette) != self.num_values:
                raise GenzooError(
                    f"{source}: image info palette has {len(self.palette)} colours but num_values={self.num_values}"
                )
            for i, c in enumerate(self.palette):
                if len(c) != 3 or not all(_is_int(v) and 0 <= v <= 255 for v in c):
                    raise GenzooError(f"{source}: image info palette entry {i} is {c!r}; expected three integers 0-255")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise GenzooError(
                f"{source}: image info names {len(self.class_names)} classes but num_classes={self.num_classes}"
            )
        if not all(isinstance(n, str) for n in self.class_names):
            raise GenzooError(f"{source}: image info class_names must be strings")
        if not all(isinstance(t, str) and t for t in self.vocab) or len(set(self.vocab)) != len(self.vocab):
            raise GenzooError(f"{source}: image info vocab must be distinct non-empty strings")
        if self.tokens:  # token sequences: one row of ids into a valid vocabulary
            if (self.channels, self.height) != (1, 1) or self.num_values != len(self.vocab):
                raise GenzooError(
                    f"{source}: token data must have shape (1, 1, max_len) and num_values = len(vocab) "
                    f"({len(self.vocab)}), got {self.shape} with {self.num_values}"
                )
            try:
                Vocabulary(self.vocab, self.tokens)
            except GenzooError as e:
                raise GenzooError(f"{source}: image info tokens/vocab: {e}") from None

    def to_rgb(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Discrete images ``(N, C, H, W)`` -> ``uint8`` RGB ``(N, H, W, 3)`` for display."""
        if self.continuous:
            raise GenzooError("continuous data has no image form; draw it with genzoo.viz.scatter")
        x = torch.as_tensor(x).detach().cpu().long()
        if self.palette is not None:
            pal = torch.tensor(self.palette, dtype=torch.uint8)  # (K, 3)
            return pal[x[:, 0]].numpy()  # (N, H, W, 3)
        scale = 255.0 / max(self.num_values - 1, 1)
        img = (x.float() * scale).round().clamp(0, 255).to(torch.uint8)  # (N, C, H, W)
        if self.channels == 1:
            img = img.expand(-1, 3, -1, -1)
        return img.permute(0, 2, 3, 1).contiguous().numpy()


def storage_dtype(num_values: int) -> torch.dtype:
    """Smallest integer dtype for the values (MNIST-sized sets stay small in RAM)."""
    if num_values == 0:
        return torch.float32
    return torch.uint8 if num_values <= 256 else torch.int32


@dataclass
class ImageDataset:
    """Discrete images ``x`` (N, C, H, W), optional labels, and named index splits."""

    spec: str
    x: torch.Tensor
    info: ImageInfo
    splits: dict[str, torch.Tensor]
    labels: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)
    # (N,) bool: which labels are visible (None: all); set by --labels-per-class (genzoo.data.labels)
    labelled: torch.Tensor | None = None

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Every loader's output meets the same contract, so a new kind of data inherits the checks:
        the shape agrees with ``info``, values lie in ``0..num_values-1`` (finite floats for continuous
        data), labels are one class index per image, and every split is a non-empty set of images."""
        spec, info, x = self.spec, self.info, self.x
        info.check(spec)
        if x.ndim != 4 or tuple(x.shape[1:]) != info.shape:
            raise GenzooError(f"{spec}: images have shape {tuple(x.shape)}, expected (N, *{info.shape})")
        n = len(x)
        if n == 0:
            raise GenzooError(f"{spec}: no images")
        if info.continuous:
            if not x.is_floating_point() or not bool(torch.isfinite(x).all()):
                raise GenzooError(f"{spec}: continuous data must be finite floating-point values")
        else:
            if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
                raise GenzooError(f"{spec}: discrete images must be stored as integers, not {x.dtype}")
            if not (x.dtype == torch.uint8 and info.num_values >= 256):  # uint8 can hold nothing out of range
                lo, hi = int(x.min()), int(x.max())
                if lo < 0 or hi >= info.num_values:
                    bad = lo if lo < 0 else hi
                    where = int((x.flatten(1) == bad).any(1).nonzero()[0])
                    raise GenzooError(f"{spec}: image {where} holds the value {bad}, outside 0-{info.num_values - 1}")
        if self.labels is not None:
            y = self.labels
            if y.ndim != 1 or len(y) != n or y.is_floating_point() or y.dtype == torch.bool:
                raise GenzooError(
                    f"{spec}: labels must be {n} integers (one per image), got {tuple(y.shape)} {y.dtype}"
                )
            if int(y.min()) < 0 or (info.num_classes and int(y.max()) >= info.num_classes):
                bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
                where = int((y == bad).nonzero()[0])
                top = max(info.num_classes - 1, 0)
                raise GenzooError(f"{spec}: image {where} has the label {bad}, outside 0-{top}")
        if self.labelled is not None and (
            self.labels is None or self.labelled.dtype != torch.bool or tuple(self.labelled.shape) != (n,)
        ):
            raise GenzooError(f"{spec}: the labelled mask must be {n} booleans beside the labels")
        if not self.splits:
            raise GenzooError(f"{spec}: no splits")
        for name, idx in self.splits.items():
            if idx.ndim != 1 or idx.is_floating_point():
                raise GenzooError(f"{spec}: split {name!r} must be a list of image indices")
            if len(idx) == 0:
                raise GenzooError(f"{spec}: split {name!r} is empty ({n} image{'s' if n != 1 else ''} in all)")
            if int(idx.min()) < 0 or int(idx.max()) >= n:
                raise GenzooError(f"{spec}: split {name!r} indexes outside the {n} images")

    def split_names(self) -> list[str]:
        return list(self.splits)

    def indices(self, split: str) -> torch.Tensor:
        if split not in self.splits:
            valid = ", ".join(self.splits)
            raise GenzooError(f"{self.spec}: unknown split {split!r}; valid: {valid}")
        return self.splits[split]

    def size(self, split: str) -> int:
        return len(self.indices(split))

    def batch(self, split: str, positions: torch.Tensor | list[int]) -> dict[str, torch.Tensor]:
        """Examples at ``positions`` within ``split`` as a batch dict (``x`` long)."""
        idx = self.indices(split)[torch.as_tensor(positions, dtype=torch.long)]
        out = {"x": self._values(self.x[idx])}
        if self.labels is not None:
            out["y"] = self.labels[idx].long()
        if self.labelled is not None:  # partly labelled (genzoo.data.labels): hide, and bring companions
            out["labelled"] = self.labelled[idx]
            out["y"] = torch.where(out["labelled"], out["y"], -1)
            split_idx = self.indices(split)
            pool = split_idx[self.labelled[split_idx]]
            if len(pool):
                assert self.labels is not None  # __post_init__ refuses a labelled mask without labels
                pick = pool[torch.as_tensor(positions, dtype=torch.long) % len(pool)]
                out["x_labelled"], out["y_labelled"] = self._values(self.x[pick]), self.labels[pick].long()
        return out

    def images(self, split: str, positions=None) -> torch.Tensor:
        idx = self.indices(split)
        if positions is not None:
            idx = idx[torch.as_tensor(positions, dtype=torch.long)]
        return self._values(self.x[idx])

    def _values(self, x: torch.Tensor) -> torch.Tensor:
        """Stored values as models take them: long for discrete data, float32 for continuous."""
        return x.float() if self.info.continuous else x.long()


def every_tenth_split(n: int) -> dict[str, torch.Tensor]:
    """The fixed split used wherever a source has none: test = indices that are multiples of 10."""
    idx = torch.arange(n)
    test = idx % 10 == 0
    return {"train": idx[~test], "test": idx[test]}


def split_every_tenth(source: object, n: int) -> dict[str, torch.Tensor]:
    """:func:`every_tenth_split` of a source's ``n`` images, refused by name when it leaves no train image."""
    if n < 2:
        raise GenzooError(
            f"{source}: {n} image{'s' if n != 1 else ''}; at least 2 are needed (the test split takes every "
            "tenth image from the first, the train split the rest)"
        )
    return every_tenth_split(n)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def int_option(spec: str, name: str, value, lo: int, hi: int | None) -> int:
    """A loader option that must be an integer in ``lo..hi`` (``hi`` None: no upper bound)."""
    if not _is_int(value):
        raise GenzooError(f"{spec}: option {name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"{lo}-{hi}" if hi is not None else f">= {lo}"
        raise GenzooError(f"{spec}: option {name}={value} out of range ({bound})")
    return int(value)


def size_option(spec: str, size, default: int) -> int:
    """``--size``: the side of the stored square images, ``MIN_SIZE..MAX_IMAGE_SIDE``."""
    return int_option(spec, "size", default if size is None else size, MIN_SIZE, MAX_IMAGE_SIDE)


def check_memory(source: object, n: int, item_bytes: int, what: str) -> None:
    """Refuse, before allocating, ``n`` items of ``item_bytes`` that would pass ``MAX_DATA_BYTES``."""
    total = n * item_bytes
    if total > MAX_DATA_BYTES:
        raise GenzooError(
            f"{source}: {n:,} {what} need {_gib(total)} in memory; the limit is {_gib(MAX_DATA_BYTES)} (MAX_DATA_BYTES)"
        )


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.3g} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.3g} MiB"


def reason(e: BaseException) -> str:
    """An exception as ``Type: message`` on one line (library messages can span several)."""
    return " ".join(f"{e.__class__.__name__}: {e}".split())


@contextmanager
def open_data_file(path: Path) -> Iterator[io.BufferedIOBase]:
    """``path`` as a binary stream, gunzipped when it starts with the gzip magic bytes; failures to
    read it (missing, unreadable, corrupt or cut gzip data) become one line naming the file."""
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            yield gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
    except (OSError, EOFError, zlib.error) as e:
        raise GenzooError(f"{path}: cannot read ({reason(e)})") from None


def read_data_file(path: Path) -> bytes:
    """A whole file (gunzipped if gzip'd), refused past ``MAX_FILE_BYTES``: a gzip bomb stops there."""
    with open_data_file(path) as f:
        data = f.read(MAX_FILE_BYTES + 1)  # one byte over the limit tells a file that is too large
    if len(data) > MAX_FILE_BYTES:
        raise GenzooError(f"{path}: larger than {_gib(MAX_FILE_BYTES)} (MAX_FILE_BYTES); refusing to read it whole")
    return data


def decode_text(data: bytes, path: object) -> str:
    """UTF-8 text (a byte-order mark is dropped); bytes that are not UTF-8 are named by line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise GenzooError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x})") from None


def parse_naturals(tokens: list[str], source: str, what: str) -> list[int]:
    """Tokens of ASCII digits -> ints; anything else (``-1``, ``--1``, ``1.5``, ``²``, ``١``) is refused
    by name (``int()`` alone would take ``+1``, ``1_0`` and non-ASCII digits)."""
    for t in tokens:
        if not (t.isascii() and t.isdigit()):
            raise GenzooError(f"{source}: {t!r} is not {what}")
    return [int(t) for t in tokens]


def reject_options(spec: str, options: dict, why: str = "the images are already discrete") -> None:
    """Loaders of already-discrete images take no --size/--colors: say so instead of ignoring them."""
    used = sorted(k for k, v in options.items() if v is not None)
    if used:
        raise GenzooError(f"{spec}: options {used} do not apply ({why})")


def position(t: int, info: ImageInfo) -> tuple[int, int, int]:
    """Raster index t -> (channel, row, column); channels are innermost (R, G, B of one pixel)."""
    pixel, c = divmod(t, info.channels)
    h, w = divmod(pixel, info.width)
    return c, h, w
