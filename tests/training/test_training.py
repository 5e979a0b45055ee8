"""The trainer and checkpoints: exact resume, the k:1 schedule, atomic and safe checkpoints, a NaN stop
that keeps only a good checkpoint, and run folders tidied of what killed runs leave behind."""
import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from conftest import random_dataset, run_cli, tiny_model
from genzoo.data import ImageInfo
from genzoo.errors import GenzooError
from genzoo.models.base import AdversarialModel, ModelOutput
from genzoo.training import checkpoint as ckpt_mod
from genzoo.training.callbacks import OnStep
from genzoo.training.checkpoint import load_checkpoint
from genzoo.training.config import TrainConfig
from genzoo.training.run import load_run
from genzoo.training.trainer import Trainer, TrainingInterrupted

INFO = ImageInfo(channels=1, height=4, width=4, num_values=5)


def _pixelrnn_trainer(run_dir, steps=12, dropout=0.2, callbacks=None):
    from genzoo.models.autoregressive.pixelrnn import PixelRNN, PixelRNNConfig

    torch.manual_seed(0)
    model = PixelRNN(PixelRNNConfig(hidden=16, layers=2, dropout=dropout), INFO)  # dropout: uses the RNG
    cfg = TrainConfig(steps=steps, batch_size=8, checkpoint_every=4, sample_every=5, eval_every=-1)
    return Trainer(model, random_dataset(INFO, n=50), cfg, run_dir, model_name="pixelrnn", seed=3, quiet=True,
                   callbacks=callbacks)


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
    a = [json.loads(ln)["loss"] for ln in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(ln)["loss"] for ln in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
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
    rows = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
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


def _poison_at(step, name="head.bias"):
    def poison(t):
        if t.step == step:
            with torch.no_grad():
                t.model.get_parameter(name).fill_(float("nan"))

    return OnStep(poison)


def _assert_good(run_dir, step):
    """RUN/checkpoint.pt is at ``step``, its weights are finite and give a finite loss; nothing else is left."""
    r = load_run(run_dir)
    assert r.step == step
    assert all(torch.isfinite(v).all() for v in r.model.state_dict().values() if v.is_floating_point())
    batch = random_dataset(INFO, n=50).batch("train", torch.arange(8))
    with torch.no_grad():
        assert torch.isfinite(r.model.loss(batch).loss)
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(("checkpoint", "."))) == ["checkpoint.pt"]


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, when):
    # Weights turn NaN at step 8, a checkpoint step. Poisoned before the checkpoint is written, the
    # write is refused; poisoned just after it, the loss of step 9 is NaN and checkpoint 8 (not yet
    # proven by a finite loss) gives way to checkpoint 4, whose weights gave the finite loss of step 5.
    if when == "before":
        trainer = _pixelrnn_trainer(tmp_path, steps=10, callbacks=[_poison_at(8)])
        expected = r"weight 'head.bias' became non-finite at step 8; stopped; the last good checkpoint \(step 4\)"
    else:
        trainer = _pixelrnn_trainer(tmp_path, steps=10)
        trainer.callbacks.append(_poison_at(8))  # after the built-in callbacks: after the write
        expected = r"loss became nan at step 9; stopped; the last good checkpoint \(step 4\)"
    with pytest.raises(GenzooError, match=expected) as e:
        trainer.fit()
    assert "\n" not in str(e.value)
    _assert_good(tmp_path, 4)


def test_the_last_checkpoint_is_proven_by_a_loss_probe(tmp_path):
    # No round follows the final checkpoint: a loss-only probe on a copy of the model decides.
    trainer = _pixelrnn_trainer(tmp_path, steps=8)
    trainer.callbacks.append(_poison_at(8))
    with pytest.raises(GenzooError, match=r"the weights of step 8 give a non-finite loss; .*\(step 4\)"):
        trainer.fit()
    _assert_good(tmp_path, 4)
    # the probe leaves the trainer's model, optimiser and RNG as they were: a healthy run is unchanged by it
    a = _pixelrnn_trainer(tmp_path / "a", steps=6)  # each trainer seeds the global RNG
    a.fit()
    rng_a = torch.get_rng_state()
    b = _pixelrnn_trainer(tmp_path / "b", steps=6)
    b.fit()
    assert b._losses_are_finite()
    assert torch.equal(rng_a, torch.get_rng_state())
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    assert sorted(p.name for p in (tmp_path / "a").iterdir() if p.name.startswith("checkpoint")) == ["checkpoint.pt"]


class _Abort(BaseException):
    """What a kill does to the process, as an exception (no handler runs)."""


def test_a_run_killed_before_its_checkpoint_was_proven_falls_back_on_resume(tmp_path):
    def kill_at_8(t):
        if t.step == 8:
            raise _Abort

    trainer = _pixelrnn_trainer(tmp_path, steps=10)
    trainer.callbacks.append(OnStep(kill_at_8))  # after checkpoint 8 is written, before step 9 proves it
    with pytest.raises(_Abort):
        trainer.fit()
    assert load_checkpoint(tmp_path / "checkpoint.previous.pt")["step"] == 4
    resumed = _pixelrnn_trainer(tmp_path, steps=10)
    resumed.restore(load_checkpoint(tmp_path / "checkpoint.pt"))
    with torch.no_grad():
        resumed.model.head.bias.fill_(float("nan"))  # checkpoint 8 gives NaN after all
    with pytest.raises(GenzooError, match=r"loss became nan at step 9; .*\(step 4\)"):
        resumed.fit()
    _assert_good(tmp_path, 4)


