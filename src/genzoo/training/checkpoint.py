"""Checkpoints: plain tensors and JSON strings, written atomically, read without unpickling.

A checkpoint holds the model's name and config, the trainer config, the data description
(spec, loader options, palette), the weights, each player's optimiser state, the step, the
RNG state and the package version -- everything :func:`load_run` needs to rebuild the exact
model. It is written with ``torch.save`` to a temporary file in the same folder, flushed,
fsync'd and renamed over the old one, so a crash leaves either the old or the new file.
It is read with ``torch.load(weights_only=True)``, which refuses any pickled object other
than tensors and plain containers: a file carrying code is rejected without running it.
"""
from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import torch

from genzoo.errors import GenzooError
from genzoo.io import atomic_write

FORMAT = "genzoo-checkpoint-1"
REQUIRED = ("format", "version", "model_name", "model_config", "train_config", "data", "step", "model")


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
        lines = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
        why = lines[0] if lines else "disallowed object"
        raise GenzooError(f"{path}: refused: the file holds pickled objects other than tensors ({why})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
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
            except (TypeError, json.JSONDecodeError):
                raise GenzooError(f"{path}: key {key!r} is not valid JSON") from None
    return state
