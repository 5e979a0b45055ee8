"""Hostile checkpoints, config values and run/eval JSON files: refused at the boundary.

Every case goes through the real command line (in-process) and must exit with status 2, print
exactly one line on stderr naming the file and the offending key and value, and create or change
nothing: the run folder's files keep their bytes and no output file appears.
"""
import gzip
import json
import math
import os
import random
import resource
import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import run_cli, tiny_info
from genzoo.data import ImageDataset, ImageInfo, every_tenth_split, load_dataset
from genzoo.errors import GenzooError
from genzoo.evaluation.sections import data_identity, modes_section, with_data_identity
from genzoo.io import read_json, write_json
from genzoo.models.registry import (
    MAX_MODULES,
    MAX_PARAMETERS,
    available_models,
    build_model_checked,
    get_model_class,
    make_config,
    resolve_configs,
)
from genzoo.training.checkpoint import load_checkpoint
from genzoo.training.config import TrainConfig

JSON_KEYS = ("model_config", "train_config", "data")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "run"
    code = run_cli_plain("train", "pixelrnn", "--data", "pokemon", "--preset", "tiny", "--steps", "2", "--out", out,
                         "--device", "cpu", "--quiet", "--set", "sample_every=0", "--set", "eval_every=-1")
    assert code == 0
    return out


def run_cli_plain(*argv) -> int:
    from genzoo.cli import main

    return main([str(a) for a in argv])


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(capsys, *argv) -> str:
    """Run the CLI; assert exit 2 and exactly one ``genzoo: error:`` line; return that line."""
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("genzoo: error: "), err
    return lines[0]


def hostile_copy(run_dir: Path, dest: Path, mutate) -> Path:
    """A copy of the run whose checkpoint has been edited by ``mutate(state)`` (configs as dicts)."""
    shutil.copytree(run_dir, dest)
    state = torch.load(dest / "checkpoint.pt", weights_only=True)
    for key in JSON_KEYS:
        state[key] = json.loads(state[key])
    mutate(state)
    for key in JSON_KEYS:
        state[key] = json.dumps(state[key])
    torch.save(state, dest / "checkpoint.pt")
    return dest


def setter(*path, value):
    def mutate(state):
        target = state
        for k in path[:-1]:
            target = target[k]
        target[path[-1]] = value
    return mutate


def deleter(key):
    return lambda state: state.pop(key)


# -- hostile checkpoints ------------------------------------------------------------------------------
CHECKPOINT_CASES = {
    "no seed": (deleter("seed"), ["missing key 'seed'"]),
    "step is text": (setter("step", value="abc"), ["step='abc'"]),
    "step negative": (setter("step", value=-1), ["step=-1"]),
    "batches fractional": (setter("batches", value=1.5), ["batches=1.5"]),
    "seed beyond int64": (setter("seed", value=2**70), ["seed=1180591620717411303424"]),
    "hidden fractional": (setter("model_config", "hidden", value=16.5), ["hidden", "16.5"]),
    "hidden huge": (setter("model_config", "hidden", value=10**12), ["hidden=1000000000000", "500,000,000"]),
    "hidden negative": (setter("model_config", "hidden", value=-3), ["hidden", "-3"]),
    "dropout nan": (setter("model_config", "dropout", value=math.nan), ["dropout", "nan"]),
    "unknown model key": (setter("model_config", "hiden", value=3), ["'hiden'"]),
    "model config a list": (setter("model_config", value=[1, 2]), ["must be a mapping", "list"]),
    "lr nan": (setter("train_config", "lr", value=math.nan), ["lr", "nan"]),
    "temperature negative": (setter("train_config", "temperature", value=-1), ["temperature", "-1"]),
    "grad_clip text": (setter("train_config", "grad_clip", value="x"), ["grad_clip", "'x'"]),
    "num_values text": (setter("data", "info", "num_values", value="many"), ["num_values='many'"]),
    "height negative": (setter("data", "info", "height", value=-20), ["height=-20"]),
    "palette value 300": (setter("data", "info", "palette", 3, value=[300, 0, 0]), ["palette", "300"]),
    "spec a number": (setter("data", "spec", value=5), ["spec=5"]),
    "data a string": (setter("data", value="pokemon"), ["data must be a mapping", "'pokemon'"]),
    "options a list": (setter("data", "options", value=[1]), ["options=[1]"]),
    "model name a number": (setter("model_name", value=5), ["unknown model 5"]),
    "weights a list": (setter("model", value=[1, 2]), ["model weights"]),
    "rng not a tensor": (setter("rng", value={"torch": [1, 2, 3]}), ["rng"]),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_a_hostile_checkpoint_value_is_one_line_naming_file_key_and_value(case, run_dir, tmp_path, capsys):
    mutate, needles = CHECKPOINT_CASES[case]
    bad = hostile_copy(run_dir, tmp_path / "bad", mutate)
    before = snapshot(bad)
    line = refused(capsys, "sample", bad, "-n", "1", "-o", tmp_path / "s.png", "--device", "cpu")
    assert str(bad / "checkpoint.pt") in line
    for needle in needles:
        assert needle in line, line
    assert not (tmp_path / "s.png").exists() and snapshot(bad) == before


@pytest.mark.parametrize("case", ["step is text", "hidden huge", "lr nan", "palette value 300"])
def test_resume_and_eval_refuse_the_same_checkpoints(case, run_dir, tmp_path, capsys):
    mutate, needles = CHECKPOINT_CASES[case]
    bad = hostile_copy(run_dir, tmp_path / "bad", mutate)
    before = snapshot(bad)
    for argv in (("train", "pixelrnn", "--out", bad, "--resume", "--steps", "4", "--device", "cpu", "--quiet"),
                 ("eval", bad, "--device", "cpu")):
        line = refused(capsys, *argv)
        assert str(bad / "checkpoint.pt") in line and all(n in line for n in needles), line
    assert snapshot(bad) == before  # no eval.json, no log line, no temporary file


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo payload-ran",))


def test_a_pickle_payload_is_refused_without_torchs_advice_to_allow_it(tmp_path, capsys):
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.parent.mkdir()
    torch.save({"format": "genzoo-checkpoint-1", "model": _Payload()}, ckpt)
    with pytest.raises(GenzooError) as e:
        load_checkpoint(ckpt)
    msg = str(e.value)
    assert msg.startswith(f"{ckpt}: refused, not loaded") and ".system" in msg and "\n" not in msg
    for advice in ("add_safe_globals", "safe_globals", "weights_only", "allowlist", "trust"):
        assert advice not in msg
    line = refused(capsys, "sample", ckpt.parent, "-n", "1", "-o", tmp_path / "s.png", "--device", "cpu")
    assert "payload-ran" not in capsys.readouterr().out and ".system" in line


# -- config values through --set ----------------------------------------------------------------------
SET_CASES = [
    ("lr=nan", ["lr", "'nan'", "finite"]),
    ("lr=inf", ["lr", "'inf'", "finite"]),
    ("lr=1e400", ["lr", "1e400"]),
    ("grad_clip=nan", ["grad_clip", "nan"]),
    ("time_budget_s=-1", ["time_budget_s", "-1"]),
    ("temperature=-1", ["temperature", "-1"]),
    ("hidden=16.5", ["hidden", "'16.5'", "integer"]),
    ("hidden=-4", ["hidden", "-4"]),
    ("hidden=0", ["hidden=0"]),
    ("log_every=abc", ["log_every", "'abc'"]),
    ("batch_size=0", ["batch_size", "0"]),
    ("beta2=1", ["beta2=1.0"]),
    ("eval_every=-2", ["eval_every", "-2"]),
    ("n_samples=100000", ["n_samples", "100000"]),
    ("dropout=nan", ["dropout", "nan"]),
    ("optimizer=lbfgs", ["optimizer", "'lbfgs'"]),
    ("hidden=10000000", ["hidden=10000000", f"{MAX_PARAMETERS:,}", "MAX_PARAMETERS"]),
]


THROUGH_THE_CLI = ("lr=nan", "lr=inf", "grad_clip=nan", "time_budget_s=-1", "temperature=-1", "hidden=16.5",
                   "hidden=10000000")


@pytest.mark.parametrize("pair,needles", SET_CASES, ids=[c[0] for c in SET_CASES])
def test_a_bad_set_value_is_one_line_naming_key_and_value(pair, needles):
    cls = get_model_class("pixelrnn")
    key, _, value = pair.partition("=")
    info = ImageInfo(channels=1, height=20, width=20, num_values=167)
    with pytest.raises(GenzooError) as e:
        model_cfg, _ = resolve_configs(cls, TrainConfig, "tiny", {key: value})
        build_model_checked(cls, model_cfg, info)
    assert "\n" not in str(e.value) and all(n in str(e.value) for n in needles), str(e.value)


@pytest.mark.parametrize("pair", THROUGH_THE_CLI)
def test_a_bad_set_value_through_the_cli_exits_2_and_creates_no_run_folder(pair, tmp_path, capsys):
    out = tmp_path / "r"
    line = refused(capsys, "train", "pixelrnn", "--data", "pokemon", "--preset", "tiny", "--out", out,
                   "--steps", "1", "--device", "cpu", "--quiet", "--set", pair)
    for needle in dict(SET_CASES)[pair]:
        assert needle in line, line
    assert not out.exists()


def test_presets_and_configs_built_in_code_obey_the_same_rules():
    with pytest.raises(GenzooError, match=r"bad value for lr: nan is not a finite number"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(GenzooError, match=r"bad value for steps: 2.5 is not an integer"):
        TrainConfig(steps=2.5)
    assert TrainConfig(lr=1).lr == 1.0 and isinstance(TrainConfig(lr=1).lr, float)
    cls = get_model_class("pixelrnn")
    with pytest.raises(GenzooError, match=r"^ck.pt: bad value for hidden: True is not an integer$"):
        make_config(cls.Config, {"hidden": True}, source="ck.pt")
    with pytest.raises(GenzooError, match=r"bad config for PixelRNNConfig: .*\(hidden=0, layers=1\)$"):
        make_config(cls.Config, {"hidden": 0, "layers": 1})
    gan = get_model_class("gan")
    with pytest.raises(GenzooError, match=r"betas: '0.5' is not 2 comma-separated values"):
        resolve_configs(gan, TrainConfig, None, {"betas": "0.5"})
    assert resolve_configs(gan, TrainConfig, None, {"betas": "0.5,0.9", "d_lr": "none"})[0].betas == (0.5, 0.9)
    for model_cls in available_models().values():  # every preset passes the checks
        for preset in model_cls.presets:
            resolve_configs(model_cls, TrainConfig, preset)


# -- model size -----------------------------------------------------------------------------------------
def test_a_model_size_bomb_is_refused_before_allocating():
    cls = get_model_class("pixelrnn")
    info = ImageInfo(channels=1, height=20, width=20, num_values=167)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    t0 = time.perf_counter()
    for hidden in (10_000_000, 10**12):
        cfg = make_config(cls.Config, {"hidden": hidden})
        with pytest.raises(GenzooError) as e:
            build_model_checked(cls, cfg, info, source="ck.pt")
        msg = str(e.value)
        assert msg.startswith(f"ck.pt: pixelrnn with hidden={hidden}") and f"{MAX_PARAMETERS:,}" in msg
        assert "\n" not in msg
    assert time.perf_counter() - t0 < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200 * 1024  # not 40 GB, not 4e15 numbers


def test_a_layer_count_bomb_stops_at_the_module_limit():
    @dataclass
    class Config:
        layers: int = 1

    class Deep(torch.nn.Module):
        name = "deep_test_model"

        def __init__(self, config, info):
            super().__init__()
            self.blocks = torch.nn.ModuleList(torch.nn.Identity() for _ in range(config.layers))

    t0 = time.perf_counter()
    assert len(build_model_checked(Deep, Config(layers=10), ImageInfo(1, 2, 2, 2)).blocks) == 10
    with pytest.raises(GenzooError, match=rf"more than {MAX_MODULES:,} modules.*MAX_MODULES"):
        build_model_checked(Deep, Config(layers=10**9), ImageInfo(1, 2, 2, 2))
    assert time.perf_counter() - t0 < 5.0


def test_a_models_own_refusal_names_the_checkpoint_and_a_bug_keeps_its_traceback():
    @dataclass
    class Config:
        fail: str = "no"

    class Picky(torch.nn.Module):
        name = "picky_test_model"

        def __init__(self, config, info):
            super().__init__()
            if config.fail == "refuse":
                raise GenzooError("picky: this data is too small")
            if config.fail == "bug":
                raise TypeError("a bug in the model's code")
            if config.fail == "torch":
                torch.nn.Linear(-1, 4)  # a size torch itself refuses

    info = ImageInfo(1, 2, 2, 2)
    with pytest.raises(GenzooError, match=r"^ck.pt: picky: this data is too small$"):
        build_model_checked(Picky, Config("refuse"), info, source="ck.pt")
    with pytest.raises(TypeError, match="a bug"):
        build_model_checked(Picky, Config("bug"), info, source="ck.pt")
    with pytest.raises(GenzooError, match=r"^ck.pt: picky_test_model with fail='torch' on \(1, 2, 2\) data cannot "
                                          r"be built \(.*negative dimension"):
        build_model_checked(Picky, Config("torch"), info, source="ck.pt")


@pytest.mark.parametrize("name", ["pixelrnn", "gated_pixelcnn", "vae", "dcgan", "gmm"])
def test_the_size_check_leaves_the_model_and_the_random_state_as_a_plain_build(name):
    cls = get_model_class(name)
    cfg, _ = resolve_configs(cls, TrainConfig, "tiny")
    info = tiny_info(cls)
    torch.manual_seed(3)
    plain = cls(cfg, info)
    after_plain = torch.rand(3)
    torch.manual_seed(3)
    checked = build_model_checked(cls, cfg, info)
    assert torch.equal(torch.rand(3), after_plain)
    assert plain.state_dict().keys() == checked.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), checked.state_dict().values()))


