"""Data sets by spec string: ``pokemon``, ``folder:PATH``, ``binarized-mnist:PATH``, ``idx:PATH``,
``mixture:ring8|grid25`` (continuous 2-D points).

``load_dataset(spec, **options)`` is the one entry point; each kind registers a loader
with :func:`register_dataset`, and ``genzoo datasets`` lists them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from genzoo.data.base import ImageDataset, ImageInfo, every_tenth_split
from genzoo.errors import GenzooError, choices_error


@dataclass(frozen=True)
class DatasetKind:
    name: str
    syntax: str
    help: str
    loader: Callable[..., ImageDataset]
    needs_path: bool


_KINDS: dict[str, DatasetKind] = {}


def register_dataset(name: str, syntax: str, help: str, needs_path: bool = True):
    def deco(fn):
        _KINDS[name] = DatasetKind(name, syntax, help, fn, needs_path)
        return fn

    return deco


def dataset_kinds() -> list[DatasetKind]:
    return [_KINDS[k] for k in sorted(_KINDS)]


def load_dataset(spec: str, **options) -> ImageDataset:
    """Load ``KIND`` or ``KIND:PATH``. Options (``size``, ``colors``, ``palette``) go to the loader."""
    kind, _, path = spec.partition(":")
    if kind not in _KINDS:
        raise choices_error("dataset", kind, [k.syntax for k in _KINDS.values()])
    entry = _KINDS[kind]
    if entry.needs_path and not path:
        raise GenzooError(f"dataset {kind!r} needs a path: {entry.syntax}")
    data = entry.loader(spec, path or None, **options)
    # Recorded so a run can reload the same images (a fitted palette is saved separately).
    data.meta.setdefault("options", {k: v for k, v in options.items() if v is not None and k != "palette"})
    return data


# Loaders register themselves on import.
from genzoo.data import pokemon as _pokemon  # noqa: E402,F401
from genzoo.data import folder as _folder  # noqa: E402,F401
from genzoo.data import mnist as _mnist  # noqa: E402,F401
from genzoo.data import toy as _toy  # noqa: E402,F401
from genzoo.data import cifar as _cifar  # noqa: E402,F401

__all__ = ["ImageDataset", "ImageInfo", "every_tenth_split", "load_dataset", "register_dataset", "dataset_kinds"]
