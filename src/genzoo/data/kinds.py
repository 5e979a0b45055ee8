"""The registry of data kinds: each loader module registers itself with :func:`register_dataset`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from genzoo.data.base import ImageDataset, reason
from genzoo.data.labels import hide_labels
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
    """Register ``fn(spec, path, **options)`` as the loader of ``name``. :func:`load_dataset` hands a
    kind that ``needs_path`` a non-empty ``path: str``; any other kind gets ``str | None``."""

    def deco(fn):
        _KINDS[name] = DatasetKind(name, syntax, help, fn, needs_path)
        return fn

    return deco


def dataset_kinds() -> list[DatasetKind]:
    return [_KINDS[k] for k in sorted(_KINDS)]


def load_dataset(spec: str, **options) -> ImageDataset:
    """Load ``KIND`` or ``KIND:PATH``. Options (``size``, ``colors``, ``palette``) go to the loader."""
    if not isinstance(spec, str):
        raise GenzooError(f"dataset spec must be a string such as 'pokemon' or 'folder:PATH', got {spec!r:.80}")
    if not spec.isprintable():
        raise GenzooError(f"dataset spec {spec!r}: holds a control character (a newline?)")
    kind, colon, path = spec.partition(":")
    if kind not in _KINDS:
        raise choices_error("dataset", kind, [k.syntax for k in _KINDS.values()])
    entry = _KINDS[kind]
    if (entry.needs_path or colon) and not path:
        raise GenzooError(f"dataset {spec!r} needs a path after the colon: {entry.syntax}")
    label_options = {k: options.pop(k) for k in ("labels_per_class", "label_seed") if k in options}
    try:
        data = entry.loader(spec, path or None, **options)
    except OSError as e:  # a path the system refuses (name too long, permission, ...) before a loader could name it
        raise GenzooError(f"{e.filename or spec}: {e.strerror or reason(e)}") from None
    per_class, label_seed = label_options.get("labels_per_class"), label_options.get("label_seed")
    if per_class is not None:  # semi-supervised: most training labels hidden (genzoo.data.labels)
        label_seed = 0 if label_seed is None else label_seed
        data = hide_labels(data, per_class, label_seed)
        options.update(labels_per_class=per_class, label_seed=label_seed)
    elif label_seed is not None:
        raise GenzooError(f"{spec}: label_seed applies only with labels_per_class")
    # Recorded so a run can reload the same images (a fitted palette is saved separately).
    data.meta.setdefault("options", {k: v for k, v in options.items() if v is not None and k != "palette"})
    return data
