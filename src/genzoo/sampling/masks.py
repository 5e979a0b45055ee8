"""Masks for completion: True where a pixel is shown to the model, False where it must draw."""

from __future__ import annotations

import torch

from genzoo.errors import choices_error


def _bottom(frac_hidden: float):
    def fn(h: int, w: int) -> torch.Tensor:
        keep_rows = h - int(round(h * frac_hidden))
        m = torch.zeros(h, w, dtype=torch.bool)
        m[:keep_rows] = True
        return m

    return fn


def _right_half(h: int, w: int) -> torch.Tensor:
    m = torch.zeros(h, w, dtype=torch.bool)
    m[:, : w - w // 2] = True
    return m


MASKS = {
    "bottom-half": _bottom(0.5),
    "bottom-three-quarters": _bottom(0.75),
    "right-half": _right_half,
}


def make_mask(name: str, info) -> torch.Tensor:
    """Mask (C, H, W) for ``info``'s image shape; hidden region named by what is removed."""
    if name not in MASKS:
        raise choices_error("mask", name, MASKS)
    m = MASKS[name](info.height, info.width)  # (H, W)
    return m.unsqueeze(0).expand(info.channels, -1, -1).clone()
