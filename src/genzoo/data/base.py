"""What every data set hands to models and the trainer.

A data set is a table of examples plus named splits. The trainer only asks for
``len(split)`` and ``batch(split, indices)``; a batch is a ``dict`` of tensors
(``x`` always; ``y`` for class labels; later families add keys such as a paired
target image or a token sequence) so new kinds of data need no trainer change.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from genzoo.errors import GenzooError


@dataclass(frozen=True)
class ImageInfo:
    """The shape of discrete images: what a model must know to be built for the data.

    Every sub-pixel takes one of ``num_values`` values (palette indices, 0/1, or 0..255).
    ``palette`` (``num_values`` RGB triples) is set when values are colour indices.
    ``num_values == 0`` marks continuous data (float values, e.g. the 2-D toy mixtures of
    :mod:`genzoo.data.toy`, stored as (N, 2, 1, 1)); only continuous-output models take it.
    """

    channels: int
    height: int
    width: int
    num_values: int
    palette: tuple[tuple[int, int, int], ...] | None = None
    num_classes: int = 0
    class_names: tuple[str, ...] = ()

    @property
    def dims(self) -> int:
        """Number of sub-pixels: the ``D`` of bits per dimension."""
        return self.channels * self.height * self.width

    @property
    def continuous(self) -> bool:
        return self.num_values == 0

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["palette"] = [list(c) for c in self.palette] if self.palette is not None else None
        d["class_names"] = list(self.class_names)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ImageInfo":
        d = dict(d)
        if d.get("palette") is not None:
            d["palette"] = tuple(tuple(int(v) for v in c) for c in d["palette"])
        d["class_names"] = tuple(d.get("class_names", ()))
        return cls(**d)

    def to_rgb(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Discrete images ``(N, C, H, W)`` -> ``uint8`` RGB ``(N, H, W, 3)`` for display."""
        if self.continuous:
            raise GenzooError("continuous data has no image form; draw it with genzoo.viz.scatter")
        x = torch.as_tensor(x).detach().cpu().long()
        if self.palette is not None:
            pal = torch.tensor(self.palette, dtype=torch.uint8)  # (K, 3)
            return pal[x[:, 0]].numpy()  # (N, H, W, 3)
        scale = 255.0 / max(self.num_values - 1, 1)
        img = (x.float() * scale).round().clamp(0, 255).to(torch.uint8)  # (N, C, H, W)
        if self.channels == 1:
            img = img.expand(-1, 3, -1, -1)
        return img.permute(0, 2, 3, 1).contiguous().numpy()


def storage_dtype(num_values: int) -> torch.dtype:
    """Smallest integer dtype for the values (MNIST-sized sets stay small in RAM)."""
    if num_values == 0:
        return torch.float32
    return torch.uint8 if num_values <= 256 else torch.int32


@dataclass
class ImageDataset:
    """Discrete images ``x`` (N, C, H, W), optional labels, and named index splits."""

    spec: str
    x: torch.Tensor
    info: ImageInfo
    splits: dict[str, torch.Tensor]
    labels: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.x.ndim != 4 or tuple(self.x.shape[1:]) != self.info.shape:
            raise GenzooError(f"{self.spec}: images have shape {tuple(self.x.shape)}, expected (N, *{self.info.shape})")
        if len(self.x) == 0:
            raise GenzooError(f"{self.spec}: no images")

    def split_names(self) -> list[str]:
        return list(self.splits)

    def indices(self, split: str) -> torch.Tensor:
        if split not in self.splits:
            valid = ", ".join(self.splits)
            raise GenzooError(f"{self.spec}: unknown split {split!r}; valid: {valid}")
        return self.splits[split]

    def size(self, split: str) -> int:
        return len(self.indices(split))

    def batch(self, split: str, positions: torch.Tensor | list[int]) -> dict[str, torch.Tensor]:
        """Examples at ``positions`` within ``split`` as a batch dict (``x`` long)."""
        idx = self.indices(split)[torch.as_tensor(positions, dtype=torch.long)]
        out = {"x": self._values(self.x[idx])}
        if self.labels is not None:
            out["y"] = self.labels[idx].long()
        return out

    def images(self, split: str, positions=None) -> torch.Tensor:
        idx = self.indices(split)
        if positions is not None:
            idx = idx[torch.as_tensor(positions, dtype=torch.long)]
        return self._values(self.x[idx])

    def _values(self, x: torch.Tensor) -> torch.Tensor:
        """Stored values as models take them: long for discrete data, float32 for continuous."""
        return x.float() if self.info.continuous else x.long()


def every_tenth_split(n: int) -> dict[str, torch.Tensor]:
    """The fixed split used wherever a source has none: test = indices that are multiples of 10."""
    idx = torch.arange(n)
    test = idx % 10 == 0
    return {"train": idx[~test], "test": idx[test]}


def reject_options(spec: str, options: dict) -> None:
    """Loaders of already-discrete images take no --size/--colors: say so instead of ignoring them."""
    used = sorted(k for k, v in options.items() if v is not None)
    if used:
        raise GenzooError(f"{spec}: options {used} do not apply (the images are already discrete)")


def position(t: int, info: ImageInfo) -> tuple[int, int, int]:
    """Raster index t -> (channel, row, column); channels are innermost (R, G, B of one pixel)."""
    pixel, c = divmod(t, info.channels)
    h, w = divmod(pixel, info.width)
    return c, h, w
