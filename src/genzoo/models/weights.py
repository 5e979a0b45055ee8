"""Versions of a model's weight layout, so that a checkpoint written by an older genzoo is either
converted or refused with one line, never failed with a shape traceback.

A model whose parameter names or shapes changed between releases inherits :class:`VersionedWeights`,
raises ``weights_version`` and converts the older layouts in ``upgrade_weights``. Every other model is at
version 1. A checkpoint records the version it was written with (``weights_version``; a checkpoint
without the key is version 1), and :func:`upgrade` brings its weights to the model's layout.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from genzoo.errors import GenzooError

Weights = dict[str, torch.Tensor]


class VersionedWeights:
    """A capability: the model's weight layout has a version above 1 and older layouts are converted."""

    weights_version: ClassVar[int] = 1

    @classmethod
    def upgrade_weights(cls, weights: Weights, version: int) -> Weights:
        """Weights of layout ``version`` (< ``weights_version``) in this release's layout."""
        raise NotImplementedError


def weights_version(model) -> int:
    """The layout version of ``model``'s weights: what a checkpoint of it records."""
    return model.weights_version if isinstance(model, VersionedWeights) else 1


def upgrade(model, weights: Weights, version: int, source: str) -> Weights:
    """``weights`` written at layout ``version`` in ``model``'s current layout; a one-line error naming the
    versions when that is impossible (a checkpoint from a newer genzoo)."""
    current = weights_version(model)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise GenzooError(f"{source}: weights_version must be an integer >= 1, got {version!r}")
    if version == current:
        return weights
    name = type(model).__name__
    if version > current:
        raise GenzooError(
            f"{source}: the weights of {name} are in format version {version}, newer than this "
            f"genzoo reads (version {current}); use a newer genzoo"
        )
    return type(model).upgrade_weights(dict(weights), version)