def test_a_huge_learning_rate_leaves_no_checkpoint_that_gives_nan(tmp_path, capsys):
    run = tmp_path / "vae"
    code, _, err = run_cli(capsys, "train", "vae", "--preset", "tiny", "--data", "pokemon", "--set", "lr=1e10",
                           "--set", "checkpoint_every=1", "--set", "sample_every=0", "--steps", "20", "--quiet",
                           "--device", "cpu", "--out", run)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "stopped;" in err and "step" in err
    if (run / "checkpoint.pt").exists():  # whatever is kept gives a finite ELBO
        code, out, err = run_cli(capsys, "eval", run, "--only", "likelihood", "--device", "cpu")
        assert code == 0, err
        assert all(m["value"] == m["value"] for m in json.loads((run / "eval.json").read_text())["metrics"])
    else:
        assert "no good checkpoint to keep" in err
        code, _, err = run_cli(capsys, "eval", run, "--device", "cpu")
        assert code == 2 and "checkpoint not found" in err
    # and the same folder takes a sensible run afresh
    code, _, err = run_cli(capsys, "train", "vae", "--preset", "tiny", "--data", "pokemon", "--steps", "3",
                           "--set", "sample_every=0", "--quiet", "--device", "cpu", "--out", run)
    assert code == 0, err
    assert [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()] == [3]


def test_gradient_free_models_keep_a_good_checkpoint_too(tmp_path):
    model = tiny_model("gmm", INFO)
    cfg = TrainConfig(steps=6, batch_size=16, checkpoint_every=2, sample_every=0, eval_every=-1)
    trainer = Trainer(model, random_dataset(INFO, n=50), cfg, tmp_path, model_name="gmm", quiet=True)
    trainer.callbacks.append(_poison_at(4, "mean"))  # after checkpoint 4: step 5's EM loss is NaN
    with pytest.raises(GenzooError, match=r"loss became nan at step 5; .*\(step 2\)"):
        trainer.fit()
    _assert_good(tmp_path, 2)


def test_stale_temporary_files_are_removed_when_training_starts(tmp_path):
    trainer = _pixelrnn_trainer(tmp_path, steps=4)
    trainer.fit()
    stale = [tmp_path / ".checkpoint.pt.x1y2.tmp", tmp_path / ".metrics.jsonl.abc.tmp"]
    for p in stale:
        p.write_bytes(b"PK half a checkpoint")
    resumed = _pixelrnn_trainer(tmp_path, steps=6)
    resumed.restore(load_checkpoint(tmp_path / "checkpoint.pt"))
    resumed.fit()
    assert not any(p.exists() for p in stale)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_new_run_into_a_folder_whose_run_died_before_its_first_checkpoint_starts_clean(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "run.json").write_text('{"model_name": "pixelcnn"}')
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 9.0}) + "\n" for s in (10, 20)))
    (run / "samples" / "step_0000010.png").write_bytes(b"old")
    code, _, err = run_cli(capsys, "train", "vae", "--preset", "tiny", "--data", "pokemon", "--steps", "4",
                           "--set", "log_every=2", "--set", "sample_every=0", "--device", "cpu", "--out", run)
    assert code == 0, err
    assert [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()] == [2, 4]
    assert not (run / "samples" / "step_0000010.png").exists()
    assert json.loads((run / "run.json").read_text())["model_name"] == "vae"
    notes = [ln for ln in err.splitlines() if "stopped before its first checkpoint" in ln]
    assert len(notes) == 1 and "metrics.jsonl" in notes[0] and "1 sample grids" in notes[0]


def test_resume_drops_a_log_line_cut_by_a_kill_and_names_a_corrupt_one(tmp_path):
    _pixelrnn_trainer(tmp_path, steps=4).fit()
    log = tmp_path / "metrics.jsonl"
    rows = log.read_text().splitlines()
    log.write_text("\n".join(rows) + "\n" + rows[-1][:25])  # the kill cut the last line short
    resumed = _pixelrnn_trainer(tmp_path, steps=8)
    resumed.restore(load_checkpoint(tmp_path / "checkpoint.pt"))
    assert log.read_text().splitlines() == rows
    resumed.fit()
    assert [json.loads(ln)["step"] for ln in log.read_text().splitlines()] == [4, 8]

    log.write_text(rows[0] + "\n{not json\n" + rows[-1] + "\n")
    before = log.read_bytes()
    again = _pixelrnn_trainer(tmp_path, steps=8)
    with pytest.raises(GenzooError, match=r"metrics\.jsonl:2: not a JSON line") as e:
        again.restore(load_checkpoint(tmp_path / "checkpoint.pt"))
    assert "\n" not in str(e.value) and log.read_bytes() == before


def test_same_seed_same_training(tmp_path):
    a = _pixelrnn_trainer(tmp_path / "a", steps=3)
    a.fit()
    b = _pixelrnn_trainer(tmp_path / "b", steps=3)
    b.fit()
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def test_autoregressive_models_refuse_continuous_data_before_writing_anything(tmp_path, capsys):
    from genzoo.models.registry import available_models

    names = [n for n, cls in available_models().items() if cls.family == "autoregressive"]
    assert "pixelcnn" in names and "pixelcnn_pp" in names
    for name in names:
        out = tmp_path / name
        code, _, err = run_cli(capsys, "train", name, "--data", "mixture:ring8", "--preset", "tiny", "--steps", "2",
                               "--quiet", "--device", "cpu", "--out", out)
        assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("genzoo: error:"), (name, err)
        assert not out.exists(), name
    code, _, err = run_cli(capsys, "train", "pixelcnn", "--data", "mixture:ring8", "--out", tmp_path / "p")
    assert "continuous" in err and "gmm" in err
