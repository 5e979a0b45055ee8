"""Every numeric CLI value, every output path and every size limit, tried as an adversarial user would.

Each bad value must give exit status 2, exactly one line on stderr that names the option (or the
file), and leave nothing created or changed: the run folder's files keep their bytes and no output
file appears. The cases are generated from the command registry, so a new option is fuzzed too.
"""
import argparse
import inspect
import typing
from pathlib import Path

import pytest

from conftest import run_cli
from genzoo.cli import COMMANDS, MAX_GRID_IMAGES, MAX_GRID_SIDE, MAX_SEED, main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    made = {}
    for name, model in (("ar", "pixelrnn"), ("vae", "vae")):
        made[name] = root / name
        assert main(["train", model, "--preset", "tiny", "--steps", "2", "--out", str(made[name]), "--quiet",
                     "--device", "cpu", "--set", "sample_every=0"]) == 0
    return made


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _base_argv(command: str, runs: dict, tmp: Path) -> list[str]:
    """A valid invocation of ``command`` that the fuzzed option is appended to."""
    ar, vae = str(runs["ar"]), str(runs["vae"])
    return {
        "train": ["train", "pixelrnn", "--preset", "tiny", "--out", str(tmp / "new_run"), "--quiet"],
        "sample": ["sample", ar, "-o", str(tmp / "out.png")],
        "complete": ["complete", ar, "--mask", "bottom-half", "-o", str(tmp / "out.png")],
        "eval": ["eval", ar, "--json", str(tmp / "out.json")],
        "reconstruct": ["reconstruct", vae, "-o", str(tmp / "out.png")],
        "traverse": ["traverse", vae, "--dims", "0", "1", "-o", str(tmp / "out.png")],
        "interpolate": ["interpolate", vae, "--between", "seed:1", "seed:2", "-o", str(tmp / "out.png")],
        "probe": ["probe", vae, "--json", str(tmp / "out.json")],
    }[command]


def _numeric_cases():
    """(command, flag, bad value) for every int/float option: non-finite, not a number, out of range."""
    for cmd in COMMANDS.values():
        hints = typing.get_type_hints(cmd.fn)
        for name in inspect.signature(cmd.fn).parameters:
            opt = cmd.opts[name]
            hint = hints[name]
            args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
            scalar = args[0]
            item = typing.get_args(scalar)
            scalar = item[0] if item else scalar
            if scalar not in (int, float) or opt.positional or cmd.name not in (
                    "train", "sample", "complete", "eval", "reconstruct", "traverse", "interpolate", "probe"):
                continue
            flag = (opt.flags or ("--" + name.replace("_", "-"),))[-1]
            width = opt.nargs if isinstance(opt.nargs, int) else 1
            bad = ["nan", "inf", "-inf", "abc"]
            if opt.lo is not None:
                bad.append(str(int(opt.lo) - 1) if scalar is int else str(opt.lo - 0.5))
            if opt.above is not None:
                bad.append(str(opt.above))
            if opt.hi is not None:
                bad.append(str(int(opt.hi) + 1))
            for value in bad:
                if scalar is int and value in ("nan", "inf", "-inf"):
                    value = value + "1"  # not an integer either way
                yield cmd.name, flag, [value] * width


NUMERIC = list(_numeric_cases())


def test_the_generated_cases_cover_every_numeric_option():
    flags = {(c, f) for c, f, _ in NUMERIC}
    assert ("sample", "-n") in flags and ("train", "--steps") in flags and ("traverse", "--range") in flags
    assert ("eval", "--batch-size") in flags and ("complete", "--samples") in flags and ("train", "--seed") in flags
    assert len(NUMERIC) > 80


def _assert_refused(capsys, argv, needle, watched: Path, tmp: Path):
    before = _snapshot(watched)
    tmp_before = sorted(p.name for p in tmp.iterdir())
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (argv, err)
    assert err.count("\n") == 1 and err.startswith("genzoo: error: "), err
    assert needle in err, (needle, err)
    assert _snapshot(watched) == before
    assert sorted(p.name for p in tmp.iterdir()) == tmp_before  # no output file, no new run folder


@pytest.mark.parametrize("command,flag,values", NUMERIC, ids=[f"{c} {f} {v[0]}" for c, f, v in NUMERIC])
def test_every_bad_number_is_one_line_naming_the_option(command, flag, values, runs, tmp_path, capsys):
    argv = _base_argv(command, runs, tmp_path) + [flag, *values]
    _assert_refused(capsys, argv, flag, runs["ar"], tmp_path)


