"""Evaluation during training: the held-out likelihood as a trainer callback.

``genzoo train`` adds :class:`HeldOutLikelihood` for models with a likelihood; on the trainer's
evaluation steps it adds ``<split>_nll_nats`` and ``<split>_bits_per_dim`` to the step's record.
"""

from __future__ import annotations

from genzoo.metrics.likelihood import dataset_nll
from genzoo.models.base import LikelihoodModel
from genzoo.training.callbacks import Callback, Record, Trainer


class HeldOutLikelihood(Callback):
    """NLL of ``split`` (all of it, or its first ``max_images``) on every evaluation step."""

    def __init__(self, split: str = "test", max_images: int | None = None):
        self.split, self.max_images = split, max_images

    @staticmethod
    def applies(model: object) -> bool:
        return isinstance(model, LikelihoodModel) and model.likelihood != "none"

    def on_step_end(self, trainer: Trainer, record: Record) -> None:
        if not trainer.is_eval_step or trainer.cfg.eval_every < 0 or self.split not in trainer.data.splits:
            return
        res = dataset_nll(trainer.model, trainer.data, self.split, max_images=self.max_images)
        record[f"{self.split}_nll_nats"] = res["nll_nats"]
        record[f"{self.split}_bits_per_dim"] = res["bits_per_dim"]
