"""Training in several processes (genzoo.training.distributed): 2 CPU processes over gloo, spawned here.

Each spawned group runs several scenarios in one process group (starting processes is the slow part);
the parent compares what the ranks saved with a single process doing the same work.
"""

from __future__ import annotations

import importlib.util
import json
import math
import multiprocessing as mp
import os
import signal
import socket
import time
import traceback
from pathlib import Path

import pytest
import torch

from conftest import random_dataset, tiny_info, tiny_model
from genzoo.errors import GenzooError
from genzoo.evaluation.callbacks import HeldOutLikelihood
from genzoo.metrics.likelihood import dataset_nll
from genzoo.training import distributed
from genzoo.training.callbacks import OnStep
from genzoo.training.checkpoint import load_checkpoint
from genzoo.training.config import TrainConfig
from genzoo.training.distributed import DistributedTrainer, ShardedStream, World
from genzoo.training.trainer import BatchStream, Trainer, TrainingInterrupted

WORLD = 2
TIMEOUT_S = 30  # seconds a rank waits in a collective


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cfg(**kw) -> TrainConfig:
    base = dict(batch_size=8, steps=1, log_every=1, sample_every=0, checkpoint_every=100, eval_every=-1)
    return TrainConfig(**{**base, **kw})


def _data(model_name: str):
    info = tiny_info(type(tiny_model(model_name)))
    return random_dataset(info, n=80)


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# -- what each rank runs -------------------------------------------------------------------------


def _train(name, run_dir, world, steps, resume_from_steps=None, seed=0, **cfg):
    """Train ``name`` for ``steps`` (after a run stopped at ``resume_from_steps``, when given)."""
    data = _data(name)
    if resume_from_steps:
        torch.manual_seed(seed)
        first = DistributedTrainer(
            tiny_model(name, seed=seed), data, _cfg(steps=resume_from_steps, **cfg), run_dir,
            world=world, model_name=name, seed=seed, quiet=True,
        )  # fmt: skip
        first.fit()
        state = load_checkpoint(Path(run_dir) / "checkpoint.pt")
        torch.manual_seed(seed)
        t = DistributedTrainer(
            tiny_model(name, seed=seed + 1), data, _cfg(steps=steps, **cfg), run_dir,
            world=world, model_name=name, seed=seed, quiet=True,
        )  # fmt: skip
        t.restore(state)
    else:
        torch.manual_seed(seed)
        t = DistributedTrainer(
            tiny_model(name, seed=seed), data, _cfg(steps=steps, **cfg), run_dir,
            world=world, model_name=name, seed=seed, quiet=True,
        )  # fmt: skip
    last = t.fit()
    return _weights(t.model), last


def _scenarios(world: World, tmp: Path) -> dict:
    r = world.rank
    out: dict = {}
    # one SGD step and two Adam steps of a model without batch norm; each rank writes into its own folder
    out["sgd"] = _train("pixelcnn", tmp / f"sgd{r}", world, 1, optimizer="sgd", lr=0.5, sample_every=1)[0]
    out["files"] = sorted(str(p.relative_to(tmp / f"sgd{r}")) for p in (tmp / f"sgd{r}").rglob("*") if p.is_file())
    # a GAN whose discriminator has batch norm (dcgan: conv, d_norm=batch)
    out["dcgan"], out["dcgan_last"] = _train("dcgan", tmp / f"dcgan{r}", world, 3)
    # interrupted (2 steps, then a new trainer resumes) equals uninterrupted (4 steps); the VAE's noise differs by rank
    out["vae_whole"] = _train("vae", tmp / "vae_a", world, 4, checkpoint_every=2)[0]
    out["vae_resumed"] = _train("vae", tmp / "vae_b", world, 4, resume_from_steps=2, checkpoint_every=2)[0]
    # EM: the mixture sums its statistics over the ranks
    out["gmm"] = _train("gmm", tmp / f"gmm{r}", world, 2, batch_size=16)[0]
    out["stopped"] = _stopped(world, tmp)
    # a time budget: each rank's clock differs, every rank stops after the same step
    out["budget"] = _train("pixelcnn", tmp / f"budget{r}", world, 10_000, time_budget_s=0.5, log_every=3)[1]
    torch.save(out, tmp / f"rank{r}.pt")
    # last: rank 1 dies in the middle of a run
    out["killed"] = _killed(world, tmp)
    return out


def _stopped(world: World, tmp: Path) -> dict:
    """SIGTERM reaches rank 1 alone during step 2: every rank stops after step 3 with a checkpoint."""

    def signal_rank_1(trainer):
        if world.rank == 1 and trainer.step == 2:
            trainer._request_stop(signal.SIGTERM, None)

    stopper = OnStep(signal_rank_1)
    stopper.every_rank = True
    torch.manual_seed(0)
    t = DistributedTrainer(
        tiny_model("pixelcnn"), _data("pixelcnn"), _cfg(steps=50), tmp / "stopped",
        world=world, model_name="pixelcnn", seed=0, quiet=True, callbacks=[stopper],
    )  # fmt: skip
    try:
        t.fit()
    except TrainingInterrupted as e:
        return {"exit_code": e.exit_code, "step": t.step}
    return {"exit_code": 0, "step": t.step}


