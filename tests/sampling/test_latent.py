"""The shared latent-model machinery: pixel conversions, fitting codes, paths and grids of codes,
the 2-D mixtures and their mode report, and the trainer's hooks for EM-style and diagnosed models."""
import io
import math
import tarfile
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import random_dataset
from genzoo.data import ImageInfo, load_dataset
from genzoo.data.continuous import from_unit, to_unit, unit_channels
from genzoo.data.toy import draw_mixture, mode_report
from genzoo.errors import GenzooError
from genzoo.models.base import LatentModel, ModelOutput
from genzoo.sampling.latent import fit_codes, interpolate, traversal_codes
from genzoo.training.config import TrainConfig
from genzoo.training.trainer import Trainer

PALETTE = ((0, 0, 0), (255, 0, 0), (0, 255, 0), (250, 250, 250))


# ---------------------------------------------------------------- continuous pixels

@pytest.mark.parametrize("info", [
    ImageInfo(1, 3, 3, 4, palette=PALETTE), ImageInfo(1, 3, 3, 2), ImageInfo(1, 3, 3, 256), ImageInfo(3, 3, 3, 256)])
def test_to_unit_and_back_is_the_identity_on_discrete_images(info):
    x = torch.randint(0, info.num_values, (5, *info.shape))
    u = to_unit(x, info)
    assert u.shape == (5, unit_channels(info), 3, 3) and u.min() >= 0 and u.max() <= 1
    assert torch.equal(from_unit(u, info), x)


def test_from_unit_takes_the_nearest_palette_colour_and_level():
    info = ImageInfo(1, 1, 2, 4, palette=PALETTE)
    y = torch.tensor([[0.9, 0.1, 0.05], [0.8, 0.85, 0.9]]).T.reshape(1, 3, 1, 2)  # reddish, light grey
    assert from_unit(y, info).flatten().tolist() == [1, 3]
    grey = ImageInfo(1, 1, 3, 2)
    assert from_unit(torch.tensor([0.49, 0.51, 1.3]).view(1, 1, 1, 3), grey).flatten().tolist() == [0, 1, 1]


# ---------------------------------------------------------------- a linear latent model

@dataclass
class LinCfg:
    latent_dim: int = 2


class Linear(LatentModel):
    """decode_unit(z) = sigmoid(W z + b): an identifiable decoder for checking the shared code fitting."""
    family, paper, Config, presets = "test", "-", LinCfg, {"tiny": {}}

    def __init__(self, config, info):
        super().__init__(config, info)
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(info.dims, config.latent_dim, generator=g))
        self.b = torch.nn.Parameter(torch.zeros(info.dims))

    def decode_unit(self, z, condition=None):
        return torch.sigmoid(z @ self.w.T + self.b).view(len(z), *self.info.shape)


def test_fit_codes_recovers_the_code_that_made_an_image():
    info = ImageInfo(1, 4, 4, 256)
    model = Linear(LinCfg(), info)
    z_true = torch.tensor([[0.7, -1.2], [-0.3, 0.4]])
    with torch.no_grad():
        x = from_unit(model.decode_unit(z_true), info)
    known = torch.ones(info.shape, dtype=torch.bool)
    z = fit_codes(model, x, known, generator=torch.Generator().manual_seed(1), steps=600)
    assert torch.allclose(z, z_true, atol=0.05)
    assert all(p.requires_grad for p in model.parameters()) and model.training  # state restored


