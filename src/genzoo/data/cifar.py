"""``cifar10:PATH``: CIFAR-10 as RGB images with 256 levels per channel and its own train/test split.

PATH is a ``.tar.gz``/``.tar`` archive or a folder holding ``train/<class>/*.jpg`` and
``test/<class>/*.jpg`` (the layout of the JPEG copy in the shared data: 5,000 + 1,000 images a
class, re-encoded as JPEG quality 75 -- fine for GAN training and sample-quality metrics, not
for bits/dim comparisons with papers, which use the lossless originals). Members are read in
sorted path order, so every machine sees the same images in the same order; classes are the
sorted folder names. ``--size`` other than 32 resizes with ``Image.BOX``.
"""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genzoo.data.base import ImageDataset, ImageInfo
from genzoo.data.kinds import register_dataset
from genzoo.errors import GenzooError

EXTENSIONS = (".jpg", ".jpeg", ".png")
SPLITS = ("train", "test")


def _members(path: Path):
    """(split, class, name, bytes-reader) for every image, sorted by path."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in EXTENSIONS)
        for f in files:
            rel = f.relative_to(path).parts
            yield rel, (lambda f=f: f.read_bytes())
        return
    try:
        tar = tarfile.open(path)
    except (tarfile.TarError, OSError) as e:
        raise GenzooError(f"{path}: not a readable tar archive ({e})") from None
    with tar:  # read in archive order (a .tar.gz cannot seek cheaply), then sort by name
        found = [(Path(m.name).parts, tar.extractfile(m).read()) for m in tar
                 if m.isfile() and Path(m.name).suffix.lower() in EXTENSIONS]
    for parts, data in sorted(found, key=lambda item: item[0]):
        yield parts, (lambda data=data: data)


@register_dataset("cifar10", "cifar10:PATH", "CIFAR-10 train/test folders or their .tar.gz (RGB, 256 levels, "
                  "10 classes); --size resizes")
def load_cifar10(spec: str, path: str | None, *, size: int | None = None, colors: int | None = None,
                 palette=None, **rest) -> ImageDataset:
    if colors is not None or any(v is not None for v in rest.values()):
        raise GenzooError(f"{spec}: only --size applies (images keep 256 levels per channel)")
    p = Path(path)
    if not p.exists():
        raise GenzooError(f"{p}: no such file or folder")
    images: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    labels: dict[str, list[str]] = {s: [] for s in SPLITS}
    side = size or 32
    for parts, read in _members(p):
        parts = [q for q in parts if q not in (".", "")]
        if len(parts) < 3 or parts[-3] not in SPLITS:
            continue
        split, cls = parts[-3], parts[-2]
        try:
            img = Image.open(io.BytesIO(read())).convert("RGB")
        except OSError as e:
            raise GenzooError(f"{p}: {'/'.join(parts)} is not a readable image ({e})") from None
        if img.size != (side, side):
            img = img.resize((side, side), Image.BOX)
        images[split].append(np.asarray(img, dtype=np.uint8))
        labels[split].append(cls)
    if not images["train"] or not images["test"]:
        raise GenzooError(f"{p}: expected train/<class>/*.jpg and test/<class>/*.jpg images")
    classes = sorted(set(labels["train"]) | set(labels["test"]))
    index = {c: i for i, c in enumerate(classes)}
    x = np.stack(images["train"] + images["test"]).transpose(0, 3, 1, 2)  # (N, 3, H, W)
    y = torch.tensor([index[c] for c in labels["train"] + labels["test"]], dtype=torch.long)
    n_train = len(images["train"])
    splits = {"train": torch.arange(n_train), "test": torch.arange(n_train, len(x))}
    info = ImageInfo(channels=3, height=side, width=side, num_values=256, num_classes=len(classes),
                     class_names=tuple(classes))
    return ImageDataset(spec=spec, x=torch.from_numpy(np.ascontiguousarray(x)), info=info, splits=splits,
                        labels=y, meta={"source": str(p)})
