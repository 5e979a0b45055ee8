"""The lecture's Pokémon creation set: 792 sprites, 20x20, 167 clustered colours.

Format (also accepted from a user's folder, ``pokemon:DIR``): ``pixel_color.txt`` holds one
image a line, H*W palette indices in raster order separated by spaces; ``colormap.txt`` holds
the R G B of palette index n on line n. The embedded copy ships gzip'd inside the package.
Split: test = rows whose 0-based index is a multiple of 10 (80 images), train = the other 712.
"""
from __future__ import annotations

import gzip
import math
from importlib import resources
from pathlib import Path

import torch

from genzoo.data.base import ImageDataset, ImageInfo, every_tenth_split, reject_options, storage_dtype
from genzoo.data.kinds import register_dataset
from genzoo.errors import GenzooError


def parse_colormap(text: str, source: str) -> tuple[tuple[int, int, int], ...]:
    palette = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            rgb = tuple(int(p) for p in parts)
        except ValueError:
            raise GenzooError(f"{source}:{lineno}: expected three integers R G B, got {line.strip()!r}") from None
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise GenzooError(f"{source}:{lineno}: expected three integers 0-255 (R G B), got {line.strip()!r}")
        palette.append(rgb)
    if not palette:
        raise GenzooError(f"{source}: empty colour map")
    return tuple(palette)


def parse_pixel_rows(text: str, source: str, num_colors: int) -> torch.Tensor:
    """Rows of palette indices -> (N, 1, S, S) tensor; every row must be a square image."""
    rows, width = [], None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            vals = [int(v) for v in line.split()]
        except ValueError:
            bad = next(v for v in line.split() if not v.lstrip("-").isdigit())
            raise GenzooError(f"{source}:{lineno}: {bad!r} is not a palette index") from None
        if width is None:
            width = len(vals)
            side = math.isqrt(width)
            if side * side != width:
                raise GenzooError(f"{source}:{lineno}: {width} values is not a square image")
        elif len(vals) != width:
            raise GenzooError(f"{source}:{lineno}: {len(vals)} values, expected {width} like line 1")
        bad = [v for v in vals if not 0 <= v < num_colors]
        if bad:
            raise GenzooError(
                f"{source}:{lineno}: palette index {bad[0]} out of range 0-{num_colors - 1} "
                f"({num_colors} colours in the colour map)"
            )
        rows.append(vals)
    if not rows:
        raise GenzooError(f"{source}: no images")
    side = math.isqrt(width)
    x = torch.tensor(rows, dtype=storage_dtype(num_colors))
    return x.view(len(rows), 1, side, side)


def _read(path: Path) -> str:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt") as f:
                return f.read()
        return path.read_text()
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise GenzooError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None


@register_dataset(
    "pokemon",
    "pokemon[:DIR]",
    "the lecture's 792 Pokémon sprites, 20x20, 167 colours (embedded); or DIR with pixel_color.txt + colormap.txt",
    needs_path=False,
)
def load_pokemon(spec: str, path: str | None, **options) -> ImageDataset:
    reject_options(spec, options)
    if path is None:
        root = resources.files("genzoo.data") / "embedded"
        pixels_path = Path(str(root / "pokemon_pixel_color.txt.gz"))
        cmap_path = Path(str(root / "pokemon_colormap.txt"))
    else:
        d = Path(path)
        if not d.is_dir():
            raise GenzooError(f"{d}: not a folder (expected pixel_color.txt and colormap.txt inside)")
        pixels_path = next((d / n for n in ("pixel_color.txt", "pixel_color.txt.gz") if (d / n).exists()), d / "pixel_color.txt")
        cmap_path = d / "colormap.txt"
        for p in (pixels_path, cmap_path):
            if not p.exists():
                raise GenzooError(f"{p}: file not found")
    palette = parse_colormap(_read(cmap_path), str(cmap_path))
    x = parse_pixel_rows(_read(pixels_path), str(pixels_path), len(palette))
    info = ImageInfo(channels=1, height=x.shape[2], width=x.shape[3], num_values=len(palette), palette=palette)
    return ImageDataset(spec=spec, x=x, info=info, splits=every_tenth_split(len(x)))
