import gzip
import os

import numpy as np
import pytest
import torch

from genzoo.data import ImageDataset, ImageInfo, every_tenth_split
from genzoo.models.registry import available_models, make_config

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))  # tiny models: overhead-bound


def tiny_info(model_cls=None) -> ImageInfo:
    """The small data shape the shared suite builds every model for (a model may ask for another)."""
    info = getattr(model_cls, "test_info", None)
    return info if info is not None else ImageInfo(channels=1, height=4, width=4, num_values=5)


def tiny_model(name: str, info: ImageInfo | None = None, seed: int = 0):
    cls = available_models()[name]
    keys = set(make_config.__globals__["field_types"](cls.Config))
    preset = {k: v for k, v in cls.presets["tiny"].items() if k in keys}
    torch.manual_seed(seed)
    return cls(make_config(cls.Config, preset), info or tiny_info(cls))


def random_dataset(info: ImageInfo, n: int = 40, seed: int = 0, paired: bool = False) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, info.num_values, (n, *info.shape), generator=g, dtype=torch.long).to(torch.uint8)
    labels = torch.arange(n) % info.num_classes if info.num_classes else None  # labelled data for conditional models
    if info.vocab and not getattr(info, "tokens", ""):  # captioned images (text2image): random captions too
        return random_captions(x, info, labels, g)
    if paired:  # translation models (pix2pix, CycleGAN): a random target image beside each input
        from genzoo.data.paired import TranslationDataset

        target = torch.randint(0, info.num_values, x.shape, generator=g, dtype=torch.long).to(torch.uint8)
        splits = every_tenth_split(n)
        return TranslationDataset(spec="random", x=x, info=info, splits=splits, labels=labels, target=target,
                                  target_splits=dict(splits))
    return ImageDataset(spec="random", x=x, info=info, splits=every_tenth_split(n), labels=labels)


def random_captions(x, info: ImageInfo, labels, g: torch.Generator, per_image: int = 2):
    """Images ``x`` with ``per_image`` random captions each (1-4 words of ``info.vocab``, padded with <pad>)."""
    from genzoo.data.captions import CaptionedDataset

    n, words = len(x), len(info.vocab) - 4
    caps = torch.randint(4, 4 + words, (n * per_image, 4), generator=g)
    caps[torch.arange(4) >= torch.randint(1, 5, (n * per_image, 1), generator=g)] = 0  # <pad> after the last word
    owner = torch.arange(n).repeat_interleave(per_image)
    return CaptionedDataset(spec="random", x=x, info=info, splits=every_tenth_split(n), labels=labels,
                            captions=caps, caption_image=owner)


@pytest.fixture(scope="session")
def pokemon():
    from genzoo.data import load_dataset

    return load_dataset("pokemon")


def _shared_data():
    from pathlib import Path

    env = os.environ.get("GENZOO_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")]
    return next((p for p in candidates if p.is_dir()), candidates[0])


SHARED_DATA = _shared_data()  # the real data sets (../shared/data beside the checkout)


def run_cli(capsys, *argv):
    """Run ``genzoo ARGV`` in-process: (exit status, stdout, stderr)."""
    from genzoo.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- labelled IDX files (the MNIST layout) made of class templates with flipped pixels ----------------
def write_idx(folder, prefix: str, n: int, seed: int, side: int = 8, classes: int = 10) -> None:
    """``{prefix}-images-idx3-ubyte.gz`` and labels: class c = template c with 5% of pixels flipped."""
    templates = np.random.default_rng(1234).random((classes, side, side)) < 0.5  # shared by every split
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    flips = rng.random((n, side, side)) < 0.05
    x = (templates[y] ^ flips).astype(np.uint8) * 255
    folder.mkdir(parents=True, exist_ok=True)
    header = (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, side, side))
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + x.tobytes()))
    header = (0x801).to_bytes(4, "big") + n.to_bytes(4, "big")
    (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + y.astype(np.uint8).tobytes()))


@pytest.fixture(scope="session")
def idx_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("idx") / "templates"
    write_idx(folder, "train", 400, seed=0)
    write_idx(folder, "t10k", 100, seed=1)
    return folder


def chromium_or_skip() -> str:
    """Path of a headless Chromium; skipped with the reason when none is installed, required under CI=true
    (``.ci/run`` installs Debian's ``chromium``), so CI always runs the browser tests."""
    import shutil

    exe = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.isfile("/usr/bin/chromium") else None)
    if exe is None:
        message = ("headless Chromium is needed for the real-browser tests; install it with "
                   "`apt-get install chromium` (Debian/Ubuntu; the binary must be on PATH as `chromium`)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return exe
