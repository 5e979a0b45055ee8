"""``paired:PATH`` and ``unpaired:PATH_A,PATH_B``: data for image-to-image translation, in the layout of
pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks",
arXiv:1611.07004) and of CycleGAN (Zhu et al. 2017, arXiv:1703.10593).

``paired:PATH`` -- every image file under PATH holds an input/output pair side by side, A on the left
half and B on the right (pix2pix's ``combine_A_and_B`` layout; the CMP Facades files are 512x256, photo
| label map). With ``train/``, ``val/`` and ``test/`` subfolders (any of them; ``train`` required) those
are the splits; otherwise :func:`~genzoo.data.base.every_tenth_split` of the sorted files. A file whose
width is not twice its height is refused by name. ``direction`` ``AtoB`` (default) makes A the input
``x`` and B the ``target``; ``BtoA`` swaps them (Facades labels -> photo is ``BtoA``). Each half is
resized to ``size`` x ``size`` (default 256) with ``Image.BOX``.

``unpaired:PATH_A,PATH_B`` -- two folders of images with no correspondence (CycleGAN's trainA/trainB);
each image is made a ``size`` square by :func:`~genzoo.data.images.read_image`, and each folder is
split every tenth. A batch shows each A image with B images drawn uniformly from B's same split by the
global RNG (which the trainer seeds and checkpoints).

Both give RGB images with 256 levels. A batch is ``{"x": A-side images, "target": B-side images}``;
``paired`` says whether ``target[i]`` is the counterpart of ``x[i]``. :func:`unpaired_halves` throws the
pairing of a paired set away: the inputs of one half of a split beside the targets of the other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from genzoo.data.base import (
    MAX_SOURCE_PIXELS,
    ImageDataset,
    ImageInfo,
    check_memory,
    every_tenth_split,
    reason,
    size_option,
    split_every_tenth,
)
from genzoo.data.folder import find_images
from genzoo.data.images import read_image
from genzoo.data.kinds import register_dataset
from genzoo.errors import GenzooError

DEFAULT_SIZE = 256
DIRECTIONS = ("AtoB", "BtoA")
SPLIT_FOLDERS = ("train", "val", "test")


@dataclass
class TranslationDataset(ImageDataset):
    """Inputs ``x`` (N, C, H, W) with their splits, and targets (M, C, H, W) with ``target_splits``.

    ``paired``: ``target`` and ``x`` are indexed alike (M = N, the same splits)."""

    target: torch.Tensor | None = None
    target_splits: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    paired: bool = True

    def check(self) -> None:
        super().check()
        t = self.target
        if t is None or t.ndim != 4 or tuple(t.shape[1:]) != self.info.shape or t.dtype != self.x.dtype:
            shape = None if t is None else tuple(t.shape)
            raise GenzooError(f"{self.spec}: targets of shape {shape}, expected (M, *{self.info.shape}) like x")
        if set(self.target_splits) != set(self.splits):
            raise GenzooError(
                f"{self.spec}: the targets have splits {sorted(self.target_splits)}, not {sorted(self.splits)}"
            )
        for name, idx in self.target_splits.items():
            if len(idx) == 0 or int(idx.min()) < 0 or int(idx.max()) >= len(t):
                raise GenzooError(f"{self.spec}: target split {name!r} is empty or indexes outside the targets")
            if self.paired and not torch.equal(idx, self.splits[name]):
                raise GenzooError(f"{self.spec}: paired data must split inputs and targets alike")

    def target_indices(self, split: str, positions) -> torch.Tensor:
        pos = torch.as_tensor(positions, dtype=torch.long)
        tsplit = self.target_splits[split] if split in self.target_splits else self.indices(split)
        if self.paired:
            return tsplit[pos]
        return tsplit[torch.randint(len(tsplit), (len(pos),))]  # no correspondence: any B image of the split

    def batch(self, split: str, positions) -> dict[str, torch.Tensor]:
        out = super().batch(split, positions)
        assert self.target is not None  # check() refuses a data set without targets
        out["target"] = self._values(self.target[self.target_indices(split, positions)])
        return out

    def targets(self, split: str, positions=None) -> torch.Tensor:
        """The targets of ``split`` (paired data: the counterparts of ``images(split, positions)``)."""
        tsplit = self.target_splits[split] if split in self.target_splits else self.indices(split)
        if positions is not None:
            tsplit = tsplit[torch.as_tensor(positions, dtype=torch.long)]
        assert self.target is not None
        return self._values(self.target[tsplit])


def _direction(spec: str, direction) -> str:
    direction = "AtoB" if direction is None else direction
    if direction not in DIRECTIONS:
        raise GenzooError(f"{spec}: option direction must be AtoB or BtoA, got {direction!r}")
    return direction


def read_pair(path: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A side-by-side file -> its left and right halves, each (size, size, 3) uint8 RGB."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_SOURCE_PIXELS:
                raise GenzooError(f"{path}: image of {w} x {h} pixels; the limit is {MAX_SOURCE_PIXELS:,}")
            if w != 2 * h:
                raise GenzooError(
                    f"{path}: image of {w} x {h} pixels; a pair holds A and B side by side, so its width "
                    "must be twice its height"
                )
            im.load()
            rgb = im.convert("RGB")
    except UnidentifiedImageError:
        raise GenzooError(f"{path}: cannot read image (not a format Pillow recognises, or damaged)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise GenzooError(f"{path}: cannot read image ({reason(e)})") from None
    halves = []
    for left in (0, h):
        half = rgb.crop((left, 0, left + h, h))
        if h != size:
            half = half.resize((size, size), Image.Resampling.BOX)
        halves.append(np.asarray(half, dtype=np.uint8))
    return halves[0], halves[1]


def _info(size: int) -> ImageInfo:
    return ImageInfo(channels=3, height=size, width=size, num_values=256)


@register_dataset(
    "paired",
    "paired:PATH",
    "pix2pix pairs: each image holds A | B side by side; train/val/test subfolders or every-tenth split; "
    "--direction AtoB|BtoA, --size (256)",
)
def load_paired(
    spec: str, path: str, *, size: int | None = None, direction: str | None = None, **rest
) -> TranslationDataset:
    unknown = sorted(k for k, v in rest.items() if v is not None)
    if unknown:
        raise GenzooError(f"{spec}: unknown options {unknown}; paired takes size, direction")
    side = size_option(spec, size, DEFAULT_SIZE)
    direction = _direction(spec, direction)
    root = Path(path)
    if not root.is_dir():
        raise GenzooError(f"{root}: not a folder (paired:PATH needs a folder of side-by-side image pairs)")
    files = find_images(root)
    if not files:
        raise GenzooError(f"{root}: no images found")
    tops = [f.split("/", 1)[0] if "/" in f else "" for f in files]
    if "train" in tops and set(tops) <= set(SPLIT_FOLDERS):
        order = [s for s in SPLIT_FOLDERS if s in tops]
        files = [f for s in order for f, t in zip(files, tops) if t == s]
        tops = [f.split("/", 1)[0] for f in files]
        splits = {s: torch.tensor([i for i, t in enumerate(tops) if t == s]) for s in order}
        if "test" not in splits:
            raise GenzooError(f"{root}: has train/ but no test/ subfolder of pairs")
    else:
        splits = split_every_tenth(root, len(files))
    check_memory(root, len(files), 2 * side * side * 3, f"pairs of {side} x {side}")
    a = np.empty((len(files), side, side, 3), dtype=np.uint8)
    b = np.empty_like(a)
    for i, f in enumerate(files):
        a[i], b[i] = read_pair(root / f, side)
    x, target = (a, b) if direction == "AtoB" else (b, a)
    return TranslationDataset(
        spec=spec,
        x=torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(),
        info=_info(side),
        splits=splits,
        meta={"files": files, "options": {"size": side, "direction": direction}},
        target=torch.from_numpy(target).permute(0, 3, 1, 2).contiguous(),
        target_splits=dict(splits),
        paired=True,
    )


def _folder_images(spec: str, folder: Path, side: int) -> np.ndarray:
    if not folder.is_dir():
        raise GenzooError(f"{folder}: not a folder ({spec.split(':', 1)[0]}:PATH_A,PATH_B needs two folders of images)")
    files = find_images(folder)
    if len(files) < 2:
        raise GenzooError(f"{folder}: {len(files)} images; at least 2 are needed (train and test)")
    check_memory(folder, len(files), side * side * 3, f"images of {side} x {side}")
    out = np.empty((len(files), side, side, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        out[i] = read_image(folder / f, side)
    return out


@register_dataset(
    "unpaired",
    "unpaired:PATH_A,PATH_B",
    "two folders of images with no correspondence (CycleGAN); every-tenth split of each; --size (256)",
)
def load_unpaired(spec: str, path: str, *, size: int | None = None, **rest) -> TranslationDataset:
    unknown = sorted(k for k, v in rest.items() if v is not None)
    if unknown:
        raise GenzooError(f"{spec}: unknown options {unknown}; unpaired takes size")
    side = size_option(spec, size, DEFAULT_SIZE)
    parts = path.split(",")
    if len(parts) != 2 or not all(parts):
        raise GenzooError(f"{spec}: expected two folders separated by one comma, unpaired:PATH_A,PATH_B")
    a = _folder_images(spec, Path(parts[0]), side)
    b = _folder_images(spec, Path(parts[1]), side)
    return TranslationDataset(
        spec=spec,
        x=torch.from_numpy(a).permute(0, 3, 1, 2).contiguous(),
        info=_info(side),
        splits=every_tenth_split(len(a)),
        meta={"options": {"size": side}},
        target=torch.from_numpy(b).permute(0, 3, 1, 2).contiguous(),
        target_splits=every_tenth_split(len(b)),
        paired=False,
    )


def unpaired_halves(data: TranslationDataset, split: str = "train") -> TranslationDataset:
    """The pairing thrown away: inputs from the first half of ``split``, targets from the second half
    (CycleGAN trained on paired images as if unpaired); the other splits stay paired for measurement."""
    idx = data.indices(split)
    half = len(idx) // 2
    if half < 1:
        raise GenzooError(f"{data.spec}: split {split!r} has {len(idx)} pairs; halving it needs at least 2")
    splits, tsplits = dict(data.splits), dict(data.target_splits)
    splits[split], tsplits[split] = idx[:half], idx[half : 2 * half]
    return TranslationDataset(
        spec=data.spec,
        x=data.x,
        info=data.info,
        splits=splits,
        meta={**data.meta, "unpaired_halves": split},
        target=data.target,
        target_splits=tsplits,
        paired=False,
    )
