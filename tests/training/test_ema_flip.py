"""Polyak averaging (ema) and horizontal-flip augmentation (hflip): the average is the formula's, it is
what sampling and evaluation load, a resumed run restores it exactly; flips are left-right only and
leave the split alone."""

import json

import pytest
import torch

from conftest import random_dataset
from genzoo.data import ImageInfo
from genzoo.errors import GenzooError
from genzoo.training.callbacks import OnStep
from genzoo.training.checkpoint import load_checkpoint
from genzoo.training.config import TrainConfig
from genzoo.training.ema import WeightAverage, ema_decay
from genzoo.training.run import load_run
from genzoo.training.trainer import BatchStream, Trainer, TrainingInterrupted

INFO = ImageInfo(channels=1, height=4, width=5, num_values=5)


def _trainer(run_dir, steps=9, ema=0.9, hflip=True, callbacks=None):
    from genzoo.models.autoregressive.pixelrnn import PixelRNN, PixelRNNConfig

    torch.manual_seed(0)
    model = PixelRNN(PixelRNNConfig(hidden=8, layers=2, dropout=0.2), INFO)
    cfg = TrainConfig(steps=steps, batch_size=8, checkpoint_every=4, sample_every=0, eval_every=-1, ema=ema,
                      hflip=hflip)
    return Trainer(model, random_dataset(INFO, n=40), cfg, run_dir, model_name="pixelrnn", seed=3, quiet=True,
                   callbacks=callbacks)


def test_ema_follows_the_formula(tmp_path):
    seen = []  # the trained weights after each round
    trainer = _trainer(tmp_path / "run", steps=7, callbacks=[])
    initial = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.callbacks.insert(0, OnStep(lambda t: seen.append([p.detach().clone() for p in t.model.parameters()])))
    trainer.fit()
    avg = initial
    for t, weights in enumerate(seen, start=1):
        d = min(0.9, (1 + t) / (10 + t))
        assert d == ema_decay(0.9, t)
        avg = [d * a + (1 - d) * w for a, w in zip(avg, weights)]
    for a, e in zip(avg, trainer.ema.model.parameters()):
        torch.testing.assert_close(e, a, rtol=1e-6, atol=1e-7)
    assert not torch.equal(avg[0], seen[-1][0])  # the average is not simply the last weights


def test_ema_copies_buffers_and_lerps_parameters():
    net = torch.nn.BatchNorm1d(3)
    avg = WeightAverage(net, 0.5)
    with torch.no_grad():
        net.weight.fill_(3.0)
        net.running_mean.fill_(7.0)
    avg.update(net, step=100)  # d = 0.5
    assert torch.allclose(avg.model.weight, torch.full((3,), 2.0))  # 0.5 * 1 + 0.5 * 3
    assert torch.equal(avg.model.running_mean, net.running_mean)
    assert not avg.model.training and not any(p.requires_grad for p in avg.model.parameters())


def test_sample_and_eval_load_the_average(tmp_path):
    trainer = _trainer(tmp_path / "run")
    trainer.fit()
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    for k, v in trainer.ema.model.state_dict().items():
        assert torch.equal(state["ema"][k], v)
        assert torch.equal(state["model"][k], trainer.model.state_dict()[k])  # the trained weights, for resume
    loaded = load_run(tmp_path / "run")
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, trainer.ema.model.state_dict()[k]), k
    assert any(not torch.equal(v, trainer.model.state_dict()[k]) for k, v in loaded.model.state_dict().items())


def test_resume_restores_the_average_exactly(tmp_path):
    full = _trainer(tmp_path / "full")
    full.fit()

    def stop_at_5(t):
        if t.step == 5:
            t._request_stop(None, None)

    part = _trainer(tmp_path / "part", callbacks=[OnStep(stop_at_5)])
    with pytest.raises(TrainingInterrupted):
        part.fit()
    torch.manual_seed(999)
    resumed = _trainer(tmp_path / "part")
    resumed.restore(load_checkpoint(tmp_path / "part" / "checkpoint.pt"))
    resumed.fit()
    for a, b in ((full.model, resumed.model), (full.ema.model, resumed.ema.model)):
        for k, v in a.state_dict().items():
            assert torch.equal(v, b.state_dict()[k]), k


def test_resume_without_the_average_is_refused(tmp_path):
    plain = _trainer(tmp_path / "run", ema=0.0)
    plain.fit()
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    with pytest.raises(GenzooError, match="no averaged weights"):
        _trainer(tmp_path / "run").restore(state)


