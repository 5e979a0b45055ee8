"""genzoo translate: rows of input | output | target from a trained translation run."""

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 3)):
        (root / split).mkdir()
        for i in range(n):
            a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(root / split / f"{i}.png")
    return root


def test_train_and_translate_a_paired_run(pairs, tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(
        capsys,
        "train",
        "pix2pix",
        "--preset",
        "tiny",
        "--data",
        f"paired:{pairs}",
        "--size",
        32,
        "--direction",
        "BtoA",
        "--steps",
        2,
        "--out",
        run,
        "--quiet",
        "--device",
        "cpu",
    )
    assert code == 0, err
    out = tmp_path / "t.png"
    code, _, err = run_cli(capsys, "translate", run, "--images", "test:0-1", "-o", out, "--device", "cpu")
    assert code == 0, err
    assert "2 test images as rows of input | output | target" in err
    w, h = Image.open(out).size
    assert (w - 2) * 2 == (h - 2) * 3  # three columns, two rows of equal tiles
    code, _, err = run_cli(capsys, "translate", run, "--images", "test:0-9", "-o", out)
    assert code == 2 and err.startswith("genzoo: error:") and "test:0-9" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "translate", run, "--images", "test:0", "-o", out, "--condition", 2)
    assert code == 2 and "unconditional" in err


def test_translate_refuses_other_runs_and_direction_for_other_data(tmp_path, capsys):
    run = tmp_path / "gan"
    code, _, err = run_cli(capsys, "train", "gan", "--preset", "tiny", "--steps", 1, "--out", run, "--quiet")
    assert code == 0, err
    code, _, err = run_cli(capsys, "translate", run, "-o", tmp_path / "x.png")
    assert code == 2 and "does not translate images" in err and "pix2pix" in err
    code, _, err = run_cli(
        capsys, "train", "gan", "--preset", "tiny", "--steps", 1, "--out", tmp_path / "g2", "--direction", "AtoB"
    )
    assert code == 2 and "--direction: applies to paired:PATH data" in err
