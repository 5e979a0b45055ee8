"""Pictures with Pillow: sample grids and the completion figure (original | masked | completions)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from genzoo.io import atomic_write

HIDDEN_RGB = (255, 0, 255)  # masked-out pixels: a colour no sprite palette is likely to hold


def upscale_for(height: int) -> int:
    """Nearest-neighbour zoom so a small sprite is large enough to look at (~80 px)."""
    return max(1, 80 // max(height, 1))


def grid(
    rgb: np.ndarray, ncols: int | None = None, pad: int = 2, scale: int | None = None, background=(255, 255, 255)
) -> Image.Image:
    """``rgb`` (N, H, W, 3) uint8 -> one image with the N tiles in rows."""
    n, h, w, _ = rgb.shape
    scale = scale or upscale_for(h)
    ncols = ncols or max(1, math.ceil(math.sqrt(n)))
    nrows = math.ceil(n / ncols)
    th, tw = h * scale, w * scale
    canvas = Image.new("RGB", (ncols * (tw + pad) + pad, nrows * (th + pad) + pad), background)
    for i in range(n):
        tile = Image.fromarray(rgb[i]).resize((tw, th), Image.Resampling.NEAREST)
        r, c = divmod(i, ncols)
        canvas.paste(tile, (pad + c * (tw + pad), pad + r * (th + pad)))
    return canvas


def scatter(
    points: np.ndarray,
    reference: np.ndarray | None = None,
    size: int = 360,
    span: float | None = None,
    centres: np.ndarray | None = None,
) -> Image.Image:
    """2-D points (N, 2) as a square picture: ``reference`` points light grey, ``centres`` as red
    crosses, the points in blue; the view is +-``span`` (default: fits every point)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if span is None:
        every = np.concatenate([pts] + ([np.asarray(reference).reshape(-1, 2)] if reference is not None else []))
        span = float(np.abs(every).max()) * 1.1 if len(every) else 1.0
    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)

    def px(p):
        return (p + span) / (2 * span) * (size - 1)

    for pts_, colour in (
        ((reference if reference is not None else np.zeros((0, 2))), (200, 200, 200)),
        (pts, (30, 80, 200)),
    ):
        for x, y in px(np.asarray(pts_).reshape(-1, 2)):
            draw.point((x, size - 1 - y), fill=colour)
    for x, y in px(np.asarray(centres if centres is not None else np.zeros((0, 2))).reshape(-1, 2)):
        y = size - 1 - y
        draw.line((x - 4, y, x + 4, y), fill=(220, 0, 0))
        draw.line((x, y - 4, x, y + 4), fill=(220, 0, 0))
    return img


def sample_picture(x, data) -> Image.Image:
    """Samples of a data set's kind: an image grid, or a scatter plot for 2-D points."""
    info = data.info
    if info.continuous:
        centres = data.meta.get("centres")
        return scatter(
            np.asarray(x.detach().cpu()).reshape(len(x), -1)[:, :2],
            centres=None if centres is None else np.asarray(centres),
        )
    return grid(info.to_rgb(x))


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


def labelled_grid(rgb: np.ndarray, ncols: int, caption: str) -> Image.Image:
    """A grid with one line of text above it (what the rows and columns mean)."""
    body = grid(rgb, ncols=ncols, pad=2)
    header = 16
    fig = Image.new("RGB", (max(body.width, 6 * len(caption) + 6), body.height + header), (255, 255, 255))
    fig.paste(body, (0, header))
    ImageDraw.Draw(fig).text((3, 2), caption, fill=(0, 0, 0))
    return fig


def mask_rgb(rgb: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Paint hidden pixels (``known`` False, (N,H,W) or (H,W)) in the hidden colour."""
    out = rgb.copy()
    out[~np.broadcast_to(known, rgb.shape[:3])] = HIDDEN_RGB
    return out
