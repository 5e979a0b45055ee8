"""``olivetti:PATH``: the Olivetti faces (AT&T Laboratories Cambridge), 400 grey faces of 40 people.

Samaria & Harter 1994, "Parameterisation of a stochastic model for human face identification",
Proc. 2nd IEEE Workshop on Applications of Computer Vision (no arXiv). PATH is ``olivettifaces.mat``
(MATLAB v5, key ``faces``: uint8 (4096, 400), one 64 x 64 face a column in column-major order, ten
consecutive columns per person) or a folder holding it. Images are 64 x 64 x 1 with 256 levels and
the person (0-39) as the label; ``--size`` (a divisor of 64) shrinks them by averaging blocks.
The split is the fixed every-tenth one: the first face of each person is the test set (40), the
other nine the training set (360).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
import torch

from genzoo.data.base import ImageDataset, ImageInfo, every_tenth_split, reason, size_option
from genzoo.data.kinds import register_dataset
from genzoo.data.mnist import _MAT_ERRORS
from genzoo.errors import GenzooError

FILE = "olivettifaces.mat"
SIDE = 64
FACES = 400
PER_PERSON = 10


def read_faces(path: Path) -> np.ndarray:
    """The faces as uint8 (400, 64, 64), upright; the header is checked before the data are read."""
    try:
        shapes = {name: shape for name, shape, _ in scipy.io.whosmat(str(path))}
        if "faces" not in shapes:
            keys = ", ".join(sorted(shapes)) or "(none)"
            raise GenzooError(f"{path}: no key 'faces' in the .mat file; keys found: {keys}")
        if tuple(shapes["faces"]) != (SIDE * SIDE, FACES):
            raise GenzooError(f"{path}: faces has shape {tuple(shapes['faces'])}, expected ({SIDE * SIDE}, {FACES})")
        faces = scipy.io.loadmat(str(path), variable_names=["faces"])["faces"]
    except _MAT_ERRORS as e:
        raise GenzooError(f"{path}: cannot read .mat file ({reason(e)})") from None
    if not isinstance(faces, np.ndarray) or faces.dtype.kind not in "biuf":
        raise GenzooError(f"{path}: faces is not a numeric array")
    if faces.dtype.kind == "f" and not np.isfinite(faces).all():
        raise GenzooError(f"{path}: faces holds a value that is not finite")
    if faces.min() < 0 or faces.max() > 255:
        raise GenzooError(f"{path}: faces holds values {faces.min()}-{faces.max()}, expected 0-255")
    # column i is face i in column-major order: reshape(64, 64, order="F") is upright
    return np.ascontiguousarray(faces.T.reshape(FACES, SIDE, SIDE).transpose(0, 2, 1).round().astype(np.uint8))


@register_dataset(
    "olivetti",
    "olivetti:PATH",
    "Olivetti faces: olivettifaces.mat (key faces, 4096 x 400) or its "
    "folder; 64x64 grey, 40 people; --size shrinks (a divisor of 64)",
)
def load_olivetti(
    spec: str, path: str, *, size: int | None = None, colors: int | None = None, palette=None, **rest
) -> ImageDataset:
    if colors is not None or palette is not None or any(v is not None for v in rest.values()):
        raise GenzooError(f"{spec}: only --size applies (faces keep 256 grey levels)")
    side = size_option(spec, size, SIDE)
    if SIDE % side:
        raise GenzooError(f"{spec}: --size {side} must divide {SIDE} (faces shrink by averaging square blocks)")
    p = Path(path)
    if p.is_dir():
        p = p / FILE
    if not p.is_file():
        raise GenzooError(f"{p}: no such file")
    faces = read_faces(p)  # (400, 64, 64)
    if side != SIDE:
        f = SIDE // side
        faces = np.rint(faces.reshape(FACES, side, f, side, f).mean((2, 4))).astype(np.uint8)
    x = torch.from_numpy(faces).unsqueeze(1)  # (400, 1, H, W)
    labels = torch.arange(FACES) // PER_PERSON
    info = ImageInfo(channels=1, height=side, width=side, num_values=256, num_classes=FACES // PER_PERSON)
    return ImageDataset(
        spec=spec, x=x, info=info, splits=every_tenth_split(FACES), labels=labels, meta={"source": str(p)}
    )
