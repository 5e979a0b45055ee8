"""The lecture's Pokémon creation set: 792 sprites, 20x20, 167 clustered colours.

Format (also accepted from a user's folder, ``pokemon:DIR``): ``pixel_color.txt`` holds one
image a line, H*W palette indices in raster order separated by spaces; ``colormap.txt`` holds
the R G B of palette index n on line n. The embedded copy ships gzip'd inside the package.
Split: test = rows whose 0-based index is a multiple of 10 (80 images), train = the other 712.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from genzoo.data.base import (
    MAX_IMAGE_SIDE,
    MAX_VALUES,
    ImageDataset,
    ImageInfo,
    decode_text,
    parse_naturals,
    read_data_file,
    reject_options,
    split_every_tenth,
    storage_dtype,
)
from genzoo.data.kinds import register_dataset
from genzoo.errors import GenzooError


def _lines(text: str):
    """(line number, tokens) of the non-blank lines; numbered by "\n" as editors count them."""
    for lineno, line in enumerate(text.split("\n"), 1):
        tokens = line.split()
        if tokens:
            yield lineno, tokens


def parse_colormap(text: str, source: str) -> tuple[tuple[int, int, int], ...]:
    palette: list[tuple[int, int, int]] = []
    for lineno, tokens in _lines(text):
        if lineno != len(palette) + 1:  # a skipped line would shift every later colour's index
            raise GenzooError(f"{source}:{len(palette) + 1}: blank line inside the colour map (line n is index n-1)")
        rgb = parse_naturals(tokens, f"{source}:{lineno}", "an integer 0-255 (R G B)")
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise GenzooError(f"{source}:{lineno}: expected three integers 0-255 (R G B), got {' '.join(tokens)!r:.80}")
        palette.append((rgb[0], rgb[1], rgb[2]))
        if len(palette) > MAX_VALUES:
            raise GenzooError(f"{source}:{lineno}: more than {MAX_VALUES} colours (MAX_VALUES)")
    if not palette:
        raise GenzooError(f"{source}: empty colour map")
    return tuple(palette)


def parse_pixel_rows(text: str, source: str, num_colors: int) -> torch.Tensor:
    """Rows of palette indices -> (N, 1, S, S) tensor; every row must be a square image."""
    rows, width = [], None
    dtype = np.uint8 if num_colors <= 256 else np.int32
    for lineno, tokens in _lines(text):
        where = f"{source}:{lineno}"
        if width is None:
            width = len(tokens)
            side = math.isqrt(width)
            if side * side != width:
                raise GenzooError(f"{where}: {width} values is not a square image")
            if side > MAX_IMAGE_SIDE:
                raise GenzooError(f"{where}: a {side} x {side} image; the limit is {MAX_IMAGE_SIDE} (MAX_IMAGE_SIDE)")
        elif len(tokens) != width:
            raise GenzooError(f"{where}: {len(tokens)} values, expected {width} like the first image")
        vals = parse_naturals(tokens, where, "a palette index")
        bad = next((v for v in vals if v >= num_colors), None)
        if bad is not None:
            raise GenzooError(
                f"{where}: palette index {bad} out of range 0-{num_colors - 1} ({num_colors} colours in the colour map)"
            )
        rows.append(np.array(vals, dtype=dtype))
    if width is None:  # no line, so no row
        raise GenzooError(f"{source}: no images")
    side = math.isqrt(width)
    x = torch.from_numpy(np.stack(rows)).to(storage_dtype(num_colors))
    return x.view(len(rows), 1, side, side)


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
        names = ("pixel_color.txt", "pixel_color.txt.gz")
        pixels_path = next((d / n for n in names if (d / n).exists()), d / names[0])
        cmap_path = d / "colormap.txt"
        for p in (pixels_path, cmap_path):
            if not p.exists():
                raise GenzooError(f"{p}: file not found")
    palette = parse_colormap(decode_text(read_data_file(cmap_path), cmap_path), str(cmap_path))
    x = parse_pixel_rows(decode_text(read_data_file(pixels_path), pixels_path), str(pixels_path), len(palette))
    info = ImageInfo(channels=1, height=x.shape[2], width=x.shape[3], num_values=len(palette), palette=palette)
    return ImageDataset(spec=spec, x=x, info=info, splits=split_every_tenth(pixels_path, len(x)))
