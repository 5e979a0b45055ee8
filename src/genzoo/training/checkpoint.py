"""Checkpoints: plain tensors and JSON strings, written atomically, read without unpickling.

A checkpoint holds the model's name and config, the trainer config, the data description
(spec, loader options, palette), the weights, each player's optimiser state, the step, the
RNG state and the package version -- everything :func:`load_run` needs to rebuild the exact
model. It is written with ``torch.save`` to a temporary file in the same folder, flushed,
fsync'd and renamed over the old one, so a crash leaves either the old or the new file.
It is read with ``torch.load(weights_only=True)``, which refuses any pickled object other
than tensors and plain containers: a file carrying code is rejected without running it.

Keys and values are then checked (:func:`check_state`): the step, batch count and seed are
integers >= 0, the data description is a spec string, loader options and a valid image info,
the model and trainer configs pass the same checks as ``--set``
(:func:`genzoo.models.registry.make_config`), the weights are a mapping of names to tensors
and the RNG state is a byte tensor. A file that fails is refused with one line naming it and the key.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import zipfile
from pathlib import Path

import torch

from genzoo.data import ImageInfo
from genzoo.errors import GenzooError
from genzoo.io import atomic_write
from genzoo.models.registry import INT_MAX, get_model_class, make_config
from genzoo.training.config import TrainConfig

FORMAT = "genzoo-checkpoint-1"
REQUIRED = (
    "format",
    "version",
    "model_name",
    "model_config",
    "train_config",
    "data",
    "step",
    "model",
    "batches",
    "seed",
    "optim",
    "rng",
)  # the trainer writes them all; --resume needs every one


def save_checkpoint(path: Path, state: dict) -> None:
    state = dict(state, format=FORMAT)
    for key in ("model_config", "train_config", "data", "extra"):
        if key in state and not isinstance(state[key], str):
            state[key] = json.dumps(state[key])
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Read a checkpoint safely; every problem is a one-line :class:`GenzooError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise GenzooError(f"{path}: checkpoint not found")
    if not zipfile.is_zipfile(path):
        raise GenzooError(f"{path}: not a readable checkpoint (not a torch.save zip archive)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise GenzooError(f"{path}: refused, not loaded: {_refusal(e)}") from None
    except (RuntimeError, EOFError, OSError, ValueError, RecursionError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise GenzooError(f"{path}: not a readable checkpoint ({first})") from None
    if not isinstance(state, dict):
        raise GenzooError(f"{path}: not a genzoo checkpoint (top level is {type(state).__name__})")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise GenzooError(f"{path}: not a genzoo checkpoint (missing key {missing[0]!r})")
    if state["format"] != FORMAT:
        raise GenzooError(f"{path}: unsupported checkpoint format {state['format']!r}; expected {FORMAT!r}")
    for key in ("model_config", "train_config", "data", "extra"):
        if key in state:
            try:
                state[key] = json.loads(state[key])
            except (TypeError, json.JSONDecodeError, RecursionError):
                raise GenzooError(f"{path}: key {key!r} is not valid JSON") from None
    check_state(state, str(path))
    return state


def _refusal(error: pickle.UnpicklingError) -> str:
    """The one fact in torch's refusal: which pickled global the file asked for (not its advice on
    how to allow it)."""
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    if found:
        return f"it holds a pickled object ({found.group(1)}) other than tensors and plain containers"
    return "it holds pickled content other than tensors and plain containers"


def _show(value) -> str:
    s = repr(value)
    return s if len(s) <= 60 else s[:57] + "..."


def _count(state: dict, key: str, source: str) -> None:
    value = state[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT_MAX:
        raise GenzooError(f"{source}: {key}={_show(value)} is not an integer >= 0")


def check_data_description(desc, source: str) -> ImageInfo:
    """A saved data description ``{"spec", "options", "info"}``, checked; returns its image info."""
    if not isinstance(desc, dict):
        raise GenzooError(f"{source}: data must be a mapping with spec, options and info, got {_show(desc)}")
    unknown = sorted(set(desc) - {"spec", "options", "info"})
    if unknown:
        raise GenzooError(f"{source}: unknown data key {unknown[0]!r}; valid: info, options, spec")
    for key in ("spec", "info"):
        if key not in desc:
            raise GenzooError(f"{source}: data lacks the key {key!r}")
    spec = desc["spec"]
    if not isinstance(spec, str) or not spec or not spec.isprintable():
        raise GenzooError(f"{source}: data spec={_show(spec)} is not a data set spec such as 'pokemon'")
    options = desc.get("options", {})
    if not isinstance(options, dict):
        raise GenzooError(f"{source}: data options={_show(options)} is not a mapping")
    for k, v in options.items():
        if not isinstance(k, str) or not k.isidentifier():
            raise GenzooError(f"{source}: data option name {_show(k)} is not a name")
        if not isinstance(v, (int, float, str, bool)) or (isinstance(v, float) and not math.isfinite(v)):
            raise GenzooError(f"{source}: data option {k}={_show(v)} is not a finite number or a string")
    return ImageInfo.from_dict(desc["info"], source)


def check_state(state: dict, source: str) -> None:
    """Every value a loaded checkpoint hands on, checked; one-line errors naming ``source`` and the key."""
    if not isinstance(state["version"], str):
        raise GenzooError(f"{source}: version={_show(state['version'])} is not a version string")
    for key in ("step", "batches", "seed"):
        _count(state, key, source)
    check_data_description(state["data"], source)
    try:
        cls = get_model_class(state["model_name"])
    except GenzooError as e:
        raise GenzooError(f"{source}: {e}") from None
    make_config(cls.Config, state["model_config"], what="model config key", source=source)
    make_config(TrainConfig, state["train_config"], what="train config key", source=source)
    for key in ("model", "ema"):
        weights = state.get(key, {})
        if not isinstance(weights, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
        ):
            raise GenzooError(f"{source}: {key} weights must be a mapping of names to tensors")
    if not (
        isinstance(state["optim"], dict)
        and all(
            isinstance(o, dict) and isinstance(o.get("state"), dict) and isinstance(o.get("param_groups"), list)
            for o in state["optim"].values()
        )
    ):
        raise GenzooError(f"{source}: optim must map each player to an optimiser state (state, param_groups)")
    rng = state["rng"]
    torch_state = rng.get("torch") if isinstance(rng, dict) else None
    if not (
        isinstance(torch_state, torch.Tensor)
        and torch_state.dtype == torch.uint8
        and torch_state.shape == torch.get_rng_state().shape
    ):
        raise GenzooError(
            f"{source}: rng must hold torch's random state (a byte tensor of {torch.get_rng_state().numel()} bytes)"
        )
