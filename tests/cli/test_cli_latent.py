"""The latent-model commands on a real (tiny) VAE run on the embedded Pokémon data: reconstruct,
traverse, interpolate, complete, probe-style errors, and eval's bounds with their protocols."""
import json

import pytest
from PIL import Image

from conftest import run_cli
from genzoo.cli import main

run = run_cli


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("latent") / "vae"
    code = main(["train", "vae", "--data", "pokemon", "--out", str(run_dir), "--preset", "tiny", "--steps", "6",
                 "--device", "cpu", "--quiet", "--set", "sample_every=0"])
    assert code == 0
    return run_dir


def test_reconstruct_traverse_interpolate_write_figures(vae_run, tmp_path, capsys):
    code, _, err = run(capsys, "reconstruct", vae_run, "-o", tmp_path / "r.png", "--images", "test:0-7")
    assert code == 0, err
    assert Image.open(tmp_path / "r.png").size[1] > 2 * 20  # two rows of 20-px sprites, upscaled
    code, _, err = run(capsys, "traverse", vae_run, "--dims", "0", "1", "--range", "-2", "2", "--steps", "5",
                       "-o", tmp_path / "t.png")
    assert code == 0, err
    w, h = Image.open(tmp_path / "t.png").size
    assert w >= 5 * 20 * 4 and h >= 5 * 20 * 4  # a 5x5 grid of upscaled sprites
    for ends in (["test:4", "test:9"], ["seed:1", "seed:2"]):
        code, _, err = run(capsys, "interpolate", vae_run, "--between", *ends, "--steps", "6", "-o", tmp_path / "i.png")
        assert code == 0, err
    code, _, err = run(capsys, "complete", vae_run, "--mask", "right-half", "-o", tmp_path / "c.png",
                       "--images", "test:0-1", "--samples", "2")
    assert code == 0, err


def test_eval_reports_elbo_iwae_and_importance_sampling_with_k_recorded(vae_run, tmp_path, capsys):
    code, out, err = run(capsys, "eval", vae_run, "--json", tmp_path / "e.json", "--k", "40", "--k-iwae", "5",
                         "--max-images", "6", "--samples", "30")
    assert code == 0, err
    res = json.loads((tmp_path / "e.json").read_text())
    by = {(m["metric"], m["unit"]): m for m in res["metrics"]}
    elbo = by[("negative_elbo", "nats/image")]
    iwae, is_nll = by[("negative_iwae_bound", "nats/image")], by[("nll", "nats/image")]
    assert elbo["protocol"]["images"] == 80 and elbo["protocol"]["estimator"] == "ELBO (bound)"
    assert iwae["protocol"]["k"] == 5 and is_nll["protocol"]["k"] == 40 and is_nll["protocol"]["images"] == 6
    # From the same k draws, log mean_k w >= mean over groups of log mean_5 w (Jensen): IS NLL <= IWAE NLL.
    assert is_nll["value"] <= iwae["value"] + 1e-9
    assert by[("nll", "bits/dim")]["value"] == pytest.approx(is_nll["value"] / (400 * 0.6931471805599453))
    near = by[("near_copy_share", "fraction of samples")]
    assert near["protocol"]["samples"] == 30 and near["protocol"]["train_images"] == 712
    assert (tmp_path / "eval_nearest.png").exists()
    assert "importance sampling" in out


@pytest.mark.parametrize("argv, needle", [
    (["traverse", "{run}", "--dims", "0", "-o", "{tmp}/t.png"], "two code dimensions"),
    (["traverse", "{run}", "--dims", "0", "99", "-o", "{tmp}/t.png"], "dimensions 0-1"),
    (["interpolate", "{run}", "--between", "test:0", "-o", "{tmp}/i.png"], "two endpoints"),
    (["interpolate", "{run}", "--between", "test:0", "seed:x", "-o", "{tmp}/i.png"], "seed:N"),
    (["interpolate", "{run}", "--between", "test:0", "test:999", "-o", "{tmp}/i.png"], "images 0-79"),
    (["reconstruct", "{run}", "-o", "{tmp}/r.jpg"], "must be a .png"),
    (["eval", "{run}", "--only", "modes"], "not applicable"),
    (["eval", "{run}", "--k", "0"], "must be >= 1"),
    (["probe", "{run}"], "has none"),
])
def test_bad_latent_options_are_one_line_errors(argv, needle, vae_run, tmp_path, capsys):
    argv = [a.format(run=vae_run, tmp=tmp_path) for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


def test_models_without_a_code_say_so(tmp_path, capsys):
    run_dir = tmp_path / "ar"
    assert main(["train", "pixelrnn", "--preset", "tiny", "--steps", "2", "--out", str(run_dir), "--quiet",
                 "--set", "sample_every=0"]) == 0
    code, _, err = run(capsys, "traverse", run_dir, "--dims", "0", "1", "-o", tmp_path / "t.png")
    assert code == 2 and "has no code space" in err
