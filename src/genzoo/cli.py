"""The ``genzoo`` command. Each subcommand is a typed function; the parser is built from it.

Each command function's signature is the single source of its options: the parameter's type
annotation chooses the parser (numbers are checked finite and in range here, once, at the
boundary), its default is the option's default (shown in ``--help``), and the :class:`Opt`
beside it gives the help line and the allowed range. Choices come from the registries (models,
data kinds, masks, evaluation sections), so help never lists a stale set.

Bad input of any kind is a :class:`GenzooError` (or an argparse error): one line on stderr,
exit status 2. Ctrl-C after a checkpoint exits 130, SIGTERM 143.
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from genzoo._version import __version__
from genzoo.data import dataset_kinds, load_dataset
from genzoo.data.base import MAX_IMAGE_SIDE, MIN_SIZE
from genzoo.data.paired import DIRECTIONS, TranslationDataset
from genzoo.data.text import FORMS as POEM_FORMS
from genzoo.data.text import MAX_LEN as TEXT_MAX_LEN
from genzoo.data.text import TEXT_KINDS, rows_to_text, text_to_row
from genzoo.data.tokens import PAD_ID, TOKENIZERS
from genzoo.errors import GenzooError, choices_error
from genzoo.evaluation.callbacks import HeldOutLikelihood
from genzoo.evaluation.probe import linear_probe
from genzoo.evaluation.report import build_report
from genzoo.evaluation.sections import SECTIONS, evaluate
from genzoo.features import available_extractors
from genzoo.io import atomic_write_text, write_json
from genzoo.models.base import (
    MAX_SAMPLE_VALUES,
    GenerativeModel,
    LatentModel,
    LikelihoodModel,
    PartitionFunction,
    Translates,
)
from genzoo.models.gan.text2image import TextConditioned
from genzoo.models.registry import available_models, build_model_checked, get_model_class, resolve_configs
from genzoo.sampling.latent import interpolate, traversal_codes
from genzoo.sampling.masks import MASKS, make_mask
from genzoo.serve import serve
from genzoo.training.callbacks import Callback
from genzoo.training.checkpoint import load_checkpoint
from genzoo.training.config import TrainConfig
from genzoo.training.distributed import check_world_size, make_trainer, setup, shutdown
from genzoo.training.precision import PRECISIONS
from genzoo.training.run import (
    CHECKPOINT,
    EVAL_JSON,
    RUN_JSON,
    LoadedRun,
    build_from_state,
    load_run,
    make_config,
    reload_data,
    run_description,
)
from genzoo.training.trainer import TrainingInterrupted
from genzoo.viz import (
    completion_figure,
    grid,
    labelled_grid,
    mask_rgb,
    sample_picture,
    save_png,
)

MAX_GRID_IMAGES = 10_000  # tiles in one picture written by sample / complete / reconstruct
MAX_GRID_SIDE = 64  # steps of a traversal (a side of its square grid)
MAX_PATH_STEPS = 1000  # steps of an interpolation
MAX_SEED = 2**63 - 1  # torch generators take seeds in [0, 2^63)


# ----------------------------------------------------------------------------------------
# how options are described


@dataclass(frozen=True)
class Opt:
    """Help and checks of one command parameter; the default comes from the function's signature."""

    help: str
    flags: tuple[str, ...] = ()  # default: --name-with-dashes; () and positional=True for a positional
    positional: bool = False
    lo: float | None = None  # smallest allowed value (numbers)
    hi: float | None = None  # largest allowed value (numbers)
    above: float | None = None  # the value must be strictly greater (numbers)
    choices: Callable[[], Sequence[str]] | None = None  # the registry to choose from
    metavar: str | tuple[str, ...] | None = None
    nargs: int | str | None = None
    repeat: bool = False  # the flag may be given several times; the values are collected in a list


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    fn: Callable[..., Any]
    opts: dict[str, Opt]


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, **opts: Opt) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn`` as ``genzoo NAME``; every parameter of ``fn`` must have an :class:`Opt`."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        params = list(inspect.signature(fn).parameters)
        missing = [p for p in params if p not in opts]
        extra = [o for o in opts if o not in params]
        if missing or extra:
            raise TypeError(f"genzoo {name}: options {missing or extra} do not match the parameters of {fn.__name__}")
        COMMANDS[name] = Command(name, help, fn, opts)
        return fn

    return deco


