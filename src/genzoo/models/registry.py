"""Models by name: ``@register_model("pixelrnn")`` on the class, ``build_model(name, ...)`` to make one.

A model class carries a ``Config`` dataclass and a ``presets`` dict of named overrides; a
config is built as defaults <- preset <- ``--set key=value`` overrides, every key checked.

Config values are checked here, once, whatever their source (``--set`` strings, presets, the
JSON config saved in a checkpoint): each is converted to its field's declared type or refused
with one line naming the key and the value. The rules every config class inherits:

* an ``int`` field takes integers only (``16.5``, ``"many"`` and ``True`` are refused) within
  ``0 .. 2**63 - 1``: integers in a config are sizes, counts and periods; a field that takes
  other integers declares its bounds with ``field(metadata={"min": ..., "max": ...})``;
* a ``float`` field takes finite numbers only (NaN and infinities are refused) unless it declares
  ``field(metadata={"nonfinite": True})``; ``min``/``max`` metadata bound it too;
* ``bool``, ``Literal[...]``, ``tuple[...]`` and optional fields take only their own kind;
* the dataclass's ``__post_init__`` checks what depends on several fields; its ``ValueError``
  becomes a one-line :class:`~genzoo.errors.GenzooError` that repeats the values of the keys it names.

A model is built by :func:`build_model_checked`, which refuses a model above :data:`MAX_PARAMETERS`
numbers or :data:`MAX_MODULES` submodules before allocating past the limit: every tensor factory
call made while the model is built is counted before it runs. (Measuring on PyTorch's ``meta``
device first would allocate nothing at all, but its first use in a process costs about as much
CPU time as importing torch, on every command that builds a model.)
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
import types
import typing

import torch
from torch.nn.modules import module as _module
from torch.overrides import TorchFunctionMode

from genzoo.errors import GenzooError, choices_error
from genzoo.models.base import TrainableModel

# Numbers allocated to build one model (parameters, buffers, temporaries of their initialisation).
# 500 million float32 numbers are 2 GB of weights; training with Adam holds about four times that
# (weights, gradients, two moment estimates): 8 GB, a third of a 24 GB machine, leaving the rest
# for activations and data. The largest preset (pixelcnn_pp cifar) has 54 million.
MAX_PARAMETERS = 500_000_000
# Submodules of one model. The largest preset (pixelcnn_pp cifar) has 539; a layer count in the millions is
# refused while the model is being built instead of running for hours.
MAX_MODULES = 5_000
INT_MAX = 2**63 - 1  # integers beyond int64 overflow in torch and numpy

_MODELS: dict[str, type[TrainableModel]] = {}


def register_model(name: str):
    def deco(cls):
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        cls.name = name
        _MODELS[name] = cls
        return cls

    return deco


def available_models() -> dict[str, type[TrainableModel]]:
    return dict(sorted(_MODELS.items()))


def get_model_class(name: str) -> type[TrainableModel]:
    models = available_models()
    if not isinstance(name, str) or name not in models:
        raise choices_error("model", name, models)
    return models[name]


# --------------------------------------------------------------------------------------------------
# Values


def _show(value: object) -> str:
    """A value as it appears in an error: its repr, cut to stay on one short line."""
    s = repr(value)
    return s if len(s) <= 60 else s[:57] + "..."


def _bad(key: str, value: object, why: str) -> GenzooError:
    return GenzooError(f"bad value for {key}: {_show(value)} {why}")


def _is_union(typ) -> bool:
    return typing.get_origin(typ) in (typing.Union, types.UnionType)


def convert(key: str, value: object, typ, meta: typing.Mapping | None = None) -> object:
    """``value`` (a ``--set`` string, or a preset or JSON value) as the field type ``typ``.

    ``meta`` is the field's metadata (``min``, ``max``, ``nonfinite``). Anything of the wrong kind
    or out of range is a one-line :class:`GenzooError` naming ``key`` and the value.
    """
    meta = meta or {}
    origin = typing.get_origin(typ)
    if origin is typing.Literal:
        allowed = typing.get_args(typ)
        if not isinstance(value, str) or value not in allowed:
            raise choices_error(f"value for {key}", value, allowed)
        return value
    if _is_union(typ):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if type(None) in typing.get_args(typ) and (
            value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))
        ):
            return None
        if len(args) != 1:
            raise GenzooError(f"{key} cannot be set from the command line")
        return convert(key, value, args[0], meta)
    if origin in (tuple, list):
        if isinstance(value, str):
            items: list = [p.strip() for p in value.split(",") if p.strip() != ""]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise _bad(key, value, "is not a list of values")
        parts = typing.get_args(typ)
        inner: list[typing.Any]
        if not parts:
            inner = [str] * len(items)
        elif parts[-1] is Ellipsis or origin is list:
            inner = [parts[0]] * len(items)
        else:
            if len(items) != len(parts):
                raise _bad(key, value, f"is not {len(parts)} comma-separated values")
            inner = list(parts)
        vals = [convert(key, v, t, meta) for v, t in zip(items, inner)]
        return tuple(vals) if origin is tuple else vals
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
            return False
        raise _bad(key, value, "is not true or false")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            number: float = value
        elif isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                raise _bad(key, value, "is not an integer") from None
        else:
            raise _bad(key, value, "is not an integer")
        return _in_range(key, number, meta.get("min", 0), meta.get("max", INT_MAX))
    if typ is float:
        try:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                number = float(value)
            elif isinstance(value, str):
                number = float(value.strip())
            else:
                raise ValueError
        except ValueError:
            raise _bad(key, value, "is not a number") from None
        except OverflowError:
            raise _bad(key, value, "is not a finite number") from None
        if not math.isfinite(number) and not meta.get("nonfinite", False):
            raise _bad(key, value, "is not a finite number")
        return _in_range(key, number, meta.get("min"), meta.get("max"))
    if typ is str:
        if not isinstance(value, str):
            raise _bad(key, value, "is not a string")
        return value
    raise GenzooError(f"{key} cannot be set from the command line")


def _in_range(key: str, number, lo, hi):
    if lo is not None and number < lo:
        raise _bad(key, number, f"is out of range (must be >= {lo})")
    if hi is not None and number > hi:
        raise _bad(key, number, f"is out of range (must be <= {hi})")
    return number


def parse_value(key: str, raw: str, typ) -> object:
    """Parse a ``--set`` string into the dataclass field's type, with a one-line error."""
    return convert(key, raw, typ)


