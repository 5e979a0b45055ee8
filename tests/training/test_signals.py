"""Signals a scheduler sends: SIGTERM (Slurm, Kubernetes) stops `genzoo train` like Ctrl-C -- a checkpoint
after the current step, one line, exit status 143 -- and `--resume` then reaches the very weights of a run
that was never stopped."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from genzoo.training.checkpoint import load_checkpoint

STEPS = 300


def _train(out, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # the same arithmetic in every process
    cmd = [sys.executable, "-m", "genzoo", "train", "vae", "--steps", str(STEPS), "--device", "cpu", "--quiet",
           "--out", str(out), *extra]
    if "--resume" not in extra:
        cmd += ["--preset", "tiny", "--data", "pokemon", "--seed", "5", "--set", "log_every=1", "--set",
                "sample_every=0", "--set", "checkpoint_every=100000"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _losses(run):
    import json

    return [(r["step"], r["loss"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


@pytest.mark.slow
def test_sigterm_checkpoints_exits_143_with_one_line_and_resume_matches_an_unstopped_run(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    reference = _train(full)  # alongside: the same seed, never stopped
    stopped = _train(part)
    deadline = time.monotonic() + 300  # a loaded machine can take minutes to start Python and torch
    while not ((part / "metrics.jsonl").exists() and (part / "metrics.jsonl").stat().st_size > 0):
        assert stopped.poll() is None, stopped.communicate()
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.01)
    stopped.send_signal(signal.SIGTERM)
    _, err = stopped.communicate(timeout=120)
    step = load_checkpoint(part / "checkpoint.pt")["step"]
    assert stopped.returncode == 143, err
    assert err.splitlines() == [f"genzoo: terminated at step {step}; checkpoint saved in {part}"]
    assert 0 < step < STEPS

    resumed = _train(part, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err
    a, b = load_checkpoint(full / "checkpoint.pt"), load_checkpoint(part / "checkpoint.pt")
    assert a["step"] == b["step"] == STEPS
    assert a["model"].keys() == b["model"].keys()
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert _losses(full) == _losses(part)  # the log of the stopped-and-resumed run has every step once