def test_completion_keeps_known_pixels_and_uses_the_visible_ones():
    info = ImageInfo(1, 4, 4, 256)
    model = Linear(LinCfg(), info)
    with torch.no_grad():
        x = from_unit(model.decode_unit(torch.tensor([[1.0, -1.0]])), info)
    known = torch.zeros(info.shape, dtype=torch.bool)
    known[:, :2] = True
    model.latent_steps = 600
    out = model.complete(x, known, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, known], x[:, known])
    # the hidden half is predicted from the visible half: close to the truth (an identifiable decoder)
    assert (out[:, ~known] - x[:, ~known]).abs().float().mean() < 8  # of 255 levels
    a = model.complete(x, known, generator=torch.Generator().manual_seed(3))
    b = model.complete(x, known, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_interpolation_paths():
    z0, z1 = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    lin = interpolate(z0, z1, 5, "linear")
    assert torch.allclose(lin[0], z0) and torch.allclose(lin[-1], z1) and torch.allclose(lin[2], (z0 + z1) / 2)
    sl = interpolate(z0, z1, 5, "slerp")
    assert torch.allclose(sl[0], z0) and torch.allclose(sl[-1], z1, atol=1e-6)
    assert torch.allclose(sl.norm(dim=1), torch.full((5,), 3.0))  # equal norms stay on the sphere
    with pytest.raises(GenzooError):
        interpolate(z0, z1, 1)


def test_traversal_grid_sets_exactly_the_two_dimensions():
    base = torch.tensor([0.5, -0.5, 2.0])
    z = traversal_codes(base, (0, 2), -1.0, 1.0, 3).view(3, 3, 3)
    assert torch.equal(z[:, :, 1], torch.full((3, 3), -0.5))
    steps = torch.tensor([-1.0, 0.0, 1.0])
    assert torch.equal(z[:, 0, 0], steps) and torch.equal(z[0, :, 2], steps)
    with pytest.raises(GenzooError, match="dimensions 0-2"):
        traversal_codes(base, (0, 3), -1, 1, 3)


# ---------------------------------------------------------------- mixtures

def test_mixture_data_and_the_mode_report():
    data = load_dataset("mixture:grid25")
    assert data.info.continuous and data.batch("train", [0, 1])["x"].dtype == torch.float32
    rep = mode_report(draw_mixture("grid25", 2500, 7), "grid25")
    # true draws: all modes, ~98.9% within 3 sigma (2-D Gaussian: 1 - exp(-9/2))
    assert rep["modes"] == 25 and abs(rep["high_quality"] - (1 - math.exp(-4.5))) < 0.01
    collapsed = np.tile([[2.0, 0.0]], (2500, 1))
    rep = mode_report(collapsed, "ring8")
    assert rep["modes"] == 1 and rep["high_quality"] == 1.0 and rep["kl_from_uniform"] == pytest.approx(math.log(8))
    assert mode_report(np.full((100, 2), 10.0), "ring8")["modes"] == 0


# ---------------------------------------------------------------- cifar10 loader

def _tar(tmp_path, names):
    path = tmp_path / "c.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, colour in names:
            buf = io.BytesIO()
            Image.new("RGB", (32, 32), colour).save(buf, format="PNG")
            info = tarfile.TarInfo(name)
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))
    return path


def test_cifar10_loader_reads_a_tar_in_sorted_order_with_its_split(tmp_path):
    path = _tar(tmp_path, [("test/cat/1.png", (0, 0, 255)), ("train/dog/2.png", (0, 255, 0)),
                           ("train/cat/9.png", (255, 0, 0)), ("train/cat/3.png", (10, 20, 30))])
    data = load_dataset(f"cifar10:{path}")
    assert data.info.shape == (3, 32, 32) and data.info.num_values == 256 and data.info.class_names == ("cat", "dog")
    assert data.size("train") == 3 and data.size("test") == 1
    assert data.images("train")[:, :, 0, 0].tolist() == [[10, 20, 30], [255, 0, 0], [0, 255, 0]]
    assert data.batch("train", [0, 1, 2])["y"].tolist() == [0, 0, 1]
    with pytest.raises(GenzooError, match="only --size"):
        load_dataset(f"cifar10:{path}", colors=8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GenzooError, match="expected train/<class>"):
        load_dataset(f"cifar10:{tmp_path / 'empty'}")


# ---------------------------------------------------------------- trainer hooks

@dataclass
class MeanCfg:
    pass


class RunningMean(LatentModel):
    """Fitted in closed form: each update moves a buffer to the batch mean (a stand-in for EM)."""
    family, paper, Config, presets, gradient_free = "test", "-", MeanCfg, {"tiny": {}}, True

    def __init__(self, config, info):
        super().__init__(config, info)
        self.register_buffer("mean", torch.zeros(info.shape))
        self.updates = 0

    def update(self, batch):
        self.updates += 1
        self.mean.copy_(to_unit(batch["x"], self.info).mean(0))
        return ModelOutput(self.mean.mean(), {"mean": self.mean.mean().item()})

    def diagnose(self, record):
        return ["mean is large"] if record["mean"] > 0 else []

    @property
    def device(self):
        return self.mean.device

    @property
    def dtype(self):
        return self.mean.dtype


def test_gradient_free_models_are_updated_without_an_optimiser_and_diagnosed(tmp_path, capsys):
    info = ImageInfo(1, 2, 2, 4)
    data = random_dataset(info)
    model = RunningMean(MeanCfg(), info)
    cfg = TrainConfig(steps=3, batch_size=8, sample_every=0, eval_every=-1, log_every=1)
    trainer = Trainer(model, data, cfg, tmp_path, model_name="running_mean")
    assert trainer.optims == {}
    trainer.fit()
    assert model.updates == 3 and model.mean.sum() > 0
    rows = [__import__("json").loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["warnings"] == ["mean is large"]
    assert capsys.readouterr().err.count("warning (step 1): mean is large") == 1  # shown once, logged every time
