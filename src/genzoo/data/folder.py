"""``folder:PATH``: any folder of images, made square, small and palette-quantised.

Every image under PATH (recursively; .png .jpg .jpeg .gif .bmp .webp in any letter case;
names starting with "." are skipped, e.g. macOS ``._x.png`` files) is read in the order of its
relative path, so the data set and its ``every_tenth_split`` are the same on every machine.
Each image is made an RGB square of ``size`` x ``size`` by :func:`genzoo.data.images.read_image`
(first frame, transparency on white, centre crop, ``Image.BOX`` resize; files over
``MAX_SOURCE_PIXELS`` refused). ``size`` is at most ``MAX_IMAGE_SIDE`` and all the images
together at most ``MAX_DATA_BYTES``, both checked before any image is read.
Colours are then quantised to a palette: k-means (:func:`genzoo.data.palette.kmeans_palette`,
seed 0) fitted on the train split's pixels only, or the ``palette`` given, used as-is -- which
is how a saved run reloads exactly the data it was trained on.

Class labels: when no image lies directly in PATH and the images span at least two
first-level subfolders (``PATH/cat/...``, ``PATH/dog/...``), the first-level folder names,
sorted, are the classes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from genzoo.data.base import (
    MAX_VALUES,
    ImageDataset,
    ImageInfo,
    check_memory,
    every_tenth_split,
    int_option,
    size_option,
    storage_dtype,
)
from genzoo.data.images import read_image
from genzoo.data.kinds import register_dataset
from genzoo.data.palette import kmeans_palette, quantize
from genzoo.errors import GenzooError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")
DEFAULT_SIZE = 32
DEFAULT_COLORS = 64
MAX_COLORS = MAX_VALUES


@register_dataset(
    "folder",
    "folder:PATH",
    "images under PATH (png/jpg/gif/bmp/webp, recursive), squared to --size (32) and "
    "quantised to --colors (64) k-means colours; first-level subfolders become classes",
)
def load_folder(
    spec: str,
    path: str,
    *,
    size: int | None = None,
    colors: int | None = None,
    palette=None,
    **rest,
) -> ImageDataset:
    unknown = sorted(k for k, v in rest.items() if v is not None)
    if unknown:
        raise GenzooError(f"{spec}: unknown options {unknown}; folder takes size, colors, palette")
    size = size_option(spec, size, DEFAULT_SIZE)
    if colors is not None or palette is None:
        colors = int_option(spec, "colors", DEFAULT_COLORS if colors is None else colors, 2, MAX_COLORS)
    given = _check_palette(spec, palette) if palette is not None else None

    root = Path(path)
    if not root.is_dir():
        raise GenzooError(f"{root}: not a folder (folder:PATH needs a folder of images)")
    files = find_images(root)
    if not files:
        raise GenzooError(f"{root}: no images found (searched recursively for {', '.join(IMAGE_EXTENSIONS)})")

    if given is None:
        assert colors is not None  # set above whenever no palette is given
        num_values = colors
    else:
        num_values = len(given)
    index_bytes = 1 if num_values <= 256 else 4
    # per pixel while loading: the RGB stack, the train pixels the palette is fitted to, the indices
    check_memory(root, len(files), size * size * (3 + 3 + index_bytes), f"images of {size} x {size}")
    rgb = np.empty((len(files), size, size, 3), dtype=np.uint8)  # (N, S, S, 3), filled in place
    for i, f in enumerate(files):
        rgb[i] = read_image(root / f, size)
    splits = every_tenth_split(len(files))
    if given is None:
        if len(splits["train"]) == 0:
            raise GenzooError(
                f"{root}: only one image, so the train split (all but indices 0, 10, 20, ...) is empty "
                "and no palette can be fitted"
            )
        train_pixels = rgb[splits["train"].numpy()].reshape(-1, 3)
        pal = kmeans_palette(train_pixels, num_values, seed=0)  # (K, 3)
    else:
        pal = np.array(given, dtype=np.uint8).reshape(-1, 3)
    x = torch.from_numpy(quantize(rgb, pal)).to(storage_dtype(len(pal)))  # (N, S, S)
    x = x.unsqueeze(1)  # (N, 1, S, S)

    labels, class_names = _folder_labels(files)
    info = ImageInfo(
        channels=1,
        height=size,
        width=size,
        num_values=len(pal),
        palette=tuple((int(r), int(g), int(b)) for r, g, b in pal),
        num_classes=len(class_names),
        class_names=class_names,
    )
    colors = colors if colors is not None else len(pal)
    # "options" is what a run saves to load the same data again (with the palette added)
    meta = {"files": files, "size": size, "colors": colors, "options": {"size": size, "colors": colors}}
    return ImageDataset(spec=spec, x=x, info=info, splits=splits, labels=labels, meta=meta)


def find_images(root: Path) -> list[str]:
    """Relative POSIX paths of the image files under ``root``, sorted."""
    found = []

    def unreadable(e: OSError):  # os.walk would skip a folder it cannot list, and with it its images
        raise GenzooError(f"{e.filename}: cannot list the folder ({e.strerror})")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = Path(dirpath).relative_to(root)
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append((rel_dir / name).as_posix())
    return sorted(found)


def _folder_labels(files: list[str]) -> tuple[torch.Tensor | None, tuple[str, ...]]:
    firsts = [f.split("/", 1)[0] for f in files if "/" in f]
    if len(firsts) < len(files):  # an image at the top level: no class folders
        return None, ()
    names = tuple(sorted(set(firsts)))
    if len(names) < 2:
        return None, ()
    index = {n: i for i, n in enumerate(names)}
    return torch.tensor([index[f] for f in firsts], dtype=torch.long), names


def _check_palette(spec: str, palette) -> tuple[tuple[int, int, int], ...]:
    try:
        entries = list(palette)
    except TypeError:
        raise GenzooError(f"{spec}: option palette must be a list of [R, G, B] triples, got {palette!r}") from None
    if not entries:
        raise GenzooError(f"{spec}: option palette is empty")
    if len(entries) > MAX_COLORS:
        raise GenzooError(f"{spec}: option palette has {len(entries)} colours, at most {MAX_COLORS} allowed")
    out: list[tuple[int, int, int]] = []
    for i, c in enumerate(entries):
        try:
            rgb = tuple(c)
        except TypeError:
            rgb = ()
        ok = len(rgb) == 3 and all(
            not isinstance(v, bool) and isinstance(v, (int, np.integer)) and 0 <= v <= 255 for v in rgb
        )
        if not ok:
            raise GenzooError(f"{spec}: palette entry {i} is {c!r}; expected three integers 0-255 (R, G, B)")
        out.append((int(rgb[0]), int(rgb[1]), int(rgb[2])))
    return tuple(out)