def _killed(world: World, tmp: Path) -> dict:
    def die(trainer):
        if world.rank == 1 and trainer.step == 2:
            os.kill(os.getpid(), signal.SIGKILL)

    killer = OnStep(die)
    killer.every_rank = True
    torch.manual_seed(0)
    t = DistributedTrainer(
        tiny_model("pixelcnn"), _data("pixelcnn"), _cfg(steps=50, checkpoint_every=1), tmp / "killed",
        world=world, model_name="pixelcnn", seed=0, quiet=True, callbacks=[killer],
    )  # fmt: skip
    t0 = time.perf_counter()
    try:
        t.fit()
    except GenzooError as e:
        return {"error": str(e), "seconds": time.perf_counter() - t0, "step": t.step}
    return {"error": None, "seconds": time.perf_counter() - t0, "step": t.step}


def _worker(rank: int, port: int, tmp: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    os.environ[distributed.TIMEOUT_ENV] = str(TIMEOUT_S)
    torch.set_num_threads(1)
    result: dict
    try:
        world, _ = distributed.setup("cpu")
        result = _scenarios(world, Path(tmp))
    except BaseException:  # the parent reports it
        result = {"crash": traceback.format_exc()}
    torch.save(result, Path(tmp) / f"rank{rank}.pt")
    os._exit(0)  # no teardown of a group whose peer is gone


def _spawn(tmp: Path, timeout: float = 300) -> list[dict | None]:
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, str(tmp))) for r in range(WORLD)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    for p in procs:
        if p.is_alive():
            p.kill()
    results = []
    for r in range(WORLD):
        path = tmp / f"rank{r}.pt"
        results.append(torch.load(path, weights_only=False) if path.exists() else None)
    return results


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    results = _spawn(tmp)
    for r, res in enumerate(results):
        assert res is not None, f"rank {r} wrote nothing"
        assert "crash" not in res, res["crash"]
    assert "killed" not in results[1]  # rank 1 died in the last scenario
    return results, tmp


def _single(name, tmp, steps, **cfg):
    torch.manual_seed(0)
    t = Trainer(tiny_model(name), _data(name), _cfg(steps=steps, **cfg), tmp, model_name=name, seed=0, quiet=True)
    t.fit()
    return _weights(t.model)


def _close(a: dict, b: dict, atol=1e-6, rtol=1e-5) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=rtol, msg=k)


# -- the properties -----------------------------------------------------------------------------


def test_ddp_steps_on_two_ranks_equal_one_process_on_the_whole_batch(ranks, tmp_path):
    (r0, r1), _ = ranks
    _close(r0["sgd"], _single("pixelcnn", tmp_path / "sgd", 1, optimizer="sgd", lr=0.5))
    for key in ("sgd", "dcgan", "gmm"):  # every rank holds the same weights
        _close(r0[key], r1[key], atol=0, rtol=0)
    before = tiny_model("pixelcnn").state_dict()
    assert any(not torch.equal(before[k], r0["sgd"][k]) for k in before)  # the step did change the weights


def test_em_sums_its_statistics_over_the_ranks(ranks, tmp_path):
    (r0, _), _ = ranks
    _close(r0["gmm"], _single("gmm", tmp_path / "gmm", 2, batch_size=16), atol=1e-9, rtol=1e-9)


def test_only_rank_0_writes_files(ranks):
    (r0, r1), _ = ranks
    assert {"checkpoint.pt", "metrics.jsonl"} <= set(r0["files"])
    assert any(f.startswith("samples/") for f in r0["files"])
    assert r1["files"] == []


def test_a_gan_with_a_batch_norm_discriminator_trains(ranks):
    (r0, _), _ = ranks
    assert any("running_mean" in k for k in r0["dcgan"])  # the discriminator does have batch norm
    assert all(torch.isfinite(v).all() for v in r0["dcgan"].values() if v.is_floating_point())
    assert {"discriminator/loss", "generator/loss"} <= set(r0["dcgan_last"])


def test_resumed_under_ddp_equals_uninterrupted(ranks):
    (r0, r1), _ = ranks
    _close(r0["vae_whole"], r0["vae_resumed"], atol=0, rtol=0)
    _close(r1["vae_whole"], r1["vae_resumed"], atol=0, rtol=0)


def test_ranks_see_disjoint_shards_whose_union_is_the_epoch():
    data = _data("pixelcnn")
    whole = BatchStream(data, "train", 8, seed=3)
    shards = [ShardedStream(BatchStream(data, "train", 8, seed=3), World(r, 2)) for r in range(2)]

    def rows(x):
        return {tuple(im.flatten().tolist()) for im in x}

    epochs = []
    for e in range(2):
        seen = [set(), set()]
        for i in range(e * whole.per_epoch, (e + 1) * whole.per_epoch):
            parts = [s.batch(i)["x"] for s in shards]
            assert all(len(p) == 4 for p in parts)  # B / N each
            assert rows(torch.cat(parts)) == rows(whole.batch(i)["x"])
            for r in range(2):
                seen[r] |= rows(parts[r])
        assert not seen[0] & seen[1]
        assert len(seen[0] | seen[1]) == whole.per_epoch * 8
        epochs.append(seen[0])
    assert epochs[0] != epochs[1]  # the order changes with the epoch


