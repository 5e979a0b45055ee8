"""`genzoo sample/complete --condition-map`: a spatially conditioned Gated PixelCNN sampled from the CLI."""
import numpy as np
import pytest
import torch

from conftest import run_cli
from genzoo.io import write_json
from genzoo.models.autoregressive.gated_pixelcnn import GatedPixelCNN, GatedPixelCNNConfig
from genzoo.training.config import TrainConfig
from genzoo.training.run import RUN_JSON, run_description
from genzoo.training.trainer import Trainer


@pytest.fixture(scope="module")
def spatial_run(tmp_path_factory, pokemon):
    """A run folder holding an (untrained) spatially conditioned model: the API's own checkpoint writer."""
    out = tmp_path_factory.mktemp("spatial") / "run"
    torch.manual_seed(0)
    model = GatedPixelCNN(GatedPixelCNNConfig(hidden=8, layers=2, embed=4, skip=8, out_hidden=8,
                                              spatial_channels=2, spatial_scale=10), pokemon.info)
    data, cfg = pokemon, TrainConfig(steps=1, sample_every=0)
    trainer = Trainer(model, data, cfg, out, model_name="gated_pixelcnn", quiet=True)
    out.mkdir(parents=True)
    write_json(out / RUN_JSON, run_description("gated_pixelcnn", model, cfg, data, 0))
    trainer.save()
    return out


def test_the_map_steers_the_samples_and_the_same_map_gives_the_same_file(spatial_run, tmp_path, capsys):
    maps = {name: tmp_path / f"{name}.npy" for name in ("a", "b")}
    np.save(maps["a"], np.zeros((2, 2, 2), np.float32))
    np.save(maps["b"], np.full((2, 2, 2), 5.0, np.float32))
    for name, path in [("a1", maps["a"]), ("a2", maps["a"]), ("b", maps["b"])]:
        code, _, err = run_cli(capsys, "sample", spatial_run, "-n", "16", "-o", tmp_path / f"{name}.png",
                               "--condition-map", path, "--precision", "model")
        assert code == 0, err
    assert (tmp_path / "a1.png").read_bytes() == (tmp_path / "a2.png").read_bytes()
    assert (tmp_path / "a1.png").read_bytes() != (tmp_path / "b.png").read_bytes()
    code, _, err = run_cli(capsys, "complete", spatial_run, "--mask", "bottom-half", "-o", tmp_path / "c.png",
                           "--images", "test:0-1", "--samples", "2", "--condition-map", maps["a"])
    assert code == 0, err


@pytest.mark.parametrize("content,needle", [
    (np.zeros((3, 2, 2), np.float32), "spatial"),            # wrong channel count: the model's one-line error
    (np.full((2, 2, 2), np.nan, np.float32), "NaN"),
    (np.zeros((5, 2, 2, 2), np.float32), "5 maps for 4 images"),
    (np.array(["x"]), "expected numbers"),
    (None, "--condition-map"),                                   # a missing map is named, not a traceback
])
def test_bad_maps_are_one_line(content, needle, spatial_run, tmp_path, capsys):
    path = tmp_path / "m.npy"
    if content is not None:
        np.save(path, content)
    code, _, err = run_cli(capsys, "sample", spatial_run, "-n", "4", "-o", tmp_path / "x.png",
                           "--condition-map", path)
    assert code == 2 and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "x.png").exists()


def test_a_map_for_a_model_without_spatial_channels_is_refused(tmp_path, capsys):
    run = tmp_path / "plain"
    assert run_cli(capsys, "train", "pixelcnn", "--preset", "tiny", "--steps", "1", "--out", run, "--quiet",
                   "--set", "sample_every=0")[0] == 0
    np.save(tmp_path / "m.npy", np.zeros((2, 2, 2), np.float32))
    code, _, err = run_cli(capsys, "sample", run, "-n", "4", "-o", tmp_path / "x.png", "--condition-map",
                           tmp_path / "m.npy")
    assert code == 2 and err.count("\n") == 1, err
