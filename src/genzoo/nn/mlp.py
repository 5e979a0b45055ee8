"""Fully connected stacks: the one builder behind every MLP in genzoo (encoders and decoders of the
autoencoders and VAEs, the GAN generators and discriminators, EBGAN's autoencoder).

``mlp([d0, d1, ..., dn], act)`` is Linear(d0, d1), act, Linear(d1, d2), act, ..., Linear(d_{n-1}, dn),
with an activation after the last layer too unless ``last_activation=False``. It returns the layers as a
list, so a caller can splice them into a larger ``nn.Sequential`` (a flatten before, a head after) and the
parameter names stay the indices of that one sequence.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def mlp(sizes: list[int], activation: Callable[[], nn.Module], *, last_activation: bool = True) -> list[nn.Module]:
    """Linear layers between consecutive ``sizes``, each followed by ``activation()`` (the last one only if
    ``last_activation``)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(sizes) - 2:
            layers.append(activation())
    return layers
