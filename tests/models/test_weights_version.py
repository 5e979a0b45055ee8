"""Checkpoints whose weight layout changed: the recurrent PixelRNNs' version-1 weights (a bare
``embedding`` parameter, a full 7x7 first kernel) load converted, with the same outputs; resuming their
training and weights from a newer genzoo are one-line errors naming the format version."""
import pytest
import torch

from conftest import random_dataset, tiny_model
from genzoo.data import ImageInfo
from genzoo.errors import GenzooError
from genzoo.models.weights import weights_version
from genzoo.training.checkpoint import load_checkpoint, save_checkpoint
from genzoo.training.config import TrainConfig
from genzoo.training.run import load_run
from genzoo.training.trainer import Trainer

INFO = ImageInfo(channels=3, height=4, width=4, num_values=3)
RECURRENT = ["row_lstm", "diagonal_bilstm", "multiscale_pixelrnn"]


def _version_1(weights: dict) -> dict:
    """The version-1 layout of the same function: ``...embed.weight`` was ``...embedding``; the first conv
    held all kh rows, those below the centre masked (filled with noise here, which must not matter)."""
    old = {}
    g = torch.Generator().manual_seed(0)
    for key, value in weights.items():
        if key.endswith("embed.weight"):
            key = key.removesuffix("embed.weight") + "embedding"
        elif key.endswith("net.first.weight"):
            rows, width = value.shape[2], value.shape[3]
            below = torch.randn(*value.shape[:2], width - rows, width, generator=g, dtype=value.dtype)
            value = torch.cat([value, below], dim=2)  # (O, I, kw, kw)
        old[key] = value
    return old


def _train(run_dir, name):
    model = tiny_model(name, INFO)
    cfg = TrainConfig(steps=2, batch_size=4, checkpoint_every=2, sample_every=0, eval_every=-1)
    Trainer(model, random_dataset(INFO, n=12), cfg, run_dir, model_name=name, seed=0, quiet=True).fit()
    return run_dir / "checkpoint.pt"


def _rewrite(path, **changes):
    state = load_checkpoint(path)
    state.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del state[key]
    save_checkpoint(path, state)


@pytest.mark.parametrize("name", RECURRENT)
def test_version_1_checkpoint_is_converted_and_gives_the_same_log_likelihood(tmp_path, name):
    path = _train(tmp_path, name)
    state = load_checkpoint(path)
    assert state["weights_version"] == 2 == weights_version(load_run(tmp_path).model)
    x = torch.randint(0, 3, (5, *INFO.shape), generator=torch.Generator().manual_seed(1))
    new = load_run(tmp_path).model.double()
    _rewrite(path, model=_version_1(state["model"]), weights_version=None)  # written before the key existed
    assert "weights_version" not in load_checkpoint(path)
    old = load_run(tmp_path).model.double()
    with torch.no_grad():
        torch.testing.assert_close(old.log_prob(x), new.log_prob(x), rtol=0, atol=1e-12)
    s1 = old.sample(3, generator=torch.Generator().manual_seed(2))
    s2 = new.sample(3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(s1, s2)


def test_resuming_a_version_1_run_is_a_one_line_error_naming_the_version(tmp_path):
    path = _train(tmp_path, "row_lstm")
    state = load_checkpoint(path)
    _rewrite(path, model=_version_1(state["model"]), weights_version=None)
    model = tiny_model("row_lstm", INFO)
    cfg = TrainConfig(steps=4, batch_size=4, checkpoint_every=2, sample_every=0, eval_every=-1)
    trainer = Trainer(model, random_dataset(INFO, n=12), cfg, tmp_path, model_name="row_lstm", seed=0, quiet=True)
    with pytest.raises(GenzooError, match="format version 1") as err:
        trainer.restore(load_checkpoint(path))
    assert "\n" not in str(err.value) and "reads version 2" in str(err.value)


def test_weights_from_a_newer_layout_or_a_bad_version_are_one_line_errors(tmp_path):
    path = _train(tmp_path, "diagonal_bilstm")
    _rewrite(path, weights_version=3)
    with pytest.raises(GenzooError, match="format version 3, newer than this genzoo reads \\(version 2\\)") as err:
        load_run(tmp_path)
    assert "\n" not in str(err.value)
    _rewrite(path, weights_version="2")
    with pytest.raises(GenzooError, match="weights_version must be an integer"):
        load_run(tmp_path)


def test_an_unchanged_layout_is_version_1_and_loads_as_before(tmp_path):
    path = _train(tmp_path, "pixelcnn")
    assert load_checkpoint(path)["weights_version"] == 1
    _rewrite(path, weights_version=None)
    assert weights_version(load_run(tmp_path).model) == 1
