"""Evaluation during training: the held-out likelihood as a trainer callback.

``genzoo train`` adds :class:`HeldOutLikelihood` for models with a likelihood; on the trainer's
evaluation steps it adds ``<split>_nll_nats``, ``<split>_bits_per_dim`` and ``<split>_nll_images`` (how
many were measured) to the step's record. By default it measures a fixed subset, the split's first
:data:`HELD_OUT_IMAGES` images, so that a checkpoint costs seconds, not the minutes a 10,000-image test
set takes a PixelCNN on a CPU; ``genzoo eval`` measures every image. A progress bar shows the pass
unless the trainer is quiet.
"""

from __future__ import annotations

from genzoo.metrics.likelihood import dataset_nll
from genzoo.models.base import LikelihoodModel
from genzoo.training.callbacks import Callback, Record, Trainer

HELD_OUT_IMAGES = 500  # the fixed subset measured during training: the split's first 500 images


class HeldOutLikelihood(Callback):
    """NLL of ``split``'s first ``max_images`` (None: all of it) on every evaluation step."""

    def __init__(self, split: str = "test", max_images: int | None = HELD_OUT_IMAGES):
        self.split, self.max_images = split, max_images

    @staticmethod
    def applies(model: object) -> bool:
        return isinstance(model, LikelihoodModel) and model.likelihood != "none"

    def on_step_end(self, trainer: Trainer, record: Record) -> None:
        if not trainer.is_eval_step or trainer.cfg.eval_every < 0 or self.split not in trainer.data.splits:
            return
        res = dataset_nll(
            trainer.eval_model, trainer.data, self.split, max_images=self.max_images, progress=not trainer.quiet
        )
        record[f"{self.split}_nll_nats"] = res["nll_nats"]
        record[f"{self.split}_bits_per_dim"] = res["bits_per_dim"]
        record[f"{self.split}_nll_images"] = res["n_images"]
