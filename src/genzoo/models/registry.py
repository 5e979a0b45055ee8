"""Models by name: ``@register_model("pixelrnn")`` on the class, ``build_model(name, ...)`` to make one.

A model class carries a ``Config`` dataclass and a ``presets`` dict of named overrides; a
config is built as defaults <- preset <- ``--set key=value`` overrides, every key checked.
"""
from __future__ import annotations

import dataclasses
import typing

from genzoo.errors import GenzooError, choices_error

_MODELS: dict[str, type] = {}


def register_model(name: str):
    def deco(cls):
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        cls.name = name
        _MODELS[name] = cls
        return cls

    return deco


def available_models() -> dict[str, type]:
    return dict(sorted(_MODELS.items()))


def get_model_class(name: str) -> type:
    models = available_models()
    if name not in models:
        raise choices_error("model", name, models)
    return models[name]


def parse_value(key: str, raw: str, typ) -> object:
    """Parse a ``--set`` string into the dataclass field's type, with a one-line error."""
    origin = typing.get_origin(typ)
    if origin is typing.Literal:
        allowed = typing.get_args(typ)
        if raw not in allowed:
            raise choices_error(f"value for {key}", raw, allowed)
        return raw
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if raw.lower() in ("none", "null"):
            return None
        return parse_value(key, raw, args[0])
    if origin in (tuple, list):
        inner = typing.get_args(typ)[0] if typing.get_args(typ) else str
        vals = [parse_value(key, p, inner) for p in raw.split(",") if p != ""]
        return tuple(vals) if origin is tuple else vals
    try:
        if typ is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ in (int, float, str):
            return typ(raw)
    except ValueError:
        raise GenzooError(f"bad value for {key}: {raw!r} is not a {typ.__name__}") from None
    raise GenzooError(f"{key} cannot be set from the command line")


def field_types(config_cls) -> dict[str, object]:
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def check_value(key: str, value, typ) -> object:
    """Coerce a value (from JSON or a preset) to the field type, rejecting the wrong kind."""
    if isinstance(value, str) and typ is not str:
        return parse_value(key, value, typ)
    origin = typing.get_origin(typ)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def make_config(config_cls, preset: dict | None = None, overrides: dict[str, str] | None = None,
                *, what: str = "key"):
    """defaults <- preset <- overrides (strings, parsed by field type); unknown keys are errors."""
    types = field_types(config_cls)
    values: dict[str, object] = {}
    for key, val in (preset or {}).items():
        if key not in types:
            raise choices_error(what, key, types)
        values[key] = check_value(key, val, types[key])
    for key, raw in (overrides or {}).items():
        if key not in types:
            raise choices_error(what, key, types)
        values[key] = parse_value(key, raw, types[key]) if isinstance(raw, str) else check_value(key, raw, types[key])
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as e:
        raise GenzooError(f"bad config for {config_cls.__name__}: {e}") from None


def resolve_configs(model_cls, train_cls, preset: str | None = None, overrides: dict[str, str] | None = None):
    """Split a preset and ``--set`` overrides between the model's Config and the trainer's.

    A key belongs to whichever dataclass has it; a key in neither is an error listing both.
    """
    presets = getattr(model_cls, "presets", {})
    if preset is not None and preset not in presets:
        raise choices_error(f"preset for {model_cls.name}", preset, presets)
    model_keys, train_keys = set(field_types(model_cls.Config)), set(field_types(train_cls))
    model_vals: dict[str, dict] = {"preset": {}, "set": {}}
    train_vals: dict[str, dict] = {"preset": {}, "set": {}}
    for source, items in (("preset", presets.get(preset, {})), ("set", overrides or {})):
        for key, val in items.items():
            if key in model_keys:
                model_vals[source][key] = val
            elif key in train_keys:
                train_vals[source][key] = val
            else:
                raise choices_error("key", key, model_keys | train_keys)
    return (make_config(model_cls.Config, model_vals["preset"], model_vals["set"]),
            make_config(train_cls, train_vals["preset"], train_vals["set"]))


def build_model(name: str, info, config=None):
    """Build a registered model for data described by ``info``; ``config`` defaults to the class's."""
    cls = get_model_class(name)
    return cls(config if config is not None else cls.Config(), info)
