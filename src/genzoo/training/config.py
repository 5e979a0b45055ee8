"""The trainer's settings; presets and ``--set`` reach them by the same names as model keys."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class TrainConfig:
    batch_size: int = 32
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    grad_clip: float = 0.0  # max global gradient norm per player; 0 = no clipping (the norm is still logged)
    steps: int = 0  # total optimiser rounds; 0 = decided by epochs, or 2000 when both are 0
    epochs: float = 0.0
    time_budget_s: float = 0.0  # stop (with a checkpoint) after the step that passes this many seconds; 0 = none
    log_every: int = 10
    sample_every: int = 500  # 0 turns periodic sample grids off
    checkpoint_every: int = 200
    eval_every: int = 0  # 0 = evaluate the test split with every checkpoint; -1 = never
    n_samples: int = 64
    temperature: float = 1.0

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.steps < 0 or self.epochs < 0:
            raise ValueError("steps and epochs must be >= 0")
        if self.steps and self.epochs:
            raise ValueError("give steps or epochs, not both")
        if self.log_every < 1 or self.checkpoint_every < 1:
            raise ValueError("log_every and checkpoint_every must be >= 1")
        if self.sample_every < 0 or self.n_samples < 1:
            raise ValueError("sample_every must be >= 0 and n_samples >= 1")
