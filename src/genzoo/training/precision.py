"""How one player's update is computed: its loss under autocast, the backward pass and the step.

Mixed precision after Micikevicius et al. 2018, "Mixed Precision Training", arXiv:1710.03740:
the forward pass runs in a 16-bit float where it is safe (``torch.autocast`` picks the operations),
the weights and the optimiser state stay float32, and with float16 the loss is multiplied by a
scale before the backward pass so that small gradients do not flush to zero (Sec. 3.2, loss
scaling); the gradients are divided by it again before clipping and the step. A step whose scaled
gradients overflow is skipped and the scale halved (``torch.amp.GradScaler``, one per player: a
GAN's discriminator and generator have gradients of different sizes).

* ``fp32`` -- no autocast (the default).
* ``bf16`` -- autocast to bfloat16, no scaling (bfloat16 has float32's exponent range).
* ``fp16`` -- autocast to float16 with dynamic loss scaling; the scales are saved in the
  checkpoint so ``--resume`` continues exactly.

Only the training losses run under autocast: held-out likelihoods, sampling and the closed-form
(EM) updates run in the model's own dtype (float32; float64 for the mixtures).
"""

from __future__ import annotations

import contextlib

import torch

from genzoo.errors import GenzooError
from genzoo.models.base import ModelOutput

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Engine:
    """One process: the trainer asks it for each player's loss, backward pass and optimiser step.

    :class:`genzoo.training.distributed.DDPEngine` is the same with each player's loss computed
    through its own DistributedDataParallel module.
    """

    def __init__(self, model, players: list[str], device: torch.device, precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise GenzooError(f"precision {precision!r}: valid: {', '.join(PRECISIONS)}")
        self.model, self.device, self.precision = model, torch.device(device), precision
        scaled = precision == "fp16" and not model.gradient_free
        self.scalers = {p: torch.amp.GradScaler(self.device.type) for p in players} if scaled else {}

    def autocast(self):
        """The context a training loss is computed in."""
        if self.precision == "fp32" or self.model.gradient_free:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.precision])

    def player_loss(self, player: str, batch: dict[str, torch.Tensor]) -> ModelOutput:
        with self.autocast():
            return self.model.player_loss(player, batch)

    def update(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        """A closed-form step of a ``gradient_free`` model (never under autocast)."""
        return self.model.update(batch)

    def finite(self, loss: torch.Tensor) -> bool:
        """Whether ``loss`` is finite (in several processes: on every one of them)."""
        return bool(torch.isfinite(loss))

    def backward(self, player: str, loss: torch.Tensor) -> None:
        scaler = self.scalers.get(player)
        (loss if scaler is None else scaler.scale(loss)).backward()

    def unscale(self, player: str, opt: torch.optim.Optimizer) -> None:
        """Gradients back in their own units (before clipping and the norm)."""
        if player in self.scalers:
            self.scalers[player].unscale_(opt)

    def skips_overflow(self, player: str) -> bool:
        """True when a non-finite gradient is an fp16 overflow the scaler handles by skipping the step."""
        return player in self.scalers

    def step(self, player: str, opt: torch.optim.Optimizer) -> None:
        scaler = self.scalers.get(player)
        if scaler is None:
            opt.step()
            return
        scaler.step(opt)  # skipped when unscale_ found an inf or NaN
        scaler.update()

    # -- checkpoint --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """What the checkpoint keeps: the loss scales of fp16 training (nothing otherwise)."""
        return {"scalers": {p: s.state_dict() for p, s in self.scalers.items()}} if self.scalers else {}

    def load_state_dict(self, state: dict, source: str) -> None:
        if not self.scalers:
            return
        saved = state.get("scalers")
        if not isinstance(saved, dict) or set(saved) != set(self.scalers):
            raise GenzooError(
                f"{source}: no loss-scaler state for precision=fp16 (key 'scalers'); cannot resume exactly"
            )
        for p, s in self.scalers.items():
            s.load_state_dict(saved[p])