def test_a_batch_that_does_not_divide_among_the_ranks_is_a_one_line_error():
    data = _data("pixelcnn")
    with pytest.raises(GenzooError, match="batch_size=9 does not divide among 2 processes"):
        ShardedStream(BatchStream(data, "train", 9, seed=0), World(0, 2))


def test_a_changed_world_size_is_a_one_line_error():
    with pytest.raises(GenzooError, match="written by a run of 2 process"):
        distributed.check_world_size({"world_size": 2}, World(), "run/checkpoint.pt")


def test_a_signal_on_one_rank_stops_every_rank_after_the_same_step(ranks):
    (r0, r1), tmp = ranks
    assert r0["stopped"] == r1["stopped"] == {"exit_code": 143, "step": 3}
    assert load_checkpoint(tmp / "stopped" / "checkpoint.pt")["step"] == 3


def test_ranks_agree_on_the_step_a_time_budget_ends(ranks):
    (r0, r1), _ = ranks
    assert r0["budget"]["step"] == r1["budget"]["step"] < 10_000
    assert r0["budget"].get("loss") == r1["budget"].get("loss")  # the logged loss is the mean over ranks


def test_a_killed_rank_stops_the_others_with_one_line_within_the_timeout(ranks):
    (r0, _), tmp = ranks
    killed = r0["killed"]
    assert killed["error"] and "\n" not in killed["error"], killed
    assert "rank 0 of 2" in killed["error"] and "--resume" in killed["error"]
    assert killed["seconds"] < TIMEOUT_S + 5
    assert (tmp / "killed" / "checkpoint.pt").exists()  # the last checkpoint, to resume from


def test_bf16_training_runs_and_evaluates_in_fp32(tmp_path):
    data = _data("pixelcnn")
    torch.manual_seed(0)
    t = Trainer(
        tiny_model("pixelcnn"), data, _cfg(steps=2, precision="bf16", eval_every=2), tmp_path,
        model_name="pixelcnn", seed=0, quiet=True, callbacks=[HeldOutLikelihood("test")],
    )  # fmt: skip
    calls = []
    own = t.model.player_loss

    def spy(player, batch):
        calls.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return own(player, batch)

    t.model.player_loss = spy
    last = t.fit()
    assert torch.isfinite(torch.tensor(last["loss"]))
    assert calls == [torch.bfloat16, torch.bfloat16]  # each training loss under bf16 autocast
    fp32 = dataset_nll(t.model, data, "test")["nll_nats"]
    assert last["test_nll_nats"] == pytest.approx(fp32, rel=1e-6)  # held-out NLL in fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = dataset_nll(t.model, data, "test")["nll_nats"]
    assert bf16 != pytest.approx(fp32, rel=1e-6)  # ... which bf16 would not have given


def test_fp16_keeps_one_loss_scale_per_player_in_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    t = Trainer(
        tiny_model("gan"), _data("gan"), _cfg(steps=2, precision="fp16", checkpoint_every=1), tmp_path,
        model_name="gan", seed=0, quiet=True,
    )  # fmt: skip
    t.fit()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert set(state["scalers"]) == {"discriminator", "generator"}
    fresh = Trainer(
        tiny_model("gan"), _data("gan"), _cfg(steps=3, precision="fp16"), tmp_path, model_name="gan", seed=0, quiet=True
    )
    fresh.restore(state)
    assert fresh.engine.scalers["generator"].get_scale() == t.engine.scalers["generator"].get_scale()


def _device_check():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "device_check.py"
    spec = importlib.util.spec_from_file_location("device_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_device_check_stops_at_once_with_one_line_without_cuda(capsys):
    assert _device_check().main(["--out", "unused.json"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no CUDA device" in err and "\n" not in err
    assert not Path("unused.json").exists()


def test_device_check_smoke_on_cpu_trains_samples_and_evaluates(tmp_path):
    out = tmp_path / "check.json"
    assert (
        _device_check().main(
            [
                "--device",
                "cpu",
                "--smoke",
                "--models",
                "pixelcnn,dcgan",
                "--mnist-models",
                "pixelcnn,vae",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert all(r["ok"] and r["sample_shape"][0] == 4 for r in result["models"].values())
    assert math.isfinite(result["models"]["pixelcnn"]["test_nll_nats"])
    assert set(result["mnist"]["runs"]) == {"pixelcnn", "vae"}
    assert all(math.isfinite(r["test"]["nll_nats"]) for r in result["mnist"]["runs"].values())
    assert "test_importance" in result["mnist"]["runs"]["vae"]
    pair = result["precision"]
    assert pair["fp32"]["test_nll_nats"] != pair["bf16"]["test_nll_nats"]  # two runs, two precisions
    assert abs(pair["bf16_minus_fp32_nll_nats"]) < 1.0  # after 2 steps the two barely differ
