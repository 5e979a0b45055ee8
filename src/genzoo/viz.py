"""Pictures with Pillow: sample grids and the completion figure (original | masked | completions)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from genzoo.training.checkpoint import atomic_write

HIDDEN_RGB = (255, 0, 255)  # masked-out pixels: a colour no sprite palette is likely to hold


def upscale_for(height: int) -> int:
    """Nearest-neighbour zoom so a small sprite is large enough to look at (~80 px)."""
    return max(1, 80 // max(height, 1))


def grid(rgb: np.ndarray, ncols: int | None = None, pad: int = 2, scale: int | None = None,
         background=(255, 255, 255)) -> Image.Image:
    """``rgb`` (N, H, W, 3) uint8 -> one image with the N tiles in rows."""
    n, h, w, _ = rgb.shape
    scale = scale or upscale_for(h)
    ncols = ncols or max(1, math.ceil(math.sqrt(n)))
    nrows = math.ceil(n / ncols)
    th, tw = h * scale, w * scale
    canvas = Image.new("RGB", (ncols * (tw + pad) + pad, nrows * (th + pad) + pad), background)
    for i in range(n):
        tile = Image.fromarray(rgb[i]).resize((tw, th), Image.NEAREST)
        r, c = divmod(i, ncols)
        canvas.paste(tile, (pad + c * (tw + pad), pad + r * (th + pad)))
    return canvas


def save_png(img: Image.Image, path: Path) -> None:
    """Write a PNG atomically (a crash never leaves half a picture under the final name)."""
    atomic_write(Path(path), lambda tmp: img.save(tmp, format="PNG"))


def completion_figure(original: np.ndarray, masked: np.ndarray, completions: np.ndarray) -> Image.Image:
    """Rows of [original | masked | completion 1..k]; inputs uint8 RGB: (N,H,W,3), (N,H,W,3), (N,k,H,W,3)."""
    n, k = completions.shape[:2]
    h = original.shape[1]
    tiles = np.concatenate([original[:, None], masked[:, None], completions], axis=1)  # (N, k+2, H, W, 3)
    body = grid(tiles.reshape(-1, *tiles.shape[2:]), ncols=k + 2, pad=3)
    header = 18
    fig = Image.new("RGB", (body.width, body.height + header), (255, 255, 255))
    fig.paste(body, (0, header))
    draw = ImageDraw.Draw(fig)
    tile_w = h * upscale_for(h) + 3
    labels = ["original", "shown"] + [f"sample {i + 1}" for i in range(k)]
    for i, lab in enumerate(labels):
        draw.text((3 + i * tile_w, 3), lab[: max(4, tile_w // 6)], fill=(0, 0, 0))
    return fig


def mask_rgb(rgb: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Paint hidden pixels (``known`` False, (N,H,W) or (H,W)) in the hidden colour."""
    out = rgb.copy()
    out[~np.broadcast_to(known, rgb.shape[:3])] = HIDDEN_RGB
    return out
