"""Image files -> square RGB arrays, the one decoder every image loader (``folder``, ``cifar10``) uses.

An image is read with Pillow (first frame of an animation), any mode converted to RGB with
transparency composited on white, centre-cropped to a square and resized to ``size`` x ``size``
with ``Image.BOX`` (area averaging when shrinking, pixel repetition when enlarging: no ringing,
so no colours outside the source's range; an image already of that size is not resampled).

A file whose header declares more than ``MAX_SOURCE_PIXELS`` pixels (8192 x 8192) is refused
before its pixels are decoded, as is anything Pillow cannot read: one line naming the file.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from genzoo.data.base import MAX_SOURCE_PIXELS, reason
from genzoo.errors import GenzooError

_UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, TypeError, IndexError, KeyError, struct.error)


def read_image(source: Path | bytes, size: int, name: object = None) -> np.ndarray:
    """One image (a file, or its bytes named ``name``) -> (size, size, 3) uint8 RGB."""
    name = source if name is None else name
    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89.5 M pixels on: MAX_SOURCE_PIXELS, below that, is checked just after
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                w, h = im.size
                if w < 1 or h < 1:
                    raise GenzooError(f"{name}: image of {w} x {h} pixels")
                if w * h > MAX_SOURCE_PIXELS:
                    raise GenzooError(
                        f"{name}: image of {w} x {h} = {w * h:,} pixels; the limit is "
                        f"{MAX_SOURCE_PIXELS:,} (MAX_SOURCE_PIXELS)"
                    )
                im.seek(0)  # first frame of an animation
                im.load()
                img = _to_rgb(im)
    except UnidentifiedImageError:
        raise GenzooError(f"{name}: cannot read image (not a format Pillow recognises, or damaged)") from None
    except Image.DecompressionBombError as e:  # Pillow's refusal, from twice its limit on
        raise GenzooError(
            f"{name}: image over the limit of {MAX_SOURCE_PIXELS:,} pixels (MAX_SOURCE_PIXELS); {reason(e)}"
        ) from None
    except _UNREADABLE as e:
        raise GenzooError(f"{name}: cannot read image ({reason(e)})") from None
    w, h = img.size
    side = min(w, h)
    if (w, h) != (size, size):
        left, top = (w - side) // 2, (h - side) // 2
        img = img.resize((size, size), Image.Resampling.BOX, box=(left, top, left + side, top + side))
    return np.asarray(img, dtype=np.uint8)


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; alpha (RGBA, LA, PA, palette or colour-key transparency) over white."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit grey PNGs
        grey = np.asarray(im, dtype=np.float64) / 257.0
        im = Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), mode="L")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")
