"""The command line on the real embedded data, and its one-line errors with exit status 2."""
import json
from pathlib import Path

import pytest
from PIL import Image

from conftest import run_cli
from genzoo.cli import main

run = run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    code = main(["train", "pixelrnn", "--data", "pokemon", "--out", str(run_dir), "--preset", "tiny",
                 "--steps", "6", "--seed", "1", "--device", "cpu", "--quiet",
                 "--set", "sample_every=3", "--set", "checkpoint_every=3"])
    assert code == 0
    return run_dir


def test_train_writes_a_complete_run_folder(trained):
    assert {p.name for p in trained.iterdir()} >= {"checkpoint.pt", "run.json", "metrics.jsonl", "samples"}
    desc = json.loads((trained / "run.json").read_text())
    assert desc["model_name"] == "pixelrnn" and desc["model_config"]["hidden"] == 16
    assert desc["data"]["info"]["num_values"] == 167 and len(desc["data"]["info"]["palette"]) == 167
    rows = [json.loads(ln) for ln in (trained / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 6 and "test_bits_per_dim" in rows[-1] and rows[-1]["pixels_per_s"] > 0
    assert sorted(p.name for p in (trained / "samples").iterdir()) == ["step_0000003.png", "step_0000006.png"]


def test_sample_complete_eval(trained, tmp_path, capsys):
    code, _, err = run(capsys, "sample", trained, "-n", "9", "-o", tmp_path / "s.png", "--seed", "2", "--device", "cpu")
    assert code == 0, err
    assert Image.open(tmp_path / "s.png").size[0] > 60
    code, _, err = run(capsys, "complete", trained, "--mask", "bottom-half", "-o", tmp_path / "c.png",
                       "--images", "test:0-2", "--samples", "3", "--device", "cpu")
    assert code == 0, err
    w, h = Image.open(tmp_path / "c.png").size
    assert w > h  # 3 rows of original | shown | 3 completions
    code, out, err = run(capsys, "eval", trained, "--json", tmp_path / "e.json", "--device", "cpu")
    assert code == 0, err
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["split"] == "test" and res["n_images"] == 80 and res["checkpoint_step"] == 6
    assert res["bits_per_dim"] == pytest.approx(res["nll_nats"] / (400 * 0.6931471805599453))
    assert "bits/dim" in out


def test_same_seed_same_sample_file(trained, tmp_path, capsys):
    for name in ("a", "b"):
        assert run(capsys, "sample", trained, "-n", "4", "-o", tmp_path / f"{name}.png", "--seed", "7")[0] == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_resume_through_the_cli_continues_to_the_new_total(trained, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    code, _, err = run(capsys, "train", "pixelrnn", "--out", run_dir, "--resume", "--steps", "8", "--quiet")
    assert code == 0, err
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 8


@pytest.mark.parametrize("argv, needle", [
    (["train", "nosuchmodel", "--out", "{tmp}/r"], "unknown model 'nosuchmodel'; valid: "),
    (["train", "pixelrnn", "--out", "{tmp}/r", "--preset", "huge"], "valid: lecture"),
    (["train", "pixelrnn", "--out", "{tmp}/r", "--set", "hiden=3"], "unknown key 'hiden'"),
    (["train", "pixelrnn", "--out", "{tmp}/r", "--set", "hidden=many"], "hidden: 'many' is not an integer"),
    (["train", "pixelrnn", "--out", "{tmp}/r", "--set", "optimizer=lbfgs"], "valid: adam, adamw"),
    (["train", "pixelrnn", "--out", "{tmp}/r", "--set", "hidden"], "expected key=value"),
    (["train", "pixelrnn", "--out", "{tmp}/r", "--data", "nosuch:x"], "unknown dataset 'nosuch'"),
    (["train", "pixelrnn", "--out", "{tmp}/r", "--device", "tpu"], "unknown device"),
    (["sample", "{tmp}/missing", "-n", "2", "-o", "{tmp}/x.png"], "no such run folder"),
    (["complete", "{run}", "--mask", "top-half", "-o", "{tmp}/x.png"], "unknown mask 'top-half'; valid: bottom-half"),
    (["complete", "{run}", "--mask", "bottom-half", "-o", "{tmp}/x.png", "--images", "test:70-90"], "images 0-79"),
    (["sample", "{run}", "-n", "2", "-o", "{tmp}/x.jpg"], "must be a .png"),
    (["eval", "{run}", "--split", "valid"], "unknown split 'valid'; valid: train, test"),
    (["train", "pixelrnn", "--out", "{run}"], "already holds a run; pass --resume"),
])
def test_bad_options_are_one_line_errors_with_status_2(argv, needle, trained, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, run=trained) for a in argv]
    before = (trained / "checkpoint.pt").read_bytes()
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert needle in err and err.count("\n") == 1 and err.startswith("genzoo: error: ")
    assert not (tmp_path / "r").exists()
    assert (trained / "checkpoint.pt").read_bytes() == before


def test_models_and_datasets_list_what_is_registered(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0 and "pixelrnn" in out and "lecture" in out
    code, out, _ = run(capsys, "datasets")
    assert code == 0
    for syntax in ("pokemon", "folder:PATH", "binarized-mnist:PATH", "idx:PATH"):
        assert syntax in out


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path):
    """A real SIGINT to a real `genzoo train` process: checkpoint after the step, status 130, resumable."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "genzoo", "train", "pixelrnn", "--preset", "tiny", "--steps", "100000",
         "--out", str(run_dir), "--quiet", "--device", "cpu", "--set", "log_every=1",
         "--set", "checkpoint_every=100000", "--set", "sample_every=0", "--set", "eval_every=-1"],
        env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300  # a loaded machine can take minutes to start Python and torch
    while time.time() < deadline and not ((run_dir / "metrics.jsonl").exists()
                                          and (run_dir / "metrics.jsonl").read_text().count("\n") >= 3):
        time.sleep(0.1)
    assert (run_dir / "metrics.jsonl").read_text().count("\n") >= 3, "training did not start within 300 s"
    assert not (run_dir / "checkpoint.pt").exists()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err
    from genzoo.training.checkpoint import load_checkpoint

    step = load_checkpoint(run_dir / "checkpoint.pt")["step"]
    assert step >= 3
    assert main(["train", "pixelrnn", "--out", str(run_dir), "--resume", "--steps", str(step + 2), "--quiet"]) == 0
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == step + 2


def test_class_conditional_sampling_on_labelled_data(tmp_path, capsys):
    from conftest import SHARED_DATA

    run_dir = tmp_path / "cond"
    code, _, err = run(capsys, "train", "gated_pixelcnn", "--data", f"idx:{SHARED_DATA / 'mnist'}", "--out", run_dir,
                       "--preset", "tiny", "--set", "conditional=true", "--steps", "2", "--quiet",
                       "--set", "sample_every=0", "--set", "eval_every=-1")
    assert code == 0, err
    code, _, err = run(capsys, "sample", run_dir, "-n", "4", "--condition", "3", "-o", tmp_path / "three.png")
    assert code == 0, err
    code, _, err = run(capsys, "sample", run_dir, "-n", "4", "--condition", "12", "-o", tmp_path / "x.png")
    assert code == 2 and "classes 0-9" in err and not (tmp_path / "x.png").exists()


def test_unconditional_model_refuses_a_condition(trained, tmp_path, capsys):
    code, _, err = run(capsys, "sample", trained, "-n", "2", "--condition", "1", "-o", tmp_path / "x.png")
    assert code == 2 and "unconditional" in err


def test_folder_run_reloads_its_own_palette_for_eval(tmp_path, capsys):
    """A folder run saves its k-means palette; eval reloads the same images and reproduces the trainer's test NLL."""
    import numpy as np

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    run_dir = tmp_path / "run"
    code, _, err = run(capsys, "train", "pixelrnn", "--data", f"folder:{folder}", "--size", "8", "--colors", "5",
                       "--out", run_dir, "--preset", "tiny", "--steps", "3", "--quiet", "--set", "sample_every=0")
    assert code == 0, err
    desc = json.loads((run_dir / "run.json").read_text())
    assert desc["data"]["options"] == {"size": 8, "colors": 5} and len(desc["data"]["info"]["palette"]) == 5
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    code, _, err = run(capsys, "eval", run_dir, "--json", tmp_path / "e.json")
    assert code == 0, err
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["n_images"] == 2 and res["nll_nats"] == pytest.approx(last["test_nll_nats"], rel=1e-5)