# -- hostile run.json / eval.json for compare ---------------------------------------------------------------
GOOD_EVAL = {"model": "pixelrnn", "data": "pokemon", "split": "test", "checkpoint_step": 2,
             "metrics": [{"metric": "nll", "value": 1.5, "unit": "nats/image", "protocol": {"split": "test"}}]}
GOOD_RUN = {"model_name": "pixelrnn", "data": {"spec": "pokemon", "options": {}, "info": {}}}


def fake_run(folder: Path, run_json, eval_json) -> Path:
    folder.mkdir(parents=True)
    for name, content in (("run.json", run_json), ("eval.json", eval_json)):
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            (folder / name).write_text(content if isinstance(content, str) else json.dumps(content))
    (folder / "samples").mkdir()
    Image.new("RGB", (4, 4)).save(folder / "samples" / "step_0000001.png")  # so compare draws nothing
    return folder


def _eval_with(**changes):
    ev = json.loads(json.dumps(GOOD_EVAL))
    for k, v in changes.items():
        if k.startswith("rec_"):
            ev["metrics"][0][k[4:]] = v
        else:
            ev[k] = v
    return ev


COMPARE_CASES = {
    "run.json a list": ([1, 2], GOOD_EVAL, "run.json", "run.json must be a JSON object, got a list"),
    "run.json data a string": ({**GOOD_RUN, "data": "pokemon"}, GOOD_EVAL, "run.json",
                               "data must be an object with spec, options and info, got a string"),
    "run.json data.spec a list": ({**GOOD_RUN, "data": {"spec": [1]}}, GOOD_EVAL, "run.json",
                                  "data.spec must be a string, got a list"),
    "run.json not JSON": ('{"model_name": "pixelrnn",\n "data": }', GOOD_EVAL, "run.json", "line 2, column 10"),
    "eval.json a list": (GOOD_RUN, [GOOD_EVAL], "eval.json", "eval.json must be a JSON object, got a list"),
    "eval value a string": (GOOD_RUN, _eval_with(rec_value="1.5"), "eval.json",
                            "metrics[0].value must be a finite number or null, got a string"),
    "eval value a list": (GOOD_RUN, _eval_with(rec_value=[1.5]), "eval.json",
                          "metrics[0].value must be a finite number or null, got a list"),
    "eval protocol a list": (GOOD_RUN, _eval_with(rec_protocol=["split", "test"]), "eval.json",
                             "metrics[0].protocol must be an object, got a list"),
    "eval metrics a string": (GOOD_RUN, _eval_with(metrics="nll"), "eval.json",
                              "metrics must be a list of metric records, got a string"),
    "eval record lacks unit": (GOOD_RUN, {**GOOD_EVAL, "metrics": [{"metric": "nll", "value": 1.0, "protocol": {}}]},
                               "eval.json", "metrics[0] lacks the key 'unit'"),
    "eval step text": (GOOD_RUN, _eval_with(checkpoint_step="two"), "eval.json",
                       "checkpoint_step must be an integer >= 0, got a string"),
    "eval bare NaN": (GOOD_RUN, json.dumps(GOOD_EVAL).replace("1.5", "NaN"), "eval.json", "NaN is not JSON"),
    "eval not UTF-8": (GOOD_RUN, b'{"metrics": "\xff"}', "eval.json", "eval.json is not UTF-8 text (byte 13)"),
}