@pytest.mark.parametrize("argv,needle", [
    (["sample", "{ar}", "-n", "1000000000", "-o", "{tmp}/x.png"], f"limit of {MAX_GRID_IMAGES:,}"),
    (["complete", "{ar}", "--mask", "bottom-half", "-o", "{tmp}/x.png", "--images", "test:0-99999999999"],
     "has images 0-79"),
    (["complete", "{ar}", "--mask", "bottom-half", "-o", "{tmp}/x.png", "--images", "test:0-79", "--samples",
      "500"], f"limit of {MAX_GRID_IMAGES:,}"),
    (["traverse", "{vae}", "--dims", "0", "1", "-o", "{tmp}/x.png", "--steps", "100000"], f"<= {MAX_GRID_SIDE}"),
    (["interpolate", "{vae}", "--between", "test:0", "bogus", "-o", "{tmp}/x.png"], "--between 'bogus'"),
    (["interpolate", "{vae}", "--between", "seed:1", f"seed:{2**70}", "-o", "{tmp}/x.png"], "--between"),
    (["train", "pixelrnn", "--out", "{tmp}/r", "--seed", str(2**70)], f"<= {MAX_SEED}"),
    (["train", "pixelrnn", "--out", "{tmp}/r", "--steps", "0"], "--steps 0: must be >= 1"),
    (["train", "pixelrnn", "--out", "{tmp}/r", "--epochs", "nan"], "--epochs nan"),
    (["train", "no-such-model", "--out", "{tmp}/r"], "unknown model 'no-such-model'"),
    (["sample", "{ar}", "-o", "{tmp}/x.png", "--naive", "--precision", "half"], "--precision"),
    (["eval", "{ar}", "--only", "nosection"], "unknown section 'nosection'"),
    (["complete", "{ar}", "--mask", "top", "-o", "{tmp}/x.png"], "unknown mask 'top'"),
])
def test_resource_bombs_and_bad_names_are_refused_before_any_work(argv, needle, runs, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, ar=runs["ar"], vae=runs["vae"]) for a in argv]
    _assert_refused(capsys, argv, needle, runs["ar"], tmp_path)


def test_output_paths_that_are_folders_or_files_in_the_way(runs, tmp_path, capsys):
    folder_png = tmp_path / "grid.png"
    folder_png.mkdir()
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    cases = [
        (["sample", runs["ar"], "-o", folder_png], "is a folder"),
        (["eval", runs["ar"], "--json", tmp_path], "must be a .json"),
        (["eval", runs["ar"], "--json", tmp_path / "d.json"], None),  # made a folder below
        (["train", "pixelrnn", "--preset", "tiny", "--out", a_file, "--steps", "1"], "is a file"),
        (["sample", runs["ar"], "-o", a_file / "x.png"], "is not a folder"),
    ]
    (tmp_path / "d.json").mkdir()
    cases[2] = (cases[2][0], "is a folder")
    for argv, needle in cases:
        _assert_refused(capsys, [str(a) for a in argv], needle, runs["ar"], tmp_path)


def test_a_classifier_run_cannot_sample_or_complete(tmp_path, capsys, idx_folder):
    clf = tmp_path / "clf"
    assert main(["train", "classifier", "--data", f"idx:{idx_folder}", "--preset", "tiny", "--steps", "1",
                 "--out", str(clf), "--quiet", "--set", "sample_every=0"]) == 0
    for argv in (["sample", clf, "-o", tmp_path / "x.png"],
                 ["complete", clf, "--mask", "bottom-half", "-o", tmp_path / "x.png"]):
        _assert_refused(capsys, [str(a) for a in argv], "does not generate images", clf, tmp_path)


def test_options_a_model_does_not_take_are_errors_not_ignored(runs, tmp_path, capsys):
    _assert_refused(capsys, ["sample", str(runs["vae"]), "-o", str(tmp_path / "x.png"), "--naive"],
                    "does not take the sampling option 'naive'", runs["vae"], tmp_path)


def test_every_option_has_help_and_every_default_is_shown(capsys):
    from genzoo.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sp in sub.choices.items():
        for action in sp._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.dest)
            default = action.default
            if action.option_strings and default not in (None, False) and not isinstance(default, bool):
                shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
                assert shown in sp.format_help().replace("\n", " ").replace("  ", " ") or "default" in action.help, \
                    (name, action.dest)
