"""Negative log-likelihood in nats per image and bits per dimension.

bits/dim = NLL_nats / (D ln 2), D = C*H*W sub-pixels (the convention of the PixelRNN paper's
tables). For models with ``likelihood == "bound"`` the same numbers are upper bounds on NLL.
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from genzoo.errors import GenzooError
from genzoo.metrics.budget import items_per_call


@torch.no_grad()
def dataset_nll(
    model, data, split: str = "test", batch_size: int = 256, progress: bool = False, max_images: int | None = None
) -> dict:
    """Mean NLL of every image in ``split`` (or of its first ``max_images``); eval mode, no gradients."""
    if batch_size < 1:
        raise GenzooError(f"batch size must be >= 1, got {batch_size}")
    if max_images is not None and max_images < 1:
        raise GenzooError(f"max images must be >= 1, got {max_images}")
    was_training = model.training
    model.eval()
    n = data.size(split) if max_images is None else min(max_images, data.size(split))
    if n:  # a batch holds at most the memory budget of genzoo.metrics.budget (batch_size is an upper bound)
        one = data.batch(split, torch.arange(1))
        cond1 = one["y"].to(model.device) if model.conditional and "y" in one else None
        batch_size, _ = items_per_call(model, lambda: model.log_prob(one["x"].to(model.device), cond1), batch_size)
    total, device = 0.0, model.device
    for start in tqdm(range(0, n, batch_size), desc=f"eval {split}", disable=not progress, leave=False):
        batch = data.batch(split, torch.arange(start, min(start + batch_size, n)))
        y = batch.get("y")
        cond = y.to(device) if (y is not None and model.conditional) else None
        total += -model.log_prob(batch["x"].to(device), cond).double().sum().item()
    model.train(was_training)
    nll = total / n
    return {
        "nll_nats": nll,
        "bits_per_dim": nll / (data.info.dims * math.log(2)),
        "n_images": n,
        "split": split,
        "dims": data.info.dims,
        "likelihood": model.likelihood,
    }