@pytest.mark.parametrize("case", list(COMPARE_CASES))
def test_compare_refuses_a_hostile_run_file_with_one_line_naming_file_and_key(case, tmp_path, capsys):
    run_json, eval_json, file, needle = COMPARE_CASES[case]
    good = fake_run(tmp_path / "good", GOOD_RUN, GOOD_EVAL)
    bad = fake_run(tmp_path / "bad", run_json, eval_json)
    before = snapshot(bad)
    line = refused(capsys, "compare", good, bad, "-o", tmp_path / "r.html")
    assert f"{bad / file}:" in line and needle in line, line
    assert not (tmp_path / "r.html").exists() and snapshot(bad) == before
    assert run_cli(capsys, "compare", good, "-o", tmp_path / "ok.html")[0] == 0  # the good one alone is fine


def test_read_json_names_file_line_and_what(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"a": 1,\n\n  "b": [1, 2,]}')
    with pytest.raises(GenzooError, match=rf"^{p}: line 3, column 14: eval.json is not valid JSON"):
        read_json(p, "eval.json")
    with pytest.raises(GenzooError, match=rf"^{tmp_path / 'missing.json'}: no such run.json$"):
        read_json(tmp_path / "missing.json", "run.json")
    with pytest.raises(GenzooError, match=rf"^{tmp_path}: is a folder"):
        read_json(tmp_path, "eval.json")
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(GenzooError, match="nested too deeply|must be a JSON object"):
        read_json(p, "eval.json")


