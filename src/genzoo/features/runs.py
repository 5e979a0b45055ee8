"""Feature extractors from genzoo run folders (registering them is importing this module).

* ``classifier:RUN`` -- the penultimate layer of a ``genzoo train classifier`` run
  (:mod:`genzoo.models.classifier`), at the images' native size; its output layer gives p(y | x);
* ``autoencoder:RUN`` -- the code ``encode(x)`` of an autoencoder or VAE run (a VAE's posterior mean).
  The choice for unlabelled data such as the Pokémon sprites, where no classifier can be trained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from genzoo.data.continuous import from_unit, unit_channels
from genzoo.errors import GenzooError
from genzoo.features.extractors import (
    ModuleExtractor,
    register_extractor,
    state_dict_hash,
)
from genzoo.models.base import LatentModel
from genzoo.models.classifier import Classifier
from genzoo.training.run import load_run


class RunExtractor(ModuleExtractor):
    """A network from a genzoo run folder, applied at the run's own image size."""

    def __init__(self, name: str, run, module: nn.Module, dim: int, *, device, batch_size: int):
        self.expected = (unit_channels(run.info), run.info.height, run.info.width)  # (C', H, W) in [0, 1]
        self.spec, self.trained_on = f"{name}:{run.path}", run.data_desc.get("spec", "?")

        def prepare(x: torch.Tensor) -> torch.Tensor:
            if tuple(x.shape[1:]) != self.expected:
                raise GenzooError(
                    f"{self.spec}: the run was trained on images of shape {self.expected} in [0, 1]; "
                    f"these are {tuple(x.shape[1:])} (evaluate data of the run's kind and size)"
                )
            return x

        super().__init__(
            name,
            module,
            dim,
            "none (native size)",
            prepare,
            weights_hash=state_dict_hash(run.model.state_dict()),
            device=device,
            batch_size=batch_size,
        )
        self.run_path = str(Path(run.path).resolve())

    def check_data(self, data) -> None:
        """A data set whose images the network cannot take -> a one-line error before any work."""
        shape = (unit_channels(data.info), data.info.height, data.info.width)
        if shape != self.expected:
            raise GenzooError(
                f"{self.spec}: trained on {self.trained_on} images of shape {self.expected} in [0, 1]; "
                f"{data.spec} has {shape}"
            )

    def describe(self) -> dict:
        return {**super().describe(), "extractor_run": self.run_path}


class _Penultimate(nn.Module):
    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(u)  # (B, hidden)


class _Codes(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        x = from_unit(u, self.model.info)  # the discrete image back (exact for images made by to_unit)
        return self.model.encode(x).reshape(len(u), -1)  # (B, D)


class ClassifierExtractor(RunExtractor):
    """Penultimate features of a trained classifier; its output layer maps them to p(y | x)."""

    def __init__(self, run, *, device, batch_size: int):
        clf = run.model
        super().__init__("classifier", run, _Penultimate(clf), clf.config.hidden, device=device, batch_size=batch_size)
        self.classifier = clf
        self.num_classes = clf.info.num_classes

    @torch.no_grad()
    def class_probabilities(self, feats: np.ndarray) -> np.ndarray:
        """Features (N, hidden) from :meth:`features` -> p(y | x) (N, K) float64."""
        f = torch.as_tensor(np.asarray(feats), dtype=self.classifier.dtype, device=self.classifier.device)
        return torch.softmax(self.classifier.logits_from_features(f).double(), dim=1).cpu().numpy()


def _load(arg: str | None, prefix: str, device):
    if not arg:
        raise GenzooError(f"feature extractor {prefix!r} needs a run folder: {prefix}:RUN")
    return load_run(arg, device)


@register_extractor("classifier")
def _classifier(arg: str | None, *, device="cpu", batch_size: int = 50) -> ClassifierExtractor:
    run = _load(arg, "classifier", device)
    if not isinstance(run.model, Classifier):
        raise GenzooError(
            f"classifier:{arg}: holds a {run.model_name!r} run, not a classifier "
            "(train one with `genzoo train classifier --data ...`)"
        )
    return ClassifierExtractor(run, device=device, batch_size=batch_size)


@register_extractor("autoencoder")
def _autoencoder(arg: str | None, *, device="cpu", batch_size: int = 50) -> RunExtractor:
    run = _load(arg, "autoencoder", device)
    if not (isinstance(run.model, LatentModel) and run.model.has_encoder):
        raise GenzooError(
            f"autoencoder:{arg}: holds a {run.model_name!r} run ({type(run.model).family}), "
            "which has no encoder; use an autoencoder or VAE run"
        )
    return RunExtractor(
        "autoencoder", run, _Codes(run.model), run.model.latent_dim, device=device, batch_size=batch_size
    )
