"""MNIST-family files: ``binarized-mnist:PATH`` (.mat / .amat) and ``idx:PATH`` (IDX, gzip'd or not).

Binarized MNIST is the fixed binarisation of Larochelle & Murray (2011) used for the NLL tables
of the PixelRNN paper (arXiv:1601.06759, Table 4): 50,000 train / 10,000 valid / 10,000 test
images of 28x28 values in {0, 1}. The IDX format (LeCun et al.) holds MNIST and Fashion-MNIST:
a big-endian header ``0x00 0x00 type ndim`` then ``ndim`` uint32 sizes, then the raw values.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import scipy.io
import torch

from genzoo.data.base import (
    MAX_IMAGE_SIDE,
    ImageDataset,
    ImageInfo,
    check_memory,
    open_data_file,
    read_data_file,
    reason,
    reject_options,
    split_every_tenth,
)
from genzoo.data.kinds import register_dataset
from genzoo.errors import GenzooError

BINARIZED_SPLITS = ("train", "valid", "test")
_MAT_ERRORS = (OSError, ValueError, TypeError, IndexError, KeyError, EOFError, OverflowError, NotImplementedError,
               UnicodeDecodeError, struct.error, zlib.error, scipy.io.matlab.MatReadError)  # fmt: skip
MNIST_SIDE = 28
IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (N, H, W)
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (N,)
IDX_PREFIXES = {"train": "train", "test": "t10k"}
DIGIT_NAMES = tuple(str(d) for d in range(10))
FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def _split_files(p: Path, candidates: dict[str, list[str]], looked_for: str) -> dict[str, Path]:
    """PATH as {split: file}: for a folder, the first existing candidate name of each split (splits
    without one are left out); a single file is the split ``"all"``."""
    if p.is_dir():
        found: dict[str, Path] = {}
        for s, names in candidates.items():
            first = next((p / n for n in names if (p / n).is_file()), None)
            if first is not None:
                found[s] = first
        if not found:
            raise GenzooError(f"{p}: no {looked_for} in this folder")
        return found
    if p.is_file():
        return {"all": p}
    raise GenzooError(f"{p}: {'not a regular file or folder' if p.exists() else 'no such file or folder'}")


def _stack_splits(parts: dict[str, np.ndarray], files: dict[str, Path]) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    """Named arrays -> one array plus index ranges for each name, in the given order; a single
    file (``"all"``) is split every tenth image instead."""
    if list(parts) == ["all"]:
        return parts["all"], split_every_tenth(files["all"], len(parts["all"]))
    splits, start = {}, 0
    for name, a in parts.items():
        splits[name] = torch.arange(start, start + len(a))
        start += len(a)
    return np.concatenate(list(parts.values())), splits


# ---------------------------------------------------------------- binarized MNIST


@register_dataset(
    "binarized-mnist",
    "binarized-mnist:PATH",
    "fixed-binarization MNIST (Larochelle & Murray): a folder of binarized_mnist_{train,valid,test}.mat/.amat, "
    "or one such file",
)
def load_binarized_mnist(spec: str, path: str, **options) -> ImageDataset:
    reject_options(spec, options)
    # .mat first: same data as .amat, far quicker to read
    names = {split: [f"binarized_mnist_{split}{ext}" for ext in (".mat", ".amat")] for split in BINARIZED_SPLITS}
    files = _split_files(Path(path), names, "binarized_mnist_{train,valid,test}.mat or .amat files")
    rows, splits = _stack_splits({split: read_binarized(f) for split, f in files.items()}, files)
    x = torch.from_numpy(rows).view(-1, 1, MNIST_SIDE, MNIST_SIDE)
    info = ImageInfo(channels=1, height=MNIST_SIDE, width=MNIST_SIDE, num_values=2)
    return ImageDataset(spec=spec, x=x, info=info, splits=splits, meta={"files": [str(f) for f in files.values()]})


def read_binarized(path: Path) -> np.ndarray:
    """A .mat (key ``X``) or .amat (text) file -> (N, 784) uint8 of 0/1."""
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return _read_mat(path)
    if suffix == ".amat":
        return _read_amat(path)
    raise GenzooError(f"{path}: expected a .mat or .amat file")


def _read_mat(path: Path) -> np.ndarray:
    n_values = MNIST_SIDE * MNIST_SIDE
    try:
        # the header first: a shape that cannot be binarized MNIST, or too large, is refused unread
        shapes = {name: shape for name, shape, _ in scipy.io.whosmat(str(path))}
        if "X" in shapes:
            shape = shapes["X"]
            if len(shape) != 2 or shape[1] != n_values or shape[0] == 0:
                raise GenzooError(f"{path}: X has shape {tuple(shape)}, expected (N, {n_values})")
            check_memory(path, shape[0], n_values * 8, "rows of X (as read, up to 8 bytes a value)")
        data = scipy.io.loadmat(str(path), variable_names=["X"])
    except _MAT_ERRORS as e:
        raise GenzooError(f"{path}: cannot read .mat file ({reason(e)})") from None
    if "X" not in data:
        keys = ", ".join(sorted(shapes)) or "(none)"
        raise GenzooError(f"{path}: no key 'X' in the .mat file; keys found: {keys}")
    X = data["X"]
    if not isinstance(X, np.ndarray) or X.dtype.kind not in "biuf" or X.ndim != 2 or X.shape[1] != n_values:
        raise GenzooError(f"{path}: X is not an (N, {n_values}) numeric array")
    bad = (X != 0) & (X != 1)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise GenzooError(f"{path}: X[{row}, {col}] = {X[row, col].item()!r}; binarized MNIST values must be 0 or 1")
    return np.ascontiguousarray(X, dtype=np.uint8)  # MATLAB stores columns first


def _read_amat(path: Path) -> np.ndarray:
    """Text: one image a line, 784 space-separated 0/1 values; blank lines are skipped."""
    raw = read_data_file(path)
    n_values = MNIST_SIDE * MNIST_SIDE
    rows = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != n_values:
            raise GenzooError(f"{path}:{lineno}: {len(tokens)} values, expected {n_values} (28x28)")
        joined = b"".join(tokens)  # every token one character '0' or '1' on a good line
        if len(joined) != n_values or joined.strip(b"01"):
            bad = next(t for t in tokens if t not in (b"0", b"1"))
            raise GenzooError(f"{path}:{lineno}: value '{bad.decode('ascii', 'backslashreplace'):.40}' is not 0 or 1")
        rows.append(joined)
    if not rows:
        raise GenzooError(f"{path}: no images")
    return (np.frombuffer(b"".join(rows), dtype=np.uint8) - ord("0")).reshape(len(rows), n_values)


# ---------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)


@register_dataset(
    "idx",
    "idx:PATH",
    "MNIST / Fashion-MNIST IDX files (gzip'd or not): a folder with train-/t10k-images-idx3-ubyte[.gz] "
    "(+ labels), or one images file",
)
def load_idx(spec: str, path: str, **options) -> ImageDataset:
    reject_options(spec, options)
    p = Path(path)
    names = {split: _idx_names(prefix, "images", 3) for split, prefix in IDX_PREFIXES.items()}
    images = _split_files(p, names, "IDX image files (train-images-idx3-ubyte[.gz], t10k-images-idx3-ubyte[.gz])")
    label_files = {split: _sibling_labels(f) if split == "all" else _find_idx(p, IDX_PREFIXES[split], "labels", 1)
                   for split, f in images.items()}  # fmt: skip

    parts = {split: read_idx(f, IDX_IMAGES_MAGIC) for split, f in images.items()}
    shapes = {a.shape[1:] for a in parts.values()}
    if len(shapes) > 1:
        sizes = ", ".join(f"{images[s]} {a.shape[1:]}" for s, a in parts.items())
        raise GenzooError(f"{p}: image files differ in size: {sizes}")
    labels = None
    present = {split: f for split, f in label_files.items() if f is not None}
    if len(present) == len(label_files):  # labels only when every images file has its labels file
        lab = {}
        for split, f in present.items():
            lab[split] = read_idx(f, IDX_LABELS_MAGIC)
            if len(lab[split]) != len(parts[split]):
                n_lab, n_img = len(lab[split]), len(parts[split])
                raise GenzooError(f"{f}: {n_lab} labels, but {images[split]} holds {n_img} images")
        labels = torch.from_numpy(np.concatenate(list(lab.values())).astype(np.int64))
    x, splits = _stack_splits(parts, images)
    if len(parts) == 1:  # one images file in the folder: split it as a single file is
        splits = split_every_tenth(next(iter(images.values())), len(x))
    h, w = x.shape[1:]
    num_classes = 0
    class_names: tuple[str, ...] = ()
    if labels is not None:
        num_classes = max(10, int(labels.max()) + 1)
        if num_classes == 10:
            fashion = "fashion" in str(p).lower() or "fashion" in str(p.resolve()).lower()
            class_names = FASHION_NAMES if fashion else DIGIT_NAMES
    info = ImageInfo(channels=1, height=h, width=w, num_values=256, num_classes=num_classes, class_names=class_names)
    meta = {"files": [str(f) for f in images.values()] + [str(f) for f in label_files.values() if f]}
    return ImageDataset(
        spec=spec, x=torch.from_numpy(x).unsqueeze(1), info=info, splits=splits, labels=labels, meta=meta
    )


def _idx_names(prefix: str, kind: str, ndim: int) -> list[str]:
    """``{prefix}-{kind}-idx{ndim}-ubyte`` (or ``.idx{ndim}-ubyte``), uncompressed before ``.gz``."""
    return [f"{prefix}-{kind}{sep}idx{ndim}-ubyte{gz}" for sep in ("-", ".") for gz in ("", ".gz")]


def _find_idx(folder: Path, prefix: str, kind: str, ndim: int) -> Path | None:
    return next((folder / n for n in _idx_names(prefix, kind, ndim) if (folder / n).is_file()), None)


def _sibling_labels(images: Path) -> Path | None:
    name = images.name
    if name.endswith(".gz"):
        name = name[:-3]
    for tag in ("-images-idx3-ubyte", "-images.idx3-ubyte"):
        if name.endswith(tag):
            stem = name[: -len(tag)] + tag.replace("images", "labels").replace("idx3", "idx1")
            for gz in ("", ".gz"):
                if (images.parent / (stem + gz)).is_file():
                    return images.parent / (stem + gz)
    return None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (gzip detected by its magic bytes) -> uint8 array.

    The header is checked before the body is read: sizes of 0, images over ``MAX_IMAGE_SIDE``
    or more than ``MAX_DATA_BYTES`` are refused, and a body longer than the header says is too."""
    what = "images" if magic == IDX_IMAGES_MAGIC else "labels"
    ndim = magic & 0xFF
    with open_data_file(path) as f:
        head = f.read(4 + 4 * ndim)
        if len(head) < 4:
            raise GenzooError(f"{path}: truncated IDX file ({len(head)} bytes, no header)")
        found = int.from_bytes(head[:4], "big")
        if found != magic:
            raise GenzooError(f"{path}: wrong IDX magic 0x{found:08x}; expected 0x{magic:08x} ({what})")
        if len(head) < 4 + 4 * ndim:
            raise GenzooError(f"{path}: truncated IDX file ({len(head)} bytes, header needs {4 + 4 * ndim})")
        dims = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
        if 0 in dims:
            raise GenzooError(f"{path}: IDX header gives {what} of shape {dims}; no size may be 0")
        if ndim == 3 and max(dims[1:]) > MAX_IMAGE_SIDE:
            raise GenzooError(
                f"{path}: IDX header gives images of {dims[1]} x {dims[2]}; "
                f"the limit is {MAX_IMAGE_SIDE} (MAX_IMAGE_SIDE)"
            )
        item = int(np.prod(dims[1:], dtype=np.int64))
        check_memory(path, dims[0], item, f"{what} of {item} bytes")
        expected = dims[0] * item
        body = f.read(expected + 1)  # one byte more than the header says tells a file that is too long
    if len(body) != expected:
        held = f"{len(head) + len(body):,} bytes" if len(body) < expected else "more"
        raise GenzooError(
            f"{path}: {'truncated' if len(body) < expected else 'overlong'} IDX file: header says {what} "
            f"of shape {dims} ({len(head) + expected:,} bytes), the file holds {held}"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims).copy()