# -- what eval records: data identity and no bare NaN -----------------------------------------------------
def test_eval_records_name_the_data_and_a_digest_of_its_images(run_dir, tmp_path, capsys):
    out = tmp_path / "e.json"
    code, _, err = run_cli(capsys, "eval", run_dir, "--only", "likelihood", "--json", out, "--device", "cpu")
    assert code == 0, err
    records = read_json(out, "eval.json")["metrics"]
    embedded = data_identity(load_dataset("pokemon"))
    assert records and all({k: r["protocol"][k] for k in embedded} == embedded for r in records)
    assert embedded["data"] == "pokemon" and len(embedded["data_digest"]) == 16


def test_the_same_files_in_another_order_have_another_digest(tmp_path):
    folder = tmp_path / "poke"
    folder.mkdir()
    src = resources.files("genzoo.data") / "embedded"
    (folder / "colormap.txt").write_bytes((src / "pokemon_colormap.txt").read_bytes())
    lines = gzip.decompress((src / "pokemon_pixel_color.txt.gz").read_bytes()).decode().splitlines()
    (folder / "pixel_color.txt").write_text("\n".join(lines) + "\n")
    same = data_identity(load_dataset(f"pokemon:{folder}"))
    random.Random(0).shuffle(lines)
    (folder / "pixel_color.txt").write_text("\n".join(lines) + "\n")
    shuffled = data_identity(load_dataset(f"pokemon:{folder}"))
    embedded = data_identity(load_dataset("pokemon"))
    assert same["data_digest"] == embedded["data_digest"] and same["data"] != embedded["data"]
    assert shuffled["data_digest"] != same["data_digest"] and shuffled["data"] == same["data"]


def test_the_digest_sees_a_change_of_split_or_palette():
    info = ImageInfo(channels=1, height=2, width=2, num_values=3, palette=((0, 0, 0), (9, 9, 9), (255, 255, 255)))
    x = torch.arange(40 * 4).remainder(3).reshape(40, 1, 2, 2).to(torch.uint8)
    base = data_identity(ImageDataset("random", x, info, every_tenth_split(40)))
    moved = {"train": torch.arange(1, 40), "test": torch.arange(0, 1)}
    assert data_identity(ImageDataset("random", x, info, moved))["data_digest"] != base["data_digest"]
    other = ImageInfo(1, 2, 2, 3, palette=((0, 0, 0), (9, 9, 9), (254, 255, 255)))
    assert data_identity(ImageDataset("random", x, other, every_tenth_split(40)))["data_digest"] != base["data_digest"]
    assert data_identity(ImageDataset("random", x.clone(), info, every_tenth_split(40))) == base


def test_a_value_that_is_not_finite_is_written_as_null_with_its_reason(tmp_path):
    class FarAway:  # every sample far from every mode: no high-quality sample, no histogram
        device = torch.device("cpu")

        def sample(self, n, generator=None):
            return torch.full((n, 2, 1, 1), 1e3)

    data = type("Data", (), {"spec": "mixture:ring8"})()
    records = modes_section(FarAway(), data, seed=0)
    kl = next(r for r in records if r["metric"] == "mode_kl_from_uniform")
    assert math.isnan(kl["value"]) and "within 3 sigma" in kl["reason"]
    info = ImageInfo(channels=2, height=1, width=1, num_values=0)
    points = ImageDataset("mixture:ring8", torch.zeros(20, 2, 1, 1), info, every_tenth_split(20))
    marked = with_data_identity(records + [{"metric": "x", "value": math.inf, "unit": "u", "protocol": {}}], points)
    assert marked[-1]["reason"].startswith("the measurement gave inf")
    write_json(tmp_path / "eval.json", {"metrics": marked})
    text = (tmp_path / "eval.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    back = read_json(tmp_path / "eval.json", "eval.json")["metrics"]
    assert [r["value"] for r in back if r.get("reason")] == [None, None]
