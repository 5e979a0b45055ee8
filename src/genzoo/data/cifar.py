"""``cifar10:PATH``: CIFAR-10 as RGB images with 256 levels per channel and its own train/test split.

PATH is a ``.tar.gz``/``.tar`` archive or a folder holding ``train/<class>/*.jpg`` and
``test/<class>/*.jpg`` (the layout of the JPEG copy in the shared data: 5,000 + 1,000 images a
class, re-encoded as JPEG quality 75 -- fine for GAN training and sample-quality metrics, not
for bits/dim comparisons with papers, which use the lossless originals). Members are read in
sorted path order, so every machine sees the same images in the same order; classes are the
sorted folder names; names starting with "." (macOS ``._x.jpg``) are skipped. Each image is made
a ``--size`` square (default 32, at most ``MAX_IMAGE_SIDE``) by
:func:`genzoo.data.images.read_image` (centre crop, ``Image.BOX`` resize when not already that
size; files over ``MAX_SOURCE_PIXELS`` refused). An archive member over ``MAX_FILE_BYTES``, members
over ``MAX_DATA_BYTES`` in all, or decoded images over ``MAX_DATA_BYTES`` are refused before reading.
"""

from __future__ import annotations

import lzma
import tarfile
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from genzoo.data.base import (
    MAX_DATA_BYTES,
    MAX_FILE_BYTES,
    ImageDataset,
    ImageInfo,
    check_memory,
    reason,
    size_option,
)
from genzoo.data.folder import find_images
from genzoo.data.images import read_image
from genzoo.data.kinds import register_dataset
from genzoo.errors import GenzooError

EXTENSIONS = (".jpg", ".jpeg", ".png")
SPLITS = ("train", "test")
DEFAULT_SIZE = 32
_ReadMode = Literal["r:", "r:gz", "r:bz2", "r:xz"]
_COMPRESSIONS: dict[_ReadMode, bytes] = {"r:gz": b"\x1f\x8b", "r:bz2": b"BZh", "r:xz": b"\xfd7zXZ\x00"}


def _members(path: Path) -> list[tuple[tuple[str, ...], Path | bytes]]:
    """(path parts, the file or its bytes) for every image, sorted by path."""
    if path.is_dir():
        files = [Path(f) for f in find_images(path) if Path(f).suffix.lower() in EXTENSIONS]
        return sorted(((f.parts, path / f) for f in files), key=lambda item: item[0])  # the archive's order
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
        # one compression chosen by its magic bytes: a broken archive then gives one reason, not one per method
        mode: _ReadMode = next((m for m, head in _COMPRESSIONS.items() if magic.startswith(head)), "r:")
        with tarfile.open(path, mode) as tar:  # read in archive order (a .tar.gz cannot seek cheaply), then sort
            found, total = [], 0
            for m in tar:
                parts = Path(m.name).parts
                if not (m.isfile() and parts and Path(m.name).suffix.lower() in EXTENSIONS) or parts[-1][0] == ".":
                    continue
                if m.size > MAX_FILE_BYTES:
                    raise GenzooError(
                        f"{path}: member {m.name} holds {m.size:,} bytes; the limit is "
                        f"{MAX_FILE_BYTES:,} (MAX_FILE_BYTES)"
                    )
                total += m.size
                if total > MAX_DATA_BYTES:
                    raise GenzooError(
                        f"{path}: the images in the archive pass {MAX_DATA_BYTES:,} bytes (MAX_DATA_BYTES)"
                    )
                stream = tar.extractfile(m)
                assert stream is not None  # a regular file (m.isfile() above) always has a stream
                found.append((parts, stream.read()))
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as e:
        raise GenzooError(f"{path}: not a readable tar archive ({reason(e)})") from None
    return sorted(found, key=lambda item: item[0])


@register_dataset(
    "cifar10",
    "cifar10:PATH",
    "CIFAR-10 train/test folders or their .tar.gz (RGB, 256 levels, 10 classes); --size resizes",
)
def load_cifar10(
    spec: str, path: str, *, size: int | None = None, colors: int | None = None, palette=None, **rest
) -> ImageDataset:
    if colors is not None or any(v is not None for v in rest.values()):
        raise GenzooError(f"{spec}: only --size applies (images keep 256 levels per channel)")
    side = size_option(spec, size, DEFAULT_SIZE)
    p = Path(path)
    if not p.exists():
        raise GenzooError(f"{p}: no such file or folder")
    chosen = []  # (split, class, name, source)
    for member_parts, source in _members(p):
        parts = [q for q in member_parts if q not in (".", "")]
        if len(parts) >= 3 and parts[-3] in SPLITS:
            chosen.append((parts[-3], parts[-2], "/".join(parts), source))
    by_split = {s: [c for c in chosen if c[0] == s] for s in SPLITS}
    if not by_split["train"] or not by_split["test"]:
        raise GenzooError(f"{p}: expected train/<class>/*.jpg and test/<class>/*.jpg images")
    ordered = by_split["train"] + by_split["test"]
    check_memory(p, len(ordered), side * side * 3, f"images of {side} x {side} x 3")
    x = np.empty((len(ordered), 3, side, side), dtype=np.uint8)  # (N, 3, H, W), filled in place
    for i, (_, _, name, source) in enumerate(ordered):
        rgb = read_image(source, side, name=source if isinstance(source, Path) else f"{p}: {name}")  # (H, W, 3)
        x[i] = rgb.transpose(2, 0, 1)
    classes = sorted({c[1] for c in ordered})
    index = {c: i for i, c in enumerate(classes)}
    y = torch.tensor([index[c[1]] for c in ordered], dtype=torch.long)
    n_train = len(by_split["train"])
    splits = {"train": torch.arange(n_train), "test": torch.arange(n_train, len(x))}
    info = ImageInfo(
        channels=3, height=side, width=side, num_values=256, num_classes=len(classes), class_names=tuple(classes)
    )
    return ImageDataset(spec=spec, x=torch.from_numpy(x), info=info, splits=splits, labels=y, meta={"source": str(p)})
