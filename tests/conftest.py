import os

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


def random_dataset(info: ImageInfo, n: int = 40, seed: int = 0) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, info.num_values, (n, *info.shape), generator=g, dtype=torch.long).to(torch.uint8)
    return ImageDataset(spec="random", x=x, info=info, splits=every_tenth_split(n))


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
