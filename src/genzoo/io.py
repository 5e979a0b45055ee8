"""Files written so that a crash never leaves half of one: write a temporary file in the same
folder, flush and fsync it, then rename it over the target (POSIX rename is atomic).

Also the one JSON writer, :func:`write_json` (non-finite floats are written as ``null``: bare
``NaN`` is not JSON), and the one reader of the JSON files genzoo writes, :func:`read_json`
(a file that is missing, too large, not UTF-8, not JSON or not an object is one line naming it).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genzoo.errors import GenzooError

MAX_JSON_BYTES = 64 << 20  # run.json, eval.json, probe.json ... are kilobytes; a larger file is not one of them


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` then atomically rename onto ``path`` (same folder, fsync'd)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def finite_json(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no NaN or infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically; NaN and infinities become ``null``."""
    atomic_write_text(path, json.dumps(finite_json(obj), indent=2, allow_nan=False) + "\n")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (genzoo writes null for a number that is not finite)")


def read_json(path: Path, what: str = "JSON file") -> dict:
    """The JSON object in ``path`` (``what`` names it in errors: "eval.json", "run description").

    A missing or unreadable file, one above :data:`MAX_JSON_BYTES`, text that is not UTF-8 or not
    JSON (the line and column are named), a bare ``NaN``/``Infinity``, or a top level that is not an
    object is a one-line :class:`GenzooError` naming the file.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise GenzooError(f"{path}: {what} is {path.stat().st_size:,} bytes; the limit is {MAX_JSON_BYTES:,}")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise GenzooError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise GenzooError(f"{path}: is a folder, not a {what}") from None
    except OSError as e:
        raise GenzooError(f"{path}: cannot read the {what} ({e.strerror or type(e).__name__})") from None
    except UnicodeDecodeError as e:
        raise GenzooError(f"{path}: {what} is not UTF-8 text (byte {e.start})") from None
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise GenzooError(f"{path}: line {e.lineno}, column {e.colno}: {what} is not valid JSON ({e.msg})") from None
    except ValueError as e:
        raise GenzooError(f"{path}: {what}: {e}") from None
    except RecursionError:
        raise GenzooError(f"{path}: {what} is nested too deeply") from None
    if not isinstance(obj, dict):
        raise GenzooError(f"{path}: {what} must be a JSON object, got {json_kind(obj)}")
    return obj


def json_kind(value: Any) -> str:
    """How a JSON value is named in errors: 'a list', 'a string', 'null', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )
