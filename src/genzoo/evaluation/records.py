"""A measured number with its protocol: the only shape in which genzoo reports a result."""

from __future__ import annotations

from typing import Any


def record(metric: str, value: float, unit: str, **protocol: Any) -> dict:
    """``{"metric", "value", "unit", "protocol"}``; two values compare only when all but value agree."""
    return {"metric": metric, "value": float(value), "unit": unit, "protocol": protocol}