def field_types(config_cls) -> dict[str, object]:
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def field_meta(config_cls) -> dict[str, typing.Mapping]:
    return {f.name: f.metadata for f in dataclasses.fields(config_cls)}


def check_fields(config) -> None:
    """Convert and check every field of a dataclass instance in place (for a ``__post_init__``), so a
    config constructed directly in code obeys the same rules as one made by :func:`make_config`."""
    types_, metas = field_types(type(config)), field_meta(type(config))
    for key, typ in types_.items():
        object.__setattr__(config, key, convert(key, getattr(config, key), typ, metas[key]))


def check_value(key: str, value, typ) -> object:
    """Coerce a value (from JSON or a preset) to the field type, rejecting the wrong kind."""
    return convert(key, value, typ)


def _config_error(config_cls, error: Exception, values: dict) -> GenzooError:
    """A ``__post_init__`` failure as one line, with the values of the keys its message names."""
    msg = " ".join(str(error).split()) or type(error).__name__
    named = []
    for f in dataclasses.fields(config_cls):
        if re.search(rf"(?<![\w.]){re.escape(f.name)}(?![\w])", msg):
            value = values.get(f.name, f.default if f.default is not dataclasses.MISSING else "?")
            named.append(f"{f.name}={_show(value)}")
    where = f" ({', '.join(named)})" if named else ""
    return GenzooError(f"bad config for {config_cls.__name__}: {msg}{where}")


def make_config(
    config_cls,
    preset: dict | None = None,
    overrides: dict[str, str] | None = None,
    *,
    what: str = "key",
    source: str | None = None,
):
    """defaults <- preset <- overrides (strings, parsed by field type); unknown keys are errors.

    ``source`` (a file) starts every error message, for configs read from a checkpoint.
    """
    try:
        types_ = field_types(config_cls)
        metas = field_meta(config_cls)
        values: dict[str, object] = {}
        for layer in (preset, overrides):
            if layer is None:
                continue
            if not isinstance(layer, dict):
                raise GenzooError(
                    f"{config_cls.__name__} settings must be a mapping of key to value, got {type(layer).__name__}"
                )
            for key, val in layer.items():
                if key not in types_:
                    raise choices_error(what, key, types_)
                values[key] = convert(key, val, types_[key], metas[key])
        try:
            return config_cls(**values)
        except (TypeError, ValueError) as e:
            raise _config_error(config_cls, e, values) from None
    except GenzooError as e:
        if source:
            raise GenzooError(f"{source}: {e}") from None
        raise


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
    return (
        make_config(model_cls.Config, model_vals["preset"], model_vals["set"]),
        make_config(train_cls, train_vals["preset"], train_vals["set"]),
    )


# --------------------------------------------------------------------------------------------------
# Building within limits


class _TooLarge(Exception):
    pass


def _settings(config) -> str:
    """The config's values that differ from the class defaults, ``key=value, ...`` (or 'its defaults')."""
    out = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        )
        if value != default:
            out.append(f"{f.name}={_show(value)}")
    return ", ".join(out) or "its defaults"


