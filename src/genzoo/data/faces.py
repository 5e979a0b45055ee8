"""``utkface:PATH``: UTKFace (Zhang, Song & Qi 2017, "Age Progression/Regression by Conditional
Adversarial Autoencoder", arXiv:1702.08423), faces labelled from their file names.

PATH is the ``.tar`` (``.tar.gz``) of the aligned and cropped faces or a folder of them; every file is
named ``AGE_GENDER_RACE_DATE.jpg`` (age 0-116; gender 0 male, 1 female; race 0-4: White, Black, Asian,
Indian, Others). Files are read in sorted path order and made ``size`` squares (default 64) by
:func:`~genzoo.data.images.read_image`; the split is every tenth face (``test`` = sorted positions
0, 10, 20, ...).

Labels (``label``):

* ``age_group`` (default) -- the six age groups of Antipov, Baccouche & Dugelay 2017 (arXiv:1702.01983,
  Sec. 4.1): 0-18, 19-29, 30-39, 40-49, 50-59 and 60+ years (:data:`AGE_GROUPS`, lower bounds
  inclusive);
* ``gender`` (2 classes) or ``race`` (5 classes).

A name whose first field is not an age 0-150 is refused with one line naming the file. Three files of
the original set lack a field (``39_1_20170116174525125.jpg``, ``61_1_20170109142408075.jpg``,
``61_1_20170109150557335.jpg``): their age is still read; a label they lack (race, or gender) skips them,
counted in ``meta["skipped"]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genzoo.data.base import ImageDataset, ImageInfo, check_memory, size_option, split_every_tenth
from genzoo.data.cifar import _members as image_members  # tar or folder -> sorted (parts, source)
from genzoo.data.images import read_image
from genzoo.data.kinds import register_dataset
from genzoo.errors import GenzooError

DEFAULT_SIZE = 64
MAX_AGE = 150
# (lower bound in years, name): Antipov et al. 2017, Sec. 4.1
AGE_GROUPS: tuple[tuple[int, str], ...] = (
    (0, "0-18"),
    (19, "19-29"),
    (30, "30-39"),
    (40, "40-49"),
    (50, "50-59"),
    (60, "60+"),
)
LABELS = {
    "age_group": tuple(name for _, name in AGE_GROUPS),
    "gender": ("male", "female"),
    "race": ("White", "Black", "Asian", "Indian", "Others"),
}


def age_group(age: int) -> int:
    """The index of ``age``'s group in :data:`AGE_GROUPS`."""
    return max(i for i, (lo, _) in enumerate(AGE_GROUPS) if age >= lo)


def parse_name(name: str) -> tuple[int, int | None, int | None]:
    """``AGE_GENDER_RACE_DATE.jpg`` -> (age, gender, race); a missing field is None (see the module doc)."""
    fields = Path(name).name.split(".")[0].split("_")
    if not (fields[0].isascii() and fields[0].isdigit()) or int(fields[0]) > MAX_AGE:
        raise GenzooError(f"{name}: not a UTKFace name AGE_GENDER_RACE_DATE.jpg (age 0-{MAX_AGE} first)")
    age = int(fields[0])
    rest = fields[1:-1] if len(fields) >= 3 else fields[1:]  # the last field is the date
    nums = [int(f) if f.isascii() and f.isdigit() else -1 for f in rest]
    gender = nums[0] if len(nums) >= 1 and nums[0] in (0, 1) else None
    race = nums[1] if len(nums) >= 2 and 0 <= nums[1] <= 4 else None
    if len(nums) >= 2 and (gender is None or race is None):
        raise GenzooError(f"{name}: gender must be 0 or 1 and race 0-4 in AGE_GENDER_RACE_DATE.jpg")
    return age, gender, race


@register_dataset(
    "utkface",
    "utkface:PATH",
    "UTKFace faces (.tar or folder of AGE_GENDER_RACE_DATE.jpg), age groups 0-18|19-29|30-39|40-49|50-59|60+ "
    "as labels; --size (64)",
)
def load_utkface(spec: str, path: str, *, size: int | None = None, label: str | None = None, **rest) -> ImageDataset:
    unknown = sorted(k for k, v in rest.items() if v is not None)
    if unknown:
        raise GenzooError(f"{spec}: unknown options {unknown}; utkface takes size, label")
    side = size_option(spec, size, DEFAULT_SIZE)
    label = "age_group" if label is None else label
    if label not in LABELS:
        raise GenzooError(f"{spec}: option label must be one of {', '.join(LABELS)}, got {label!r}")
    root = Path(path)
    if not root.exists():
        raise GenzooError(f"{root}: no such file or folder")
    chosen, ys, skipped = [], [], 0
    for parts, source in image_members(root):
        name = source if isinstance(source, Path) else f"{root}: {'/'.join(parts)}"
        age, gender, race = parse_name(str(name))
        y = {"age_group": age_group(age), "gender": gender, "race": race}[label]
        if y is None:
            skipped += 1
            continue
        chosen.append((name, source))
        ys.append(y)
    splits = split_every_tenth(root, len(chosen))
    check_memory(root, len(chosen), side * side * 3, f"faces of {side} x {side}")
    x = np.empty((len(chosen), 3, side, side), dtype=np.uint8)
    for i, (name, source) in enumerate(chosen):
        x[i] = read_image(source, side, name=name).transpose(2, 0, 1)
    names = LABELS[label]
    info = ImageInfo(channels=3, height=side, width=side, num_values=256, num_classes=len(names), class_names=names)
    return ImageDataset(
        spec=spec,
        x=torch.from_numpy(x),
        info=info,
        splits=splits,
        labels=torch.tensor(ys, dtype=torch.long),
        meta={"skipped": skipped, "options": {"size": side, "label": label}},
    )
