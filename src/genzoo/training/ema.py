"""Polyak averaging: an exponential moving average of the weights, the weights sampling and evaluation use.

Polyak & Juditsky 1992, "Acceleration of stochastic approximation by averaging", SIAM J. Control Optim.
30(4); PixelCNN++ (Salimans et al. 2017, arXiv:1701.05517, sec. 3) evaluates with an average of decay
0.9995. After optimiser round t = 1, 2, ... with weights θ_t:

    d_t = min(decay, (1 + t) / (10 + t))
    θ̄_t = d_t θ̄_{t-1} + (1 - d_t) θ_t,      θ̄_0 = θ_0 (the initial weights)

The warm-up of d_t (TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``) keeps the initial
weights from dominating a short run. Buffers (batch-norm statistics, fitted sampling Gaussians) are
copied from the trained model, not averaged. The average lives in a copy of the model, in eval mode,
so it samples and evaluates like any model; the trainer saves it in the checkpoint beside the trained
weights and ``load_run`` hands it to ``sample``, ``complete`` and ``eval``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay(decay: float, step: int) -> float:
    """d_t of the module docstring for round ``step`` (1-based)."""
    return min(decay, (1.0 + step) / (10.0 + step))


class WeightAverage:
    """The running average θ̄ of ``model``'s parameters, held in ``self.model`` (a copy of the model)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._avg: list[torch.Tensor] = list(self.model.parameters())
        self._bufs = list(self.model.buffers())

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Fold in the weights after round ``step`` (1-based)."""
        w = 1.0 - ema_decay(self.decay, step)
        params: list[torch.Tensor] = list(model.parameters())
        if self._avg:
            torch._foreach_lerp_(self._avg, params, w)  # θ̄ + w (θ - θ̄) = d θ̄ + (1 - d) θ
        for a, b in zip(self._bufs, model.buffers(), strict=True):
            a.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()
