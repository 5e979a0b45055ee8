"""``cifar-patches:PATH``: grey natural-image patches cut from CIFAR-10, for sparse coding.

Olshausen & Field 1996 learned their dictionary from patches of natural images; this kind cuts them
from the CIFAR-10 JPEG set (PATH as for ``cifar10:PATH``: the ``.tar.gz`` or its folder). From each of
the first ``TRAIN_IMAGES`` training and ``TEST_IMAGES`` test images (in sorted path order) it cuts
``PER_IMAGE`` square patches of side ``--size`` (default 8, at most 32) at positions drawn from a
fixed-seed generator, after converting the image to grey (ITU-R BT.601 luma, rounded): 40,000 train
and 8,000 test patches, 256 levels, no labels. The same PATH and size always give the same patches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genzoo.data.base import ImageDataset, ImageInfo, int_option
from genzoo.data.cifar import SPLITS, _members
from genzoo.data.images import read_image
from genzoo.data.kinds import register_dataset
from genzoo.errors import GenzooError

CIFAR_SIDE = 32
DEFAULT_PATCH = 8
TRAIN_IMAGES, TEST_IMAGES, PER_IMAGE = 10_000, 2_000, 4
SEED = 1996
LUMA = np.array([0.299, 0.587, 0.114])


@register_dataset(
    "cifar-patches",
    "cifar-patches:PATH",
    "grey patches cut from CIFAR-10 (40,000 train, 8,000 test; 256 levels); --size is the patch side (default 8)",
)
def load_cifar_patches(
    spec: str, path: str, *, size: int | None = None, colors: int | None = None, palette=None, **rest
) -> ImageDataset:
    if colors is not None or palette is not None or any(v is not None for v in rest.values()):
        raise GenzooError(f"{spec}: only --size (the patch side) applies")
    side = int_option(spec, "size", DEFAULT_PATCH if size is None else size, 2, CIFAR_SIDE)
    p = Path(path)
    if not p.exists():
        raise GenzooError(f"{p}: no such file or folder")
    chosen: dict[str, list] = {s: [] for s in SPLITS}
    for parts, source in _members(p):
        parts = tuple(q for q in parts if q not in (".", ""))
        if len(parts) >= 3 and parts[-3] in SPLITS:
            chosen[parts[-3]].append((parts, source))
    wanted = {"train": TRAIN_IMAGES, "test": TEST_IMAGES}
    if not chosen["train"] or not chosen["test"]:
        raise GenzooError(f"{p}: expected train/<class>/*.jpg and test/<class>/*.jpg images")
    rng = np.random.default_rng(SEED)
    out, splits, start = [], {}, 0
    for split in SPLITS:
        # every class in turn (members are sorted by class, then name), so the patches span all ten
        members = chosen[split]
        by_class: dict[str, list] = {}
        for parts, source in members:
            by_class.setdefault(parts[-2], []).append((parts, source))
        rounds = max(len(v) for v in by_class.values())
        interleaved = [v[i] for i in range(rounds) for v in by_class.values() if i < len(v)][: wanted[split]]
        patches = np.empty((len(interleaved) * PER_IMAGE, side, side), dtype=np.uint8)
        for i, (parts, source) in enumerate(interleaved):
            name = source if isinstance(source, Path) else f"{p}: {'/'.join(parts)}"
            rgb = read_image(source, CIFAR_SIDE, name=name).astype(np.float64)  # (32, 32, 3)
            grey = np.clip(np.rint(rgb @ LUMA), 0, 255).astype(np.uint8)
            corners = rng.integers(0, CIFAR_SIDE - side + 1, size=(PER_IMAGE, 2))
            for j, (r, c) in enumerate(corners):
                patches[i * PER_IMAGE + j] = grey[r : r + side, c : c + side]
        out.append(patches)
        splits[split] = torch.arange(start, start + len(patches))
        start += len(patches)
    x = torch.from_numpy(np.concatenate(out)).unsqueeze(1)  # (N, 1, side, side)
    info = ImageInfo(channels=1, height=side, width=side, num_values=256)
    return ImageDataset(spec=spec, x=x, info=info, splits=splits, meta={"source": str(p)})