def _number(kind: type, opt: Opt, flag: str) -> Callable[[str], Any]:
    """An argparse type: parse, then refuse non-finite values and values out of the option's range."""

    def parse(raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag} {raw!r}: expected {'an integer' if kind is int else 'a number'}"
            ) from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{flag} {raw}: must be a finite number")
        if opt.lo is not None and value < opt.lo:
            raise argparse.ArgumentTypeError(f"{flag} {raw}: must be >= {opt.lo:g}")
        if opt.hi is not None and value > opt.hi:
            limit = int(opt.hi) if opt.hi == int(opt.hi) else opt.hi
            raise argparse.ArgumentTypeError(f"{flag} {raw}: must be <= {limit}")
        if opt.above is not None and value <= opt.above:
            raise argparse.ArgumentTypeError(f"{flag} {raw}: must be > {opt.above:g}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _choice(opt: Opt, flag: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        valid = list(opt.choices()) if opt.choices else []
        value = raw.replace("-", "_") if raw.replace("-", "_") in valid and raw not in valid else raw
        if value not in valid:
            noun = (opt.metavar if isinstance(opt.metavar, str) else flag).strip("-").lower()
            raise argparse.ArgumentTypeError(str(choices_error(noun, raw, valid)))
        return value

    return parse


class _Formatter(argparse.HelpFormatter):
    """Every option's help line ends with its default (when it has one and the help does not say it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            action.option_strings
            and action.default is not None
            and action.default is not False
            and action.default is not argparse.SUPPRESS
            and "default" not in text
        ):
            shown = " ".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else action.default
            text += f" (default: {shown})"
        return text


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``genzoo: error: ...``, exit 2) instead of usage dumps."""

    def error(self, message: str) -> NoReturn:
        print(f"genzoo: error: {self.prog.removeprefix('genzoo ')}: {message}", file=sys.stderr)
        raise SystemExit(2)


def _add_parameter(p: argparse.ArgumentParser, name: str, param: inspect.Parameter, hint: Any, opt: Opt) -> None:
    flags = opt.flags or (name if opt.positional else "--" + name.replace("_", "-"),)
    flag = flags[-1]
    kwargs: dict[str, Any] = {"help": opt.help}
    required = param.default is inspect.Parameter.empty
    if not opt.positional:
        kwargs["dest"] = name
        if required:
            kwargs["required"] = True
        else:
            kwargs["default"] = param.default
    args = typing.get_args(hint)
    base = next((a for a in args if a is not type(None)), hint) if args and type(None) in args else hint
    item = typing.get_args(base)[0] if typing.get_origin(base) in (list, tuple, Sequence) else None
    scalar = item or base
    if scalar is bool:
        kwargs["action"] = "store_true"
    elif opt.choices is not None:
        kwargs["type"] = _choice(opt, flag)
        kwargs["metavar"] = opt.metavar or "{" + ",".join(opt.choices()) + "}"
    elif scalar in (int, float):
        kwargs["type"] = _number(scalar, opt, flag)
    elif scalar is Path:
        kwargs["type"] = Path
    if opt.repeat:
        kwargs["action"] = "append"
    elif item is not None:
        kwargs["nargs"] = opt.nargs or "+"
    elif opt.nargs is not None:
        kwargs["nargs"] = opt.nargs
    if opt.metavar and "metavar" not in kwargs:
        kwargs["metavar"] = opt.metavar
    if required and not opt.positional:
        kwargs["help"] += " (required)"
    p.add_argument(*flags, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="genzoo", description="Train, sample, complete and evaluate generative models.", formatter_class=_Formatter
    )
    p.add_argument("--version", action="version", version=f"genzoo {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for cmd in COMMANDS.values():
        sp = sub.add_parser(
            cmd.name, help=cmd.help, description=(cmd.fn.__doc__ or cmd.help).strip(), formatter_class=_Formatter
        )
        hints = typing.get_type_hints(cmd.fn)
        mutually_exclusive: dict[str, argparse._MutuallyExclusiveGroup] = {}
        for name, param in inspect.signature(cmd.fn).parameters.items():
            target: Any = sp
            if cmd.name == "train" and name in ("steps", "epochs"):
                if "budget" not in mutually_exclusive:
                    mutually_exclusive["budget"] = sp.add_mutually_exclusive_group()
                target = mutually_exclusive["budget"]
            _add_parameter(target, name, param, hints[name], cmd.opts[name])
    return p


# ----------------------------------------------------------------------------------------
# shared checks


def _check_out_file(out: Path, suffix: str, flag: str = "-o") -> None:
    out = Path(out)
    if out.suffix.lower() != suffix:
        raise GenzooError(f"{flag} {out}: the output must be a {suffix} file")
    if out.is_dir():
        raise GenzooError(f"{flag} {out}: is a folder; name a {suffix} file")
    if out.parent.exists() and not out.parent.is_dir():
        raise GenzooError(f"{flag} {out}: {out.parent} is not a folder")


def _check_json_out(path: Path | None) -> None:
    if path is not None:
        _check_out_file(path, ".json", "--json")


def _generative_run(run: Path, device: str, what: str) -> tuple[LoadedRun, GenerativeModel]:
    r = load_run(run, device)
    if not isinstance(r.model, GenerativeModel):
        raise GenzooError(f"{run}: holds a {r.model_name!r} run, which does not generate images, so it cannot {what}")
    return r, r.model


def _latent_run(run: Path, device: str, what: str) -> tuple[LoadedRun, LatentModel]:
    r = load_run(run, device)
    if not isinstance(r.model, LatentModel):
        raise GenzooError(f"model {r.model_name!r} has no code space to {what} (only autoencoders, VAEs and GANs do)")
    return r, r.model


def _check_grid(n: int, what: str) -> None:
    if n > MAX_GRID_IMAGES:
        raise GenzooError(f"{what}: {n:,} images exceed the limit of {MAX_GRID_IMAGES:,} in one picture")


def parse_image_selection(spec: str, data, option: str = "--images") -> tuple[str, list[int]]:
    """``test:0-7`` or ``train:3,5,9`` -> (split, positions), checked against the data before expanding."""
    split, colon, rest = spec.partition(":")
    usage = f"{option} {spec!r}: expected SPLIT:A-B or SPLIT:i,j,k (e.g. test:0-7)"
    if not colon:
        raise GenzooError(usage)
    n = data.size(split)
    ranges: list[tuple[int, int]] = []
    try:
        for part in rest.split(","):
            first, dash, last = part.partition("-")
            ranges.append((int(first), int(last)) if dash else (int(first), int(first)))
    except ValueError:
        raise GenzooError(usage) from None
    for lo, hi in ranges:
        if not (0 <= lo < n and 0 <= hi < n) or hi < lo:
            raise GenzooError(f"{option} {spec!r}: split {split!r} has images 0-{n - 1}")
    _check_grid(sum(hi - lo + 1 for lo, hi in ranges), f"{option} {spec!r}")
    return split, [i for lo, hi in ranges for i in range(lo, hi + 1)]


def _select_one(spec: str, data, option: str) -> torch.Tensor:
    """``test:4`` -> that image (1, C, H, W)."""
    split, positions = parse_image_selection(spec, data, option)
    if len(positions) != 1:
        raise GenzooError(f"{option} {spec!r}: name one image, e.g. test:4")
    return data.images(split, positions)


def _condition(
    model: GenerativeModel, n: int, label: int | None, condition_map: Path | None, labels: torch.Tensor | None = None
) -> Any:
    """The ``condition`` argument: class labels (n,), a spatial map (n, S, h, w) from a .npy file, or both."""
    if labels is None:
        labels = model.default_condition(n) if label is None else torch.full((n,), label, dtype=torch.long)
    if condition_map is None:
        return labels
    path = Path(condition_map)
    if path.suffix.lower() != ".npy":
        raise GenzooError(f"--condition-map {path}: expected a .npy file holding (S, h, w) or (N, S, h, w)")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise GenzooError(f"--condition-map {path}: not a readable .npy array ({str(e).splitlines()[0]})") from None
    if arr.dtype.kind not in "fiub" or arr.ndim not in (3, 4) or arr.size > MAX_SAMPLE_VALUES:
        raise GenzooError(
            f"--condition-map {path}: expected numbers of shape (S, h, w) or (N, S, h, w), got {arr.dtype} {arr.shape}"
        )
    m = torch.as_tensor(arr.astype(np.float32))
    if not torch.isfinite(m).all():
        raise GenzooError(f"--condition-map {path}: holds NaN or infinite values")
    if m.dim() == 3:
        m = m.expand(n, -1, -1, -1)
    elif len(m) != n:
        raise GenzooError(f"--condition-map {path}: {len(m)} maps for {n} images")
    return m if not model.conditional else (labels, m)


def _text_condition(
    model: GenerativeModel, n: int, texts: list[str], label: int | None, condition_map: Path | None
) -> torch.Tensor:
    """``--text``: captions -> token ids (n, L), the captions in turn; unknown words noted on stderr."""
    if not isinstance(model, TextConditioned):
        raise GenzooError(f"--text: model {model.name!r} is not conditioned on text (text2image is)")
    if label is not None or condition_map is not None:
        raise GenzooError("--text and --condition/--condition-map both set the condition; give one of them")
    for t in texts:
        if not t.strip():
            raise GenzooError("--text: empty caption; give a caption such as 'a dark coat'")
    tokens, unknown = model.text_condition(texts)
    if unknown:
        words = ", ".join(repr(w) for w in unknown)
        print(f"genzoo: note: not in the run's vocabulary, read as <unk>: {words}", file=sys.stderr)
    return tokens[torch.arange(n) % len(tokens)]


def _out_suffix(out: Path) -> str:
    """.txt for text output (text runs), else .png; which one fits the run is checked once it is loaded."""
    return ".txt" if Path(out).suffix.lower() == ".txt" else ".png"


def _check_text_out(out: Path, info, flag: str = "-o") -> None:
    if info.is_text and Path(out).suffix.lower() != ".txt":
        raise GenzooError(f"{flag} {out}: this run writes text (token data); name a .txt file")
    if not info.is_text and Path(out).suffix.lower() == ".txt":
        raise GenzooError(f"{flag} {out}: this run draws images; name a .png file")


def _write_text(out: Path, lines: list[str]) -> None:
    """Text results: one a line into ``out`` (atomically) and on stdout."""
    atomic_write_text(Path(out), "".join(line + "\n" for line in lines))
    for line in lines:
        print(line)


def _text_row(info, text: str, *, sentence: bool, what: str) -> torch.Tensor:
    row, unknown = text_to_row(info, text, sentence=sentence, what=what)
    if unknown:
        words = ", ".join(repr(w) for w in unknown)
        print(f"genzoo: note: not in the run's vocabulary, read as <unk>: {words}", file=sys.stderr)
    return row


def _generator(model: torch.nn.Module, seed: int) -> torch.Generator:
    return torch.Generator(device=next(model.parameters()).device).manual_seed(seed)


def _models() -> list[str]:
    return list(available_models())


def _sections() -> list[str]:
    return list(SECTIONS)


def _masks() -> list[str]:
    return list(MASKS)


# ----------------------------------------------------------------------------------------
# commands

_SEED = Opt("random seed", lo=0, hi=MAX_SEED)
_DEVICE = Opt("auto | cpu | cuda (auto takes CUDA when present)")
_RUN = Opt("a run folder (made by genzoo train)", positional=True)
_PNG = Opt("output .png", flags=("-o", "--out"))


@command("models", "list registered models and their presets")
def cmd_models() -> None:
    """List the registered models: family, likelihood, presets and paper."""
    for name, cls in available_models().items():
        kind = cls.likelihood if issubclass(cls, LikelihoodModel) else "none"
        if kind == "none" and issubclass(cls, PartitionFunction):
            kind = "ais"
        lik = {
            "exact": "exact log-likelihood",
            "bound": "likelihood bound",
            "ais": "likelihood by AIS",
            "approximate": "approximate likelihood",
        }.get(kind, "no likelihood")
        print(f"{name:<20} {cls.family:<15} {lik:<21} presets: {', '.join(cls.presets) or '-'}")
        print(f"{'':<20} {cls.paper}")


@command("datasets", "list data set kinds and their syntax")
def cmd_datasets() -> None:
    """List the data kinds and their syntax."""
    for kind in dataset_kinds():
        print(f"{kind.syntax:<24} {kind.help}")


def parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise GenzooError(f"--set {pair!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


@command(
    "train",
    "train a model into a run folder",
    model=Opt(
        "a registered model (see `genzoo models`; - and _ are the same)",
        positional=True,
        choices=_models,
        metavar="MODEL",
    ),
    out=Opt("run folder to create (or continue with --resume)"),
    data=Opt(
        "data spec: "
        + " | ".join(k.syntax for k in dataset_kinds())
        + " (see `genzoo datasets`); default: pokemon, or the run's own with --resume"
    ),
    preset=Opt("named settings of the model (see `genzoo models`)"),
    sets=Opt("override a model or trainer setting; repeatable", flags=("--set",), metavar="KEY=VALUE", repeat=True),
    steps=Opt("total training steps (rounds); default: the preset's, else 2000", lo=1),
    epochs=Opt("total passes over the training split", above=0),
    seed=_SEED,
    device=_DEVICE,
    resume=Opt("continue the run in --out from its checkpoint"),
    size=Opt("folder/CIFAR data: resize images to SIZE x SIZE (default 32)", lo=MIN_SIZE, hi=MAX_IMAGE_SIDE),
    colors=Opt("folder data: quantise to this many colours (default 64)", lo=2),
    tokens=Opt("token data (text:, tang:, ptb:): split text into characters or words", choices=lambda: TOKENIZERS),
    vocab=Opt("token data: at most N vocabulary entries, from the train split; rarer tokens become <unk>", lo=5),
    max_len=Opt("token data: tokens per example including <eos> (longer ones are cut)", lo=2, hi=TEXT_MAX_LEN),
    form=Opt("tang data: keep one form of poem", choices=lambda: POEM_FORMS),
    direction=Opt("paired data: AtoB (the left half is the input, default) or BtoA", choices=lambda: DIRECTIONS),
    quiet=Opt("no progress bar or messages"),
    labels_per_class=Opt(
        "semi-supervised models (ssgan): keep the labels of N training images per class, "
        "drawn with --seed, and hide the rest",
        lo=1,
    ),
    precision=Opt(
        "arithmetic of the training losses: fp32, or autocast to bf16 or fp16 (with loss scaling); "
        "evaluation stays fp32; default: the preset's, else fp32",
        choices=lambda: PRECISIONS,
    ),
)
def cmd_train(
    model: str,
    out: Path,
    data: str | None = None,
    preset: str | None = None,
    sets: list[str] | None = None,
    steps: int | None = None,
    epochs: float | None = None,
    seed: int = 0,
    device: str = "auto",
    resume: bool = False,
    size: int | None = None,
    colors: int | None = None,
    tokens: str | None = None,
    vocab: int | None = None,
    max_len: int | None = None,
    form: str | None = None,
    direction: str | None = None,
    quiet: bool = False,
    labels_per_class: int | None = None,
    precision: str | None = None,
) -> dict:
    """Train MODEL on DATA into the run folder OUT (or continue it with --resume).

    Under ``torchrun`` each process trains its share of every batch (genzoo.training.distributed)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GenzooError(f"--out {out}: is a file; name a folder for the run")
    model = model.replace("-", "_") if model.replace("-", "_") in available_models() else model
    preset = None if preset is None else preset.replace("-", "_")
    world, dev = setup(device)  # one process, or this process's place in torchrun's group
    quiet = quiet or not world.is_main
    overrides = parse_sets(list(sets or []))
    if precision is not None:
        overrides["precision"] = precision
    for flag, key, given in (("--steps", "steps", steps), ("--epochs", "epochs", epochs)):
        if given is not None and ({"steps", "epochs"} & set(overrides)):
            raise GenzooError(f"{flag} and --set {key}/--set steps|epochs both set the budget; give one of them")
    if steps is not None:
        overrides["steps"], overrides["epochs"] = str(steps), "0"
    if epochs is not None:
        overrides["epochs"], overrides["steps"] = str(epochs), "0"
    cls = get_model_class(model)
    if resume:
        state = load_checkpoint(out / CHECKPOINT)
        if state["model_name"] != model:
            raise GenzooError(f"{out}: holds a {state['model_name']!r} run, not {model!r}")
        if data is not None and data != state["data"]["spec"]:
            raise GenzooError(f"{out}: was trained on {state['data']['spec']!r}, not {data!r}")
        unknown = set(overrides) - {"steps", "epochs"}
        if preset or unknown or labels_per_class is not None:
            raise GenzooError("--resume continues with the run's saved settings; only --steps/--epochs may change")
        check_world_size(state, world, str(out / CHECKPOINT))
        cfg = make_config(TrainConfig, state["train_config"], overrides, what="key")
        net = build_from_state(state, str(out / CHECKPOINT))
        dataset = reload_data(state["data"])
        seed = int(state["seed"])
    else:
        if (out / CHECKPOINT).exists():
            raise GenzooError(f"{out}: already holds a run; pass --resume to continue it or choose another --out")
        data = data or "pokemon"
        if labels_per_class is not None and not cls.takes_partial_labels:
            raise GenzooError(
                f"--labels-per-class: {model} trains on fully labelled or unlabelled data; "
                "semi-supervised models: "
                + ", ".join(n for n, c in available_models().items() if c.takes_partial_labels)
            )
        text_options = {"tokens": tokens, "vocab": vocab, "max_len": max_len, "form": form}
        text_options = {k: v for k, v in text_options.items() if v is not None}
        if text_options and data.partition(":")[0] not in TEXT_KINDS:
            flag = "--" + next(iter(text_options)).replace("_", "-")
            raise GenzooError(f"{flag}: applies to token data ({', '.join(TEXT_KINDS)}), not {data!r}")
        dataset = load_dataset(
            data,
            size=size,
            colors=colors,
            labels_per_class=labels_per_class,
            label_seed=seed if labels_per_class is not None else None,
            **text_options,
            **_direction_option(direction, data),
        )
        model_cfg, cfg = resolve_configs(cls, TrainConfig, preset, overrides)
        torch.manual_seed(seed)  # initial weights belong to the seeded run
        net = build_model_checked(cls, model_cfg, dataset.info)  # refused above the model size limits
    torch.manual_seed(seed)
    callbacks: list[Callback] = (
        [HeldOutLikelihood("test")] if HeldOutLikelihood.applies(net) else []  # a fixed subset; eval: all
    )
    trainer = make_trainer(
        net, dataset, cfg, out, world=world, model_name=model, seed=seed, device=dev, quiet=quiet, callbacks=callbacks
    )
    if resume:
        trainer.restore(state)
        if not quiet:
            print(f"resuming {out} at step {trainer.step} of {trainer.total_steps()}", file=sys.stderr)
    else:
        if world.is_main:
            out.mkdir(parents=True, exist_ok=True)
            description = run_description(model, net, cfg, dataset, seed)
            write_json(out / RUN_JSON, {**description, **world.describe(), "precision": cfg.precision})
        if not quiet:
            n_params = sum(p.numel() for p in net.parameters())
            print(
                f"training {model} ({n_params:,} parameters) on {data}: {dataset.size('train')} train images "
                f"{dataset.info.shape}, {dataset.info.num_values} values; {trainer.total_steps()} steps "
                f"on {dev}" + (f" x {world.size} processes ({world.backend})" if world.size > 1 else ""),
                file=sys.stderr,
            )
    try:
        last = trainer.fit()
    finally:
        shutdown()
    if not quiet:
        shown = {
            k: round(v, 4)
            for k, v in last.items()
            if "bits_per_dim" in k
            or "nll" in k
            or k.endswith(("/loss", "/d_real", "/d_fake", "/sample_spread", "recon", "accuracy"))
        }
        print(f"done: step {trainer.step}, {shown}; run folder {out}", file=sys.stderr)
    return last


@command(
    "sample",
    "draw new images from a trained run",
    run=_RUN,
    out=_PNG,
    n=Opt("number of samples", flags=("-n",), lo=1),
    seed=_SEED,
    temperature=Opt("softmax temperature (0 = the most likely value)", lo=0),
    condition=Opt("class label for conditional models (default: classes in turn)", lo=0),
    condition_map=Opt(
        "spatially conditioned models (gated_pixelcnn with spatial_channels): a .npy map of "
        "shape (S, H/scale, W/scale), shared by every sample, or (N, S, H/scale, W/scale)"
    ),
    text=Opt(
        "text-conditioned models (text2image): a caption; repeat for several, the samples take them in "
        "turn; words outside the run's vocabulary are read as <unk> (with a note)",
        metavar="CAPTION",
        repeat=True,
    ),
    naive=Opt("autoregressive: recompute every step (the slow reference path; the same samples)"),
    ncols=Opt("tiles per row of the grid (default: a square grid)", lo=1),
    precision=Opt(
        "autoregressive: sample in the model's dtype (the default: fast) or in float64 (slower; cached "
        "and --naive then give identical samples, where float32 rounding flips a rare draw)",
        choices=lambda: ("float64", "model"),
    ),
    device=_DEVICE,
)
def cmd_sample(
    run: Path,
    out: Path,
    n: int = 64,
    seed: int = 0,
    temperature: float = 1.0,
    condition: int | None = None,
    condition_map: Path | None = None,
    text: list[str] | None = None,
    naive: bool = False,
    ncols: int | None = None,
    precision: str = "model",
    device: str = "auto",
) -> None:
    """A grid of N new images (a scatter plot for 2-D data); N lines of text for text runs (-o X.txt)."""
    _check_out_file(out, _out_suffix(out))
    _check_grid(n, f"-n {n}")
    r, model = _generative_run(run, device, "sample")
    _check_text_out(out, r.info)
    if n * r.info.dims > MAX_SAMPLE_VALUES:
        raise GenzooError(
            f"-n {n}: {n:,} samples of {r.info.dims} values exceed the limit of "
            f"{MAX_SAMPLE_VALUES:,} values per request"
        )
    if text is None:
        cond = _condition(model, n, condition, condition_map)
    else:
        cond = _text_condition(model, n, text, condition, condition_map)
    options: dict[str, Any] = {"progress": True}
    if naive:
        options["naive"] = True
    if precision == "float64":
        options["precision"] = torch.float64  # cached == naive exactly
    x = model.sample(n, generator=_generator(model, seed), temperature=temperature, condition=cond, **options)
    if r.info.is_text:  # token rows: one sentence a line
        _write_text(out, rows_to_text(r.info, x))
    elif r.info.continuous:  # 2-D points: a scatter plot over the mixture's centres
        save_png(sample_picture(x, r.data()), out)
    else:
        save_png(grid(r.info.to_rgb(x), ncols=ncols), out)
    print(f"wrote {n} samples to {out}", file=sys.stderr)


@command(
    "complete",
    "show the model part of unseen images and let it draw the rest",
    run=_RUN,
    out=_PNG,
    mask=Opt("the part hidden (image runs)", choices=_masks),
    images=Opt("which images, e.g. test:0-7 or test:3,9"),
    samples=Opt("completions per image (per prefix for text runs)", lo=1),
    prefix=Opt("text runs: the beginning every completion continues, e.g. 床前明月光 (-o X.txt)"),
    condition_map=Opt("spatially conditioned models: a .npy map (S, H/scale, W/scale) or one per completion"),
    seed=_SEED,
    temperature=Opt("softmax temperature (0 = the most likely value)", lo=0),
    device=_DEVICE,
)
def cmd_complete(
    run: Path,
    out: Path,
    mask: str | None = None,
    images: str = "test:0-7",
    samples: int = 4,
    prefix: str | None = None,
    condition_map: Path | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    device: str = "auto",
) -> None:
    """Rows of original | shown | completions (hidden pixels magenta in the middle column); for text
    runs, --samples continuations of --prefix, one a line."""
    _check_out_file(out, _out_suffix(out))
    r, model = _generative_run(run, device, "complete images")
    _check_text_out(out, r.info)
    if r.info.is_text or prefix is not None:
        if not r.info.is_text:
            raise GenzooError("--prefix: this run draws images; hide a part of them with --mask")
        if prefix is None or mask is not None:
            raise GenzooError("text runs continue a --prefix (e.g. --prefix 床前明月光); --mask is for images")
        row = _text_row(r.info, prefix, sentence=False, what="--prefix")  # (1, 1, 1, L)
        n_given = int((row != PAD_ID).sum())
        known = torch.zeros(r.info.shape, dtype=torch.bool)
        known[..., :n_given] = True
        filled = model.complete(
            row.repeat(samples, 1, 1, 1), known, generator=_generator(model, seed), temperature=temperature
        )
        _write_text(out, rows_to_text(r.info, filled))
        print(f"wrote {samples} completions of {prefix!r} to {out}", file=sys.stderr)
        return
    if mask is None:
        raise GenzooError(f"--mask: name the part hidden ({', '.join(_masks())})")
    known = make_mask(mask, r.info)  # (C, H, W)
    data = r.data()
    split, positions = parse_image_selection(images, data)
    _check_grid(len(positions) * (samples + 2), f"--images {images} with --samples {samples}")
    x = data.images(split, positions)  # (N, C, H, W)
    n = len(x)
    reps = x.repeat_interleave(samples, dim=0)  # (N*k, C, H, W)
    labels = None
    if model.conditional:  # complete each image under its own label
        y = data.batch(split, positions).get("y")
        labels = y.repeat_interleave(samples) if y is not None else model.default_condition(len(reps))
    cond = _condition(model, len(reps), None, condition_map, labels)
    filled = model.complete(
        reps, known, generator=_generator(model, seed), temperature=temperature, condition=cond, progress=True
    )
    info = r.info
    original = info.to_rgb(x)
    shown = mask_rgb(original, known.all(0).numpy())
    comps = info.to_rgb(filled).reshape(n, samples, *original.shape[1:])
    save_png(completion_figure(original, shown, comps), out)
    print(f"wrote completions of {n} {split} images ({mask} hidden, {samples} each) to {out}", file=sys.stderr)


@command(
    "eval",
    "every measurement that applies (likelihoods, bounds, memorisation, ...)",
    run=_RUN,
    split=Opt("the held-out split measured"),
    json_path=Opt("write results here (default RUN/eval.json)", flags=("--json",)),
    batch_size=Opt("images per forward pass", lo=1),
    only=Opt("sections to run (default: all that apply)", choices=_sections, metavar="SECTION"),
    k=Opt("importance samples per image for the NLL estimate (Burda et al. use 5000)", lo=1),
    k_iwae=Opt("samples per image for the IWAE bound", lo=1),
    max_images=Opt(
        "importance sampling / AIS on the first N images of the split (the likelihood section measures all)", lo=1
    ),
    samples=Opt("generated images for the memorisation check and the --features metrics", lo=1),
    features=Opt(
        "add sample quality in this feature space: "
        + " | ".join(f"{p}:ARG" if p != "pixels" else p for p in available_extractors()),
        metavar="SPEC",
    ),
    feature_cache=Opt("cache of reference features (default $GENZOO_CACHE_DIR or ~/.cache/genzoo/features)"),
    seed=_SEED,
    device=_DEVICE,
)
def cmd_eval(
    run: Path,
    split: str = "test",
    json_path: Path | None = None,
    batch_size: int = 256,
    only: list[str] | None = None,
    k: int = 1000,
    k_iwae: int = 50,
    max_images: int = 200,
    samples: int = 1000,
    features: str | None = None,
    feature_cache: Path | None = None,
    seed: int = 0,
    device: str = "auto",
) -> dict:
    """Every measurement that applies to the run, each with its protocol, into RUN/eval.json."""
    _check_json_out(json_path)
    r = load_run(run, device)
    path = Path(json_path) if json_path else r.path / EVAL_JSON
    result = evaluate(
        r,
        split=split,
        sections=only,
        k=k,
        k_iwae=k_iwae,
        max_images=max_images,
        samples=samples,
        seed=seed,
        batch_size=batch_size,
        figure_dir=path.parent,
        features=features,
        feature_cache=feature_cache,
    )
    headline = [
        m
        for m in result["metrics"]
        if m["metric"] in ("nll", "negative_elbo")
        and m["protocol"].get("estimator") in ("exact", "ELBO (bound)")
        and m["unit"] in ("nats/image", "bits/dim")  # token data reports per sentence and per token instead
    ]
    if headline:  # the likelihood in the flat form earlier versions wrote
        result.update(
            nll_nats=headline[0]["value"],
            bits_per_dim=headline[1]["value"],
            n_images=headline[0]["protocol"]["images"],
            likelihood=headline[0]["protocol"]["estimator"],
        )
    write_json(path, result)
    print(f"{r.model_name} on {result['data']} (step {r.step}):")
    for m in result["metrics"]:
        proto = ", ".join(f"{k_}={v}" for k_, v in m["protocol"].items() if k_ not in ("near_copy_rule",))
        v = m["value"]
        value = (
            "null"
            if v is None or not math.isfinite(v)
            else (f"{v:.4f}" if m["unit"] == "bits/dim" or abs(v) < 10 else f"{v:.2f}")
        )
        print(f"  {m['metric']:<26} {value:>10} {m['unit']:<22} [{proto}]")
    print(f"-> {path}")
    return result


@command(
    "compare",
    "one self-contained HTML page comparing evaluated runs",
    runs=Opt("run folders, each with RUN/eval.json", positional=True, metavar="RUN"),
    out=Opt("output .html", flags=("-o", "--out")),
    device=Opt("for drawing samples of runs without a saved grid"),
)
def cmd_compare(runs: list[Path], out: Path, device: str = "cpu") -> None:
    """One self-contained HTML page: runs, a metric table of comparable numbers, samples, figures, curves."""
    _check_out_file(out, ".html")
    path = build_report(runs, out, device=device)
    print(f"wrote a comparison of {len(runs)} run{'s' if len(runs) != 1 else ''} to {path}", file=sys.stderr)


@command(
    "serve",
    "a local web playground: sample, complete, steer latent codes, compare the runs",
    runs=Opt("run folders to serve (requests name them by index or name, not path)", positional=True, metavar="RUN"),
    host=Opt("address to listen on; any non-local address prints a warning (the page has no authentication)"),
    port=Opt("TCP port (0: any free port)", lo=0, hi=65535),
    device=_DEVICE,
)
def cmd_serve(runs: list[Path], host: str = "127.0.0.1", port: int = 8000, device: str = "auto") -> None:
    """Serve one page over the runs: sample (seed, temperature, class), complete a painted-out region,
    move a latent model's code dimensions and interpolate, and read the metric table of genzoo compare."""
    serve(runs, host, port, device=device)


@command(
    "reconstruct",
    "images and their reconstructions through the code",
    run=_RUN,
    out=_PNG,
    images=Opt("which images, e.g. test:0-15"),
    seed=Opt("for models that encode by fitting the code (GANs)", lo=0, hi=MAX_SEED),
    device=_DEVICE,
)
def cmd_reconstruct(run: Path, out: Path, images: str = "test:0-15", seed: int = 0, device: str = "auto") -> None:
    """Rows of originals above their reconstructions decode(encode(x))."""
    _check_out_file(out, ".png")
    r, model = _latent_run(run, device, "reconstruct through")
    data = r.data()
    split, positions = parse_image_selection(images, data)
    _check_grid(2 * len(positions), f"--images {images}")
    x = data.images(split, positions).to(model.device)  # (N, C, H, W)
    z = model.encode(x, generator=_generator(model, seed))
    with torch.no_grad():
        rec = model.decode(z)
    n = len(x)
    tiles = [r.info.to_rgb(x[i : i + 8]) for i in range(0, n, 8)]
    recs = [r.info.to_rgb(rec[i : i + 8]) for i in range(0, n, 8)]
    rows = np.concatenate([np.concatenate([a, b]) for a, b in zip(tiles, recs)])
    save_png(grid(rows, ncols=min(8, n)), out)
    print(f"wrote {n} {split} images (odd rows) and their reconstructions (even rows) to {out}", file=sys.stderr)


@command(
    "traverse",
    "decode a grid over two code dimensions, the others fixed",
    run=_RUN,
    out=_PNG,
    dims=Opt("two code dimensions", metavar="D", lo=0),
    value_range=Opt("the values each dimension sweeps", flags=("--range",), metavar=("LO", "HI"), nargs=2),
    steps=Opt(f"values per dimension (the grid is STEPS x STEPS; at most {MAX_GRID_SIDE})", lo=2, hi=MAX_GRID_SIDE),
    image=Opt("hold the other dimensions at this image's code (e.g. test:0); default 0"),
    seed=_SEED,
    device=_DEVICE,
)
def cmd_traverse(
    run: Path,
    out: Path,
    dims: list[int],
    value_range: tuple[float, float] = (-3.0, 3.0),
    steps: int = 11,
    image: str | None = None,
    seed: int = 0,
    device: str = "auto",
) -> None:
    """The lecture's figure: sweep two code dimensions on a grid, the others fixed."""
    _check_out_file(out, ".png")
    lo, hi = value_range
    if len(dims) != 2:
        raise GenzooError(f"--dims takes two code dimensions, got {len(dims)}")
    r, model = _latent_run(run, device, "traverse")
    if image is not None:
        base = model.encode(
            _select_one(image, r.data(), "--image").to(model.device), generator=_generator(model, seed)
        )[0]
    else:
        base = torch.zeros(model.latent_dim, device=model.device)
    z = traversal_codes(base, (dims[0], dims[1]), lo, hi, steps)
    with torch.no_grad():
        x = model.decode(z)
    caption = f"rows: z[{dims[0]}], columns: z[{dims[1]}], both {lo:g} .. {hi:g}; other dims " + (
        f"from {image}" if image else "0"
    )
    save_png(labelled_grid(r.info.to_rgb(x), ncols=steps, caption=caption), out)
    print(f"wrote a {steps}x{steps} traversal of dims {dims[0]} and {dims[1]} to {out}", file=sys.stderr)


@command(
    "interpolate",
    "decode codes along a path between two images or prior draws",
    run=_RUN,
    out=_PNG,
    between=Opt(
        "two endpoints: images (test:4 test:9) or prior draws (seed:1 seed:2); for text runs also "
        "sentences ('the market fell' 'he said') (-o X.txt: the decoded sentences, one a line)",
        metavar="END",
    ),
    steps=Opt(f"images along the path (at most {MAX_PATH_STEPS})", lo=2, hi=MAX_PATH_STEPS),
    kind=Opt("straight line or spherical path", choices=lambda: ("linear", "slerp")),
    seed=_SEED,
    device=_DEVICE,
)
def cmd_interpolate(
    run: Path, out: Path, between: list[str], steps: int = 10, kind: str = "linear", seed: int = 0, device: str = "auto"
) -> None:
    """Decode codes along the path between two images (their codes) or two prior draws (``seed:N``);
    for text runs, between two sentences too (Bowman et al.'s homotopies)."""
    _check_out_file(out, _out_suffix(out))
    if len(between) != 2:
        raise GenzooError(f"--between takes two endpoints (e.g. test:4 test:9 or seed:1 seed:2), got {len(between)}")
    r, model = _latent_run(run, device, "interpolate in")
    _check_text_out(out, r.info)
    ends = []
    for spec in between:
        if spec.startswith("seed:"):
            try:
                end_seed = int(spec[5:])
            except ValueError:
                raise GenzooError(f"--between {spec!r}: expected seed:N with an integer N") from None
            if not 0 <= end_seed <= MAX_SEED:
                raise GenzooError(f"--between {spec!r}: the seed must be in 0..2^63-1")
            ends.append(model.prior(1, _generator(model, end_seed))[0])
        else:
            split, _, index = spec.partition(":")
            if r.info.is_text and not (split in ("train", "valid", "test") and index.isdigit()):  # a sentence
                x = _text_row(r.info, spec, sentence=True, what="--between").to(model.device)
            else:
                x = _select_one(spec, r.data(), "--between").to(model.device)
            ends.append(model.encode(x, generator=_generator(model, seed))[0])
    z = interpolate(ends[0], ends[1], steps, kind)
    with torch.no_grad():
        x = model.decode(z)
    if r.info.is_text:
        _write_text(out, rows_to_text(r.info, x))
    else:
        save_png(labelled_grid(r.info.to_rgb(x), ncols=steps, caption=f"{between[0]} -> {between[1]} ({kind})"), out)
    print(f"wrote {steps} images from {between[0]} to {between[1]} to {out}", file=sys.stderr)


@command(
    "probe",
    "test accuracy of a softmax classifier on a model's codes",
    run=_RUN,
    data=Opt("labelled data (default: the run's own)"),
    finetune=Opt("train encoder + classifier end to end"),
    epochs=Opt("passes over the training split", lo=1),
    seed=_SEED,
    json_path=Opt("default RUN/probe.json (RUN/finetune.json)", flags=("--json",)),
    device=_DEVICE,
)
def cmd_probe(
    run: Path,
    data: str | None = None,
    finetune: bool = False,
    epochs: int = 30,
    seed: int = 0,
    json_path: Path | None = None,
    device: str = "auto",
) -> dict:
    """Softmax classifier on the frozen codes (or encoder + classifier end to end with --finetune)."""
    _check_json_out(json_path)
    r, model = _latent_run(run, device, "probe")
    dataset = load_dataset(data) if data else reload_data(r.data_desc)
    if dataset.labels is None:
        raise GenzooError(f"{dataset.spec}: the probe needs class labels and this data set has none")
    res = linear_probe(model, dataset, epochs=epochs, seed=seed, finetune=finetune, device=model.device, progress=True)
    result = {"model": r.model_name, "run": str(r.path), "checkpoint_step": r.step, "data": dataset.spec, **res}
    path = Path(json_path) if json_path else r.path / ("finetune.json" if finetune else "probe.json")
    write_json(path, result)
    print(
        f"{'fine-tuned' if finetune else 'linear probe'} on {dataset.spec}: test accuracy "
        f"{res['test_accuracy']:.4f} -> {path}"
    )
    return result


# ----------------------------------------------------------------------------------------
# entry point


def _direction_option(direction: str | None, data: str) -> dict:
    """``--direction`` for paired data only (refused by name for other kinds)."""
    if direction is None:
        return {}
    if data.partition(":")[0] != "paired":
        raise GenzooError(f"--direction: applies to paired:PATH data, not {data!r}")
    return {"direction": direction}


@command(
    "translate",
    "translate images with a translation model (pix2pix, CycleGAN; face aging with --condition)",
    run=_RUN,
    out=_PNG,
    images=Opt("which images, e.g. test:0-7 or test:3,9"),
    condition=Opt("conditional translation (age_cgan): the target class, e.g. an age group 0-5", lo=0),
    seed=_SEED,
    device=_DEVICE,
)
def cmd_translate(
    run: Path, out: Path, images: str = "test:0-7", condition: int | None = None, seed: int = 0, device: str = "auto"
) -> None:
    """Rows of input | output | target (the target when the data is paired)."""
    _check_out_file(out, ".png")
    r = load_run(run, device)
    model = r.model
    if not isinstance(model, Translates):
        names = ", ".join(n for n, c in available_models().items() if issubclass(c, Translates))
        raise GenzooError(f"{run}: holds a {r.model_name!r} run, which does not translate images ({names} do)")
    data = r.data()
    split, positions = parse_image_selection(images, data)
    _check_grid(3 * len(positions), f"--images {images}")
    x = data.images(split, positions)  # (N, C, H, W)
    cond = None
    if condition is not None or model.conditional:
        if condition is None:
            raise GenzooError(f"--condition: {r.model_name} translates to a target class; give one, e.g. --condition 3")
        cond = torch.full((len(x),), condition, dtype=torch.long)
    y = model.translate(x.to(model.device), generator=_generator(model, seed), condition=cond)
    columns = [x, y.cpu()]
    if isinstance(data, TranslationDataset) and data.paired:
        columns.append(data.targets(split, positions))
    tiles = np.stack([r.info.to_rgb(col[i : i + 1])[0] for i in range(len(x)) for col in columns])
    save_png(grid(tiles, ncols=len(columns)), out)
    what = " | ".join(["input", "output", "target"][: len(columns)])
    print(f"wrote {len(x)} {split} images as rows of {what} to {out}", file=sys.stderr)


def _one_line(text: str) -> str:
    """An error names files as they are; a name holding a newline must not make the message two lines."""
    return " ".join(text.split("\n")).replace("\r", " ")


def main(argv: list[str] | None = None) -> int:
    try:
        args = vars(build_parser().parse_args(argv))
    except SystemExit as e:  # --help / --version (0) or a one-line parse error (2)
        return int(e.code or 0)
    command_name = args.pop("command")
    fn = COMMANDS[command_name].fn
    try:
        fn(**args)
    except GenzooError as e:
        print(f"genzoo: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:
        print(f"genzoo: {e}", file=sys.stderr)
        return e.exit_code  # 130 after Ctrl-C, 143 after SIGTERM
    except KeyboardInterrupt:
        print("genzoo: aborted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