def test_ema_must_be_below_one():
    with pytest.raises(ValueError, match="ema"):
        TrainConfig(ema=1.0)


def test_hflip_mirrors_left_right_only_and_keeps_the_split():
    data = random_dataset(INFO, n=40)
    before = {k: v.clone() for k, v in data.splits.items()}
    plain, flipped = BatchStream(data, "train", 8, seed=1), BatchStream(data, "train", 8, seed=1, hflip=True)
    n_flipped = 0
    for i in range(12):
        a, b = plain.batch(i)["x"], flipped.batch(i)["x"]
        for x, y in zip(a, b):
            same, mirrored = torch.equal(x, y), torch.equal(x.flip(-1), y)
            assert same or mirrored  # never up-down, never another image
            n_flipped += mirrored and not same
        assert torch.equal(flipped.batch(i)["x"], b)  # a pure function of (seed, batch index)
    assert 0.3 * 96 < n_flipped < 0.7 * 96
    assert all(torch.equal(before[k], v) for k, v in data.splits.items())
    assert set(before) == set(data.splits)


def test_hflip_refused_on_points(tmp_path):
    from genzoo.data import load_dataset
    from genzoo.models.gan.gan import GAN

    data = load_dataset("mixture:ring8")
    model = GAN(GAN.Config(latent_dim=2, g_hidden=(4,), d_hidden=(4,)), data.info)
    with pytest.raises(GenzooError, match="hflip"):
        Trainer(model, data, TrainConfig(hflip=True), tmp_path, model_name="gan")


def test_logging_only_rounds_compute_the_logged_numbers_and_training_is_the_same(tmp_path):
    """Rounds that are not logged skip the losses' logged-only numbers (a GAN's diagnostics): the weights
    come out identical whatever log_every is, and every logged row still has them."""
    from genzoo.data import load_dataset
    from genzoo.models.gan.gan import GAN

    data = load_dataset("mixture:ring8")
    weights, rows = [], []
    for every in (1, 7):
        torch.manual_seed(0)
        model = GAN(GAN.Config(latent_dim=2, g_hidden=(8,), d_hidden=(8,)), data.info)
        cfg = TrainConfig(steps=15, batch_size=16, log_every=every, checkpoint_every=10, sample_every=0, eval_every=-1)
        run = tmp_path / f"every{every}"
        Trainer(model, data, cfg, run, model_name="gan", seed=1, quiet=True).fit()
        weights.append(model.state_dict())
        rows.append([json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()])
    for k, v in weights[0].items():
        assert torch.equal(v, weights[1][k]), k
    assert [r["step"] for r in rows[1]] == [7, 10, 14, 15]
    for r in rows[1]:
        assert {"generator/sample_spread", "generator/g_grad_norm", "discriminator/loss"} <= set(r)
    by_step = {r["step"]: r for r in rows[0]}
    for r in rows[1]:
        assert r["generator/loss"] == by_step[r["step"]]["generator/loss"]


def test_vae_pictures_palette_data_in_the_colour_nearest_the_expected_rgb():
    from genzoo.data.continuous import from_unit
    from genzoo.models.autoencoders.vae import VAE

    palette = ((255, 255, 255), (200, 30, 30), (30, 200, 30), (30, 30, 200), (0, 0, 0))
    info = ImageInfo(channels=1, height=4, width=4, num_values=5, palette=palette)
    torch.manual_seed(0)
    vae = VAE(VAE.Config(arch="mlp", hidden=(8,), latent_dim=2, decoder="categorical"), info).eval()
    z = torch.randn(6, 2)
    with torch.no_grad():
        params = vae.decoder_params(z)
        expected = vae.head.mean_unit(params)  # (6, 3, 4, 4)
        x = vae.decode(z)
    assert torch.equal(x, from_unit(expected, info))
    rgb = torch.tensor(palette, dtype=torch.float) / 255
    picked = rgb[x[:, 0]].permute(0, 3, 1, 2)  # (6, 3, 4, 4)
    dist = ((expected.unsqueeze(-1) - rgb.t().view(1, 3, 1, 1, 5)) ** 2).sum(1)  # (6, 4, 4, 5)
    assert torch.allclose(((picked - expected) ** 2).sum(1), dist.min(-1).values, atol=1e-6)