def _numel(dims) -> int | None:
    """Elements of a tensor of size ``dims`` (a sequence of ints), or None when that is not a size."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list, torch.Size)):
        dims = dims[0]
    try:
        sizes = [operator.index(d) for d in dims]
    except TypeError:
        return None
    return math.prod(sizes) if all(d >= 0 for d in sizes) else None


def _count(stop, start=0, step=1) -> int | None:
    try:
        return max(0, math.ceil((float(stop) - float(start)) / float(step)))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None


def _requested(func, args: tuple, kwargs: dict) -> int | None:
    """Elements a tensor factory call is about to allocate; None for every other call."""
    if func in (torch.empty, torch.zeros, torch.ones, torch.rand, torch.randn):
        return _numel(args or (kwargs.get("size", ()),))
    if func in (torch.full, torch.empty_strided):
        return _numel((args[0] if args else kwargs.get("size", ()),))
    if func is torch.randint:
        size = kwargs.get("size", next((a for a in args if isinstance(a, (tuple, list, torch.Size))), ()))
        return _numel((size,))
    if func in (torch.Tensor.new_empty, torch.Tensor.new_zeros, torch.Tensor.new_ones):
        return _numel(args[1:] or (kwargs.get("size", ()),))
    if func is torch.Tensor.new_full:
        return _numel((args[1] if len(args) > 1 else kwargs.get("size", ()),))
    if func is torch.arange:
        return _count(*args[:3]) if args else None
    if func in (torch.linspace, torch.logspace):
        steps = args[2] if len(args) > 2 else kwargs.get("steps")
        return steps if isinstance(steps, int) else None
    if func is torch.eye:
        n = args[0] if args else kwargs.get("n")
        m = args[1] if len(args) > 1 else kwargs.get("m", n)
        return _numel((n, m))
    if func is torch.randperm:
        return _numel(args[:1])
    return None


class _BuildGuard(TorchFunctionMode):
    """Counts what a model allocates while it is built; raises :class:`_TooLarge` *before* a tensor factory
    call (``torch.empty``, ``zeros``, ``randn``, ...) would take the total past :data:`MAX_PARAMETERS`."""

    def __init__(self):
        super().__init__()
        self.allocated = 0
        self.torch_error: BaseException | None = None  # the last exception a torch function raised

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        n = _requested(func, args, kwargs)
        if n is not None:
            self.allocated += n
            if self.allocated > MAX_PARAMETERS:
                raise _TooLarge(f"more than {MAX_PARAMETERS:,} numbers")
        try:
            return func(*args, **kwargs)
        except Exception as e:
            self.torch_error = e
            raise


def build_model_checked(cls, config, info, *, source: str | None = None):
    """``cls(config, info)`` within the limits: refused with one line naming the limit and the settings.

    The model is built under a guard that refuses, before allocating, any tensor factory call that
    would take the numbers allocated for the model (its parameters and buffers, and the
    temporaries of their initialisation) past :data:`MAX_PARAMETERS`, and that stops at more
    than :data:`MAX_MODULES` submodules; a finished model holding more than :data:`MAX_PARAMETERS`
    parameters and buffers (from operations other than factories) is refused too. ``hidden=10**7``
    is thus refused at once, and so is a checkpoint whose saved config asks for it. A config the
    model cannot be built from (a size a torch layer refuses, or memory the machine lacks) is a one-line
    error as well; an exception raised by genzoo's own code keeps its traceback. ``source`` (a
    checkpoint) starts the message.
    """
    modules = {"n": 0}

    def on_module(module, name, submodule):
        modules["n"] += 1
        if modules["n"] > MAX_MODULES:
            raise _TooLarge(f"more than {MAX_MODULES:,} modules")
        return None

    prefix = f"{source}: " if source else ""
    what = f"{cls.name} with {_settings(config)} on {tuple(info.shape)} data"
    limit = (
        f"the limit is {MAX_PARAMETERS:,} numbers (parameters and buffers) in {MAX_MODULES:,} modules "
        "(MAX_PARAMETERS and MAX_MODULES in genzoo.models.registry)"
    )
    handle = _module.register_module_module_registration_hook(on_module)
    guard = _BuildGuard()
    try:
        with guard:
            model = cls(config, info)
    except _TooLarge as e:
        raise GenzooError(f"{prefix}{what} needs {e}; {limit}") from None
    except GenzooError as e:  # the model's own refusal of the config or the data
        raise GenzooError(f"{prefix}{e}") from None
    except (RuntimeError, ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError, MemoryError) as e:
        if not (isinstance(e, MemoryError) or e is guard.torch_error):
            raise  # raised by genzoo's own code, not by a torch function refusing its sizes: a bug, keeps its traceback
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise GenzooError(f"{prefix}{what} cannot be built ({first[:200]})") from None
    finally:
        handle.remove()
    n = sum(t.numel() for t in {id(t): t for t in [*model.parameters(), *model.buffers()]}.values())
    if n > MAX_PARAMETERS:
        raise GenzooError(f"{prefix}{what} has {n:,} parameters and buffers; {limit}")
    return model


def build_model(name: str, info, config=None):
    """Build a registered model for data described by ``info``; ``config`` defaults to the class's."""
    cls = get_model_class(name)
    return build_model_checked(cls, config if config is not None else cls.Config(), info)
