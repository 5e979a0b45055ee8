"""The trainer's settings; presets and ``--set`` reach them by the same names as model keys.

Every value is checked by :func:`genzoo.models.registry.make_config` (type, finiteness and the
bounds in each field's metadata) before ``__post_init__`` checks what depends on several fields;
a value read back from a checkpoint goes through the same checks as ``--set``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from genzoo.models.registry import check_fields

MAX_GRID_SAMPLES = 1024  # images in one periodic sample grid


@dataclass
class TrainConfig:
    batch_size: int = field(default=32, metadata={"min": 1})  # at most the split's size is used
    lr: float = 1e-3
    beta1: float = field(default=0.9, metadata={"min": 0.0})
    beta2: float = field(default=0.999, metadata={"min": 0.0})
    weight_decay: float = field(default=0.0, metadata={"min": 0.0})
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    # max global gradient norm per player; 0 = no clipping (the norm is still logged)
    grad_clip: float = field(default=0.0, metadata={"min": 0.0})
    steps: int = 0  # total optimiser rounds; 0 = decided by epochs, or 2000 when both are 0
    epochs: float = field(default=0.0, metadata={"min": 0.0})
    # stop (with a checkpoint) after the step that passes this many seconds; 0 = none
    time_budget_s: float = field(default=0.0, metadata={"min": 0.0})
    log_every: int = field(default=10, metadata={"min": 1})
    sample_every: int = 500  # 0 turns periodic sample grids off
    checkpoint_every: int = field(default=200, metadata={"min": 1})
    eval_every: int = field(default=0, metadata={"min": -1})  # 0 = with every checkpoint; -1 = never
    n_samples: int = field(default=64, metadata={"min": 1, "max": MAX_GRID_SAMPLES})
    temperature: float = field(default=1.0, metadata={"min": 0.0})  # of the periodic sample grids; 0 = argmax
    # the training losses' arithmetic (genzoo.training.precision); evaluation stays float32
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    # augmentation: each training image mirrored left-right with probability 1/2, drawn from (seed, batch index)
    hflip: bool = False
    # Polyak averaging: decay of the exponential moving average of the weights (genzoo.training.ema) that
    # sample, complete and eval use; 0 = off
    ema: float = field(default=0.0, metadata={"min": 0.0})

    def __post_init__(self):
        check_fields(self)  # types, finiteness and the bounds above, for a config built in code too
        if not self.lr > 0:
            raise ValueError("lr must be > 0")
        if not (self.beta1 < 1 and self.beta2 < 1):
            raise ValueError("beta1 and beta2 must be < 1")
        if not self.ema < 1:
            raise ValueError("ema must be < 1 (0 = off)")
        if self.steps and self.epochs:
            raise ValueError("give steps or epochs, not both")
