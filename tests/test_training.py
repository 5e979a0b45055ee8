"""The trainer and checkpoints: exact resume, the k:1 schedule, atomic and safe checkpoints."""
import json
from dataclasses import dataclass

import pytest
import torch
from conftest import random_dataset
from torch import nn

from genzoo.data import ImageInfo
from genzoo.errors import GenzooError
from genzoo.models.base import AdversarialModel, ModelOutput
from genzoo.training import checkpoint as ckpt_mod
from genzoo.training.checkpoint import load_checkpoint
from genzoo.training.config import TrainConfig
from genzoo.training.run import load_run
from genzoo.training.callbacks import OnStep
from genzoo.training.trainer import Trainer, TrainingInterrupted

INFO = ImageInfo(channels=1, height=4, width=4, num_values=5)


def _pixelrnn_trainer(run_dir, steps=12, dropout=0.2):
    from genzoo.models.autoregressive.pixelrnn import PixelRNN, PixelRNNConfig

    torch.manual_seed(0)
    model = PixelRNN(PixelRNNConfig(hidden=16, layers=2, dropout=dropout), INFO)  # dropout: uses the RNG
    cfg = TrainConfig(steps=steps, batch_size=8, checkpoint_every=4, sample_every=5, eval_every=-1)
    return Trainer(model, random_dataset(INFO, n=50), cfg, run_dir, model_name="pixelrnn", seed=3, quiet=True)


def test_interrupted_then_resumed_run_equals_uninterrupted(tmp_path):
    full = _pixelrnn_trainer(tmp_path / "full")
    full.fit()

    part = _pixelrnn_trainer(tmp_path / "part")

    def ctrl_c_at_7(trainer):  # what SIGINT does: a flag, then a checkpoint after the step
        if trainer.step == 7:
            trainer._request_stop(None, None)

    part.callbacks.append(OnStep(ctrl_c_at_7))
    with pytest.raises(TrainingInterrupted):
        part.fit()
    assert load_checkpoint(tmp_path / "part" / "checkpoint.pt")["step"] == 7

    torch.manual_seed(12345)  # whatever the process did in between must not matter
    resumed = _pixelrnn_trainer(tmp_path / "part")
    resumed.restore(load_checkpoint(tmp_path / "part" / "checkpoint.pt"))
    resumed.fit()
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    a = [json.loads(l)["loss"] for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(l)["loss"] for l in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert a == b  # the log of the resumed run has no duplicated steps


class _Counter(AdversarialModel):
    """Two players on a 1-D toy problem; counts and checks who is updated when."""

    name = "counter"
    family = "test"
    players = ("discriminator", "generator")

    @dataclass
    class Config:
        k: int = 3

    def __init__(self, config, info):
        super().__init__(config, info)
        self.discriminator = nn.Linear(1, 1)
        self.generator = nn.Linear(1, 1)
        self.log = []

    @property
    def schedule(self):
        return {"discriminator": self.config.k, "generator": 1}

    def player_loss(self, player, batch):
        x = batch["x"].float().flatten(1)[:, :1]
        fake = self.generator(torch.ones_like(x))
        d_snapshot = self.discriminator.weight.detach().clone()
        self.log.append((player, d_snapshot))
        if player == "discriminator":
            loss = self.discriminator(fake.detach()).mean() - self.discriminator(x).mean()
        else:
            loss = -self.discriminator(fake).mean()
        return ModelOutput(loss, {})


def test_k_to_1_schedule_updates_each_player_with_its_own_optimiser(tmp_path):
    model = _Counter(_Counter.Config(k=3), INFO)
    cfg = TrainConfig(steps=4, batch_size=4, sample_every=0, eval_every=-1, lr=0.1)
    trainer = Trainer(model, random_dataset(INFO), cfg, tmp_path, model_name="counter", quiet=True)
    d_before = model.discriminator.weight.detach().clone()
    trainer.fit()
    order = [p for p, _ in model.log]
    assert order == (["discriminator"] * 3 + ["generator"]) * 4
    assert trainer.batches == 16
    # D is held fixed while G updates: D's weights after a G update equal those before it.
    for i, (p, w) in enumerate(model.log):
        if p == "generator" and i + 1 < len(model.log):
            assert torch.equal(model.log[i + 1][1], w)
    assert not torch.equal(model.discriminator.weight, d_before)
    assert set(trainer.optims) == {"discriminator", "generator"}
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert "discriminator/loss" in rows[-1] and "generator/loss" in rows[-1]


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    trainer = _pixelrnn_trainer(tmp_path, steps=4)
    trainer.fit()
    path = tmp_path / "checkpoint.pt"
    good = path.read_bytes()

    def torn_save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", torn_save)
    trainer.step = 99
    with pytest.raises(OSError):
        trainer.save()
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert load_checkpoint(path)["step"] == 4


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_a_checkpoint_carrying_a_pickle_payload_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": "genzoo-checkpoint-1", "model": _Payload()}, run / "checkpoint.pt")
    with pytest.raises(GenzooError, match="refused") as e:
        load_run(run)
    assert "\n" not in str(e.value) and "checkpoint.pt" in str(e.value)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_bad_checkpoints_are_one_line_errors(tmp_path):
    p = tmp_path / "checkpoint.pt"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(GenzooError, match="not a readable checkpoint"):
        load_checkpoint(p)
    torch.save({"format": "genzoo-checkpoint-1", "step": 1}, p)
    with pytest.raises(GenzooError, match="missing key 'version'"):
        load_checkpoint(p)
    trainer = _pixelrnn_trainer(tmp_path / "ok", steps=1)
    trainer.fit()
    state = trainer.state()
    state["model_config"]["hiddden"] = 3
    ckpt_mod.save_checkpoint(tmp_path / "bad" / "checkpoint.pt", state)
    with pytest.raises(GenzooError, match="hiddden"):
        load_run(tmp_path / "bad")
    state = trainer.state()
    state["model"]["head.weight"] = torch.zeros(2, 2)
    ckpt_mod.save_checkpoint(tmp_path / "bad2" / "checkpoint.pt", state)
    with pytest.raises(GenzooError, match="head.weight"):
        load_run(tmp_path / "bad2")


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = _pixelrnn_trainer(tmp_path, steps=10)

    def poison(t):
        if t.step == 8:
            with torch.no_grad():
                t.model.head.bias.fill_(float("nan"))

    trainer.callbacks.append(OnStep(poison))
    with pytest.raises(GenzooError, match="loss became nan at step 9"):
        trainer.fit()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 8 and torch.isfinite(state["model"]["head.bias"]).all()


def test_same_seed_same_training(tmp_path):
    a = _pixelrnn_trainer(tmp_path / "a", steps=3)
    a.fit()
    b = _pixelrnn_trainer(tmp_path / "b", steps=3)
    b.fit()
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
