"""Per-step behaviour around the training loop, as callbacks.

:class:`~genzoo.training.trainer.Trainer` runs the optimiser rounds and nothing else; after each
finished round it builds the step's record (losses, throughput) and hands it to each callback in
order. The default list is :func:`default_callbacks`: the model's diagnostics, the metrics log,
periodic sample grids and checkpoints. A caller or a family adds its own (held-out evaluation, an
image history pool, rank-0-only writes) by passing ``callbacks=`` -- ``fit`` is never edited.

Order matters and is fixed: callbacks that add numbers to the record (held-out evaluation) run
before the log writes it, and the checkpoint is written last, after everything the step produced.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from genzoo.data.base import ImageDataset
from genzoo.errors import GenzooError
from genzoo.models.base import GenerativeModel, TrainableModel
from genzoo.training.config import TrainConfig
from genzoo.viz import sample_picture, save_png

Record = dict[str, Any]


class Trainer(Protocol):
    """What a callback may read of the trainer (:class:`genzoo.training.trainer.Trainer`) and call."""

    model: TrainableModel
    data: ImageDataset
    cfg: TrainConfig
    run_dir: Path
    device: torch.device
    seed: int
    quiet: bool
    step: int
    last_round_seconds: float
    is_log_step: bool
    is_checkpoint_step: bool
    is_eval_step: bool
    is_final_step: bool

    @property
    def eval_model(self) -> Any:
        """The weights to sample and evaluate: the moving average when ``ema`` is on."""

    def log(self, record: Record) -> None: ...

    def save(self) -> None: ...


class Callback:
    """Hooks called by the trainer; each does nothing unless overridden."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first round of this ``fit`` (after a resume, at the restored step)."""

    def on_step_end(self, trainer: Trainer, record: Record) -> None:
        """After each finished round; ``record`` may be extended (it is logged on log steps)."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last round, also when training stops early (time budget, interrupt)."""


class Diagnostics(Callback):
    """The model's warnings about the logged numbers, each distinct one shown at most once per 500 steps."""

    def __init__(self, every: int = 500):
        self.every = every
        self._shown: dict[str, int] = {}  # warning text -> step it was last shown

    def on_step_end(self, trainer: Trainer, record: Record) -> None:
        if not trainer.is_log_step:
            return
        warnings = trainer.model.diagnose(record)
        if warnings:
            record["warnings"] = warnings
        for w in warnings:
            if trainer.step - self._shown.get(w, -(10**9)) >= self.every:
                self._shown[w] = trainer.step
                if not trainer.quiet:
                    tqdm.write(f"warning (step {trainer.step}): {w}", file=sys.stderr)


class MetricsLog(Callback):
    """Appends the record to RUN/metrics.jsonl on log, checkpoint and evaluation steps."""

    def on_step_end(self, trainer: Trainer, record: Record) -> None:
        if trainer.is_log_step:
            trainer.log(record)


class SampleGrids(Callback):
    """A grid of samples every ``sample_every`` steps and at the end, drawn with the run's seed."""

    def on_step_end(self, trainer: Trainer, record: Record) -> None:
        every = trainer.cfg.sample_every
        if every and (trainer.step % every == 0 or trainer.is_final_step):
            self.draw(trainer)

    @staticmethod
    def draw(trainer: Trainer) -> None:
        model = trainer.eval_model
        if not (model.can_sample and isinstance(model, GenerativeModel)):  # a classifier draws nothing
            return
        g = torch.Generator(device=trainer.device).manual_seed(trainer.seed)
        n = trainer.cfg.n_samples if not trainer.data.info.continuous else max(trainer.cfg.n_samples, 1000)
        try:
            x = model.sample(n, generator=g, temperature=trainer.cfg.temperature, condition=model.default_condition(n))
        except GenzooError as e:  # e.g. a model whose samples need something the run lacks
            tqdm.write(f"warning (step {trainer.step}): no sample grid: {e}", file=sys.stderr)
            return
        save_png(sample_picture(x, trainer.data), trainer.run_dir / "samples" / f"step_{trainer.step:07d}.png")


class Checkpoints(Callback):
    """Writes the checkpoint every ``checkpoint_every`` steps and at the end (the last callback).

    ``trainer.save`` refuses non-finite weights and keeps the checkpoint it replaces as
    RUN/checkpoint.previous.pt until the new weights have given a finite loss (the next round, or a
    loss probe after the last one); a NaN stop puts the previous one back. See
    :mod:`genzoo.training.trainer`.
    """

    def on_step_end(self, trainer: Trainer, record: Record) -> None:
        if trainer.is_checkpoint_step:
            trainer.save()


def default_callbacks() -> list[Callback]:
    return [Diagnostics(), MetricsLog(), SampleGrids(), Checkpoints()]


class OnStep(Callback):
    """Calls ``fn(trainer)`` after every finished round (timing, test probes, custom schedules)."""

    def __init__(self, fn: Callable[[Trainer], None]):
        self.fn = fn

    def on_step_end(self, trainer: Trainer, record: Record) -> None:
        self.fn(trainer)
