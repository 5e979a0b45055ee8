"""Request fields, checked once at the boundary: every bad value is a :class:`RequestError` with an
HTTP status (4xx) and one line naming the field and the value, as the CLI's option checks do.

JSON numbers are taken as they are: a field that must be an integer refuses ``1.5``, ``true`` and
``"3"``; a field that must be a number refuses NaN and the infinities (Python's ``json`` reads the
literals ``NaN`` and ``Infinity``) and strings.
"""

from __future__ import annotations

import math
from typing import Any

from genzoo.errors import GenzooError


class RequestError(GenzooError):
    """A request the server refuses: ``status`` (4xx) and a one-line message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(one_line(message))
        self.status = status


def one_line(text: str, limit: int = 300) -> str:
    """A message as one line of at most ``limit`` characters (a value echoed back cannot add lines)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def shown(value: Any) -> str:
    """A value as a short repr for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def integer(body: dict, key: str, default: int | None, lo: int, hi: int) -> int:
    """``body[key]``: an integer in [lo, hi] (``default`` when absent; absent and no default: an error)."""
    value = body.get(key, default)
    if value is None:
        raise RequestError(f"{key}: missing (an integer {lo}-{hi})")
    if not is_int(value) or not lo <= value <= hi:
        raise RequestError(f"{key} {shown(value)}: must be an integer {lo}-{hi}")
    return int(value)


def number(body: dict, key: str, default: float, lo: float, hi: float) -> float:
    """``body[key]``: a finite number in [lo, hi]."""
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RequestError(f"{key} {shown(value)}: must be a finite number {lo:g}-{hi:g}")
    if not lo <= value <= hi:
        raise RequestError(f"{key} {shown(value)}: must be a finite number {lo:g}-{hi:g}")
    return float(value)


def choice(body: dict, key: str, default: str, valid: tuple[str, ...] | list[str]) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or value not in valid:
        raise RequestError(f"{key} {shown(value)}: must be one of {', '.join(valid)}")
    return value


def numbers(body: dict, key: str, length: int, lo: float, hi: float) -> list[float]:
    """``body[key]``: a list of exactly ``length`` finite numbers in [lo, hi]."""
    value = body.get(key)
    if not isinstance(value, list) or len(value) != length:
        raise RequestError(f"{key}: must be a list of {length} numbers, got {_kind(value)}")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise RequestError(f"{key}[{i}] {shown(v)}: must be a finite number {lo:g}-{hi:g}")
    return [float(v) for v in value]


def integers(value: Any, key: str, length: int, lo: int, hi: int) -> list[int]:
    """A list of exactly ``length`` integers in [lo, hi]."""
    if not isinstance(value, list) or len(value) != length:
        raise RequestError(f"{key}: must be a list of {length} integers, got {_kind(value)}")
    for i, v in enumerate(value):
        if not is_int(v) or not lo <= v <= hi:
            raise RequestError(f"{key}[{i}] {shown(v)}: must be an integer {lo}-{hi}")
    return [int(v) for v in value]


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return "nothing" if value is None else type(value).__name__
