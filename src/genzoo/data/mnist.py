"""MNIST-family files: ``binarized-mnist:PATH`` (.mat / .amat) and ``idx:PATH`` (IDX, gzip'd or not).

Binarized MNIST is the fixed binarisation of Larochelle & Murray (2011) used for the NLL tables
of the PixelRNN paper (arXiv:1601.06759, Table 4): 50,000 train / 10,000 valid / 10,000 test
images of 28x28 values in {0, 1}. The IDX format (LeCun et al.) holds MNIST and Fashion-MNIST:
a big-endian header ``0x00 0x00 type ndim`` then ``ndim`` uint32 sizes, then the raw values.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import scipy.io
import torch

from genzoo.data.base import ImageDataset, ImageInfo, every_tenth_split, reject_options
from genzoo.data.kinds import register_dataset
from genzoo.errors import GenzooError

BINARIZED_SPLITS = ("train", "valid", "test")
MNIST_SIDE = 28
IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (N, H, W)
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (N,)
IDX_PREFIXES = {"train": "train", "test": "t10k"}
DIGIT_NAMES = tuple(str(d) for d in range(10))
FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip



def _stack_splits(parts: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    """Named arrays -> one array plus index ranges for each name, in the given order."""
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
def load_binarized_mnist(spec: str, path: str | None, **options) -> ImageDataset:
    reject_options(spec, options)
    p = Path(path)
    if p.is_dir():
        parts, files = {}, []
        for split in BINARIZED_SPLITS:
            # .mat first: same data as .amat, far quicker to read
            found = [p / f"binarized_mnist_{split}{ext}" for ext in (".mat", ".amat")]
            found = [f for f in found if f.is_file()]
            if found:
                parts[split] = read_binarized(found[0])
                files.append(str(found[0]))
        if not parts:
            raise GenzooError(f"{p}: no binarized_mnist_{{train,valid,test}}.mat or .amat files in this folder")
        rows, splits = _stack_splits(parts)
    elif p.is_file():
        rows = read_binarized(p)
        splits, files = every_tenth_split(len(rows)), [str(p)]
    else:
        raise GenzooError(f"{p}: no such file or folder")
    x = torch.from_numpy(rows).view(-1, 1, MNIST_SIDE, MNIST_SIDE)
    info = ImageInfo(channels=1, height=MNIST_SIDE, width=MNIST_SIDE, num_values=2)
    return ImageDataset(spec=spec, x=x, info=info, splits=splits, meta={"files": files})


def read_binarized(path: Path) -> np.ndarray:
    """A .mat (key ``X``) or .amat (text) file -> (N, 784) uint8 of 0/1."""
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return _read_mat(path)
    if suffix == ".amat":
        return _read_amat(path)
    raise GenzooError(f"{path}: expected a .mat or .amat file")


def _read_mat(path: Path) -> np.ndarray:
    try:
        data = scipy.io.loadmat(str(path))
    except (OSError, ValueError, TypeError, NotImplementedError, scipy.io.matlab.MatReadError) as e:
        reason = " ".join(f"{e.__class__.__name__}: {e}".split())
        raise GenzooError(f"{path}: cannot read .mat file ({reason})") from None
    if "X" not in data:
        keys = ", ".join(sorted(k for k in data if not k.startswith("__"))) or "(none)"
        raise GenzooError(f"{path}: no key 'X' in the .mat file; keys found: {keys}")
    X = np.asarray(data["X"])
    if X.ndim != 2 or X.shape[1] != MNIST_SIDE * MNIST_SIDE or len(X) == 0:
        raise GenzooError(f"{path}: X has shape {X.shape}, expected (N, {MNIST_SIDE * MNIST_SIDE})")
    bad = (X != 0) & (X != 1)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise GenzooError(f"{path}: X[{row}, {col}] = {X[row, col]!r}; binarized MNIST values must be 0 or 1")
    return X.astype(np.uint8)


def _read_amat(path: Path) -> np.ndarray:
    """Text: one image a line, 784 space-separated 0/1 values; blank lines are skipped."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise GenzooError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
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
            raise GenzooError(f"{path}:{lineno}: value {bad.decode(errors='replace')!r} is not 0 or 1")
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
def load_idx(spec: str, path: str | None, **options) -> ImageDataset:
    reject_options(spec, options)
    p = Path(path)
    if p.is_dir():
        images = {split: f for split, prefix in IDX_PREFIXES.items() if (f := _find_idx(p, prefix, "images", 3))}
        if not images:
            raise GenzooError(
                f"{p}: no IDX image files in this folder (looked for train-images-idx3-ubyte[.gz] "
                "and t10k-images-idx3-ubyte[.gz])"
            )
        label_files = {split: _find_idx(p, IDX_PREFIXES[split], "labels", 1) for split in images}
    elif p.is_file():
        images = {"all": p}
        label_files = {"all": _sibling_labels(p)}
    else:
        raise GenzooError(f"{p}: no such file or folder")

    parts = {split: read_idx(f, IDX_IMAGES_MAGIC) for split, f in images.items()}
    shapes = {a.shape[1:] for a in parts.values()}
    if len(shapes) > 1:
        sizes = ", ".join(f"{images[s]} {a.shape[1:]}" for s, a in parts.items())
        raise GenzooError(f"{p}: image files differ in size: {sizes}")
    labels = None
    if all(label_files.values()):  # labels only when every images file has its labels file
        lab = {}
        for split, f in label_files.items():
            lab[split] = read_idx(f, IDX_LABELS_MAGIC)
            if len(lab[split]) != len(parts[split]):
                n_lab, n_img = len(lab[split]), len(parts[split])
                raise GenzooError(f"{f}: {n_lab} labels, but {images[split]} holds {n_img} images")
        labels = torch.from_numpy(np.concatenate(list(lab.values())).astype(np.int64))
    x, splits = _stack_splits(parts)
    if len(parts) == 1:
        splits = every_tenth_split(len(x))
    h, w = x.shape[1:]
    num_classes, class_names = 0, ()
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


def _find_idx(folder: Path, prefix: str, kind: str, ndim: int) -> Path | None:
    """``{prefix}-{kind}-idx{ndim}-ubyte`` (or ``.idx{ndim}-ubyte``), uncompressed preferred over ``.gz``."""
    for sep in ("-", "."):
        for gz in ("", ".gz"):
            f = folder / f"{prefix}-{kind}{sep}idx{ndim}-ubyte{gz}"
            if f.is_file():
                return f
    return None


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
    """Parse an IDX file of unsigned bytes (gzip detected by its magic bytes) -> uint8 array."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        reason = " ".join(f"{e.__class__.__name__}: {e}".split())
        raise GenzooError(f"{path}: cannot read ({reason})") from None
    what = "images" if magic == IDX_IMAGES_MAGIC else "labels"
    if len(raw) < 4:
        raise GenzooError(f"{path}: truncated IDX file ({len(raw)} bytes, no header)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise GenzooError(f"{path}: wrong IDX magic 0x{found:08x}; expected 0x{magic:08x} ({what})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise GenzooError(f"{path}: truncated IDX file ({len(raw)} bytes, header needs {header})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "too long"
        raise GenzooError(
            f"{path}: {state} IDX file: header says {what} of shape {dims} ({expected} bytes), "
            f"file holds {len(raw)} bytes"
        )
    if dims[0] == 0:
        raise GenzooError(f"{path}: no {what}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()
