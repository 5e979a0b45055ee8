"""Linear probes: how much class information a model's codes carry, and fine-tuning from them.

The lectures' "use the encoder to initialise a supervised model", measured three ways on a
labelled data set (``batch["y"]``, ``info.num_classes``) with ``train`` and ``test`` splits:

* :func:`linear_probe` -- codes z = ``model.encode(x)`` of both splits, computed once with the
  model frozen (eval mode, no gradients, in batches), standardised with the train split's mean
  and standard deviation (a constant code dimension is left unscaled), then a softmax regression
  p(y | z) = softmax(W z + b) fitted on the train split by minimising

      mean cross-entropy + weight_decay / 2 * |W|^2

  with Adam on shuffled mini-batches from zero weights. Train and test accuracy are reported.
* ``finetune=True`` -- a *copy* of the model: its encoder and the same linear classifier trained
  end to end on that loss (the standardisation measured on the initial codes stays as a fixed
  layer); the model passed in is never changed. ``encoder_change`` is |theta' - theta| / |theta|.
* :func:`pixel_probe` -- the same classifier on the raw unit pixels ``to_unit(x)``: the baseline.

The shuffling of every epoch and any randomness inside ``encode`` come from generators seeded
with ``seed``, so one seed gives one accuracy on one device. Each result carries its protocol.
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import TypedDict

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from genzoo.data.continuous import to_unit
from genzoo.errors import GenzooError
from genzoo.models.base import LatentModel


class _Settings(TypedDict):
    """The fitting settings every probe records in its protocol."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int


def linear_probe(
    model,
    data,
    *,
    epochs: int = 30,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    finetune: bool = False,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> dict:
    """Accuracy of a softmax classifier on ``model``'s codes of ``data`` (see the module docstring)."""
    _check_settings(epochs, batch_size, lr, weight_decay)
    name = model.name
    if not isinstance(model, LatentModel):
        raise GenzooError(f"model {name!r} has no codes to probe (not a latent-variable model)")
    _check_data(data, model.info, name)
    device = torch.device(device) if device is not None else model.device
    settings = _Settings(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed)
    if finetune:
        return _finetune(model, data, device=device, progress=progress, **settings)
    codes = {
        s: encode_split(model, data, s, batch_size=batch_size, seed=seed, progress=progress).to(device)
        for s in ("train", "test")
    }
    res = _fit_and_score(codes["train"], codes["test"], data, device, progress, **settings)
    return {
        "mode": "linear",
        **res,
        "protocol": _protocol(f"codes of {name}.encode (frozen, eval mode)", data, **settings),
    }


def pixel_probe(
    data,
    *,
    epochs: int = 30,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> dict:
    """The baseline: the same classifier on the raw pixels in [0, 1] (palette images as RGB)."""
    _check_settings(epochs, batch_size, lr, weight_decay)
    _check_data(data, None, None)
    device = torch.device(device) if device is not None else torch.device("cpu")
    settings = _Settings(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed)
    feats = {s: to_unit(data.images(s), data.info).flatten(1).float().to(device) for s in ("train", "test")}
    res = _fit_and_score(feats["train"], feats["test"], data, device, progress, **settings)
    return {"mode": "pixels", **res, "protocol": _protocol("raw pixels to_unit(x) in [0, 1]", data, **settings)}


def encode_split(
    model, data, split: str, *, batch_size: int = 256, seed: int = 0, progress: bool = False
) -> torch.Tensor:
    """Codes (N, D) float32 of every image of ``split``, on the model's device, model frozen.

    Models with an encoder run without gradients; the others (GANs) fit their codes by
    optimisation inside ``encode``, which needs gradients with respect to z (minutes for a GAN:
    ``progress`` shows a bar that moves batch by batch).
    """
    was_training = model.training
    model.eval()
    g = torch.Generator(device=model.device).manual_seed(seed)
    grad = torch.no_grad() if model.has_encoder else contextlib.nullcontext()
    n, out = data.size(split), []
    try:
        with grad:
            bar = tqdm(total=n, desc=f"encode {split}", unit="image", disable=not progress, leave=False)
            for start in range(0, n, batch_size):
                x = data.images(split, torch.arange(start, min(start + batch_size, n))).to(model.device)
                out.append(model.encode(x, generator=g).detach().float().flatten(1))  # (b, D)
                bar.update(len(x))
            bar.close()
    finally:
        model.train(was_training)
    return torch.cat(out)


# -- checks --------------------------------------------------------------------------------
def _check_settings(epochs, batch_size, lr, weight_decay) -> None:
    if epochs < 1 or batch_size < 1:
        raise GenzooError(f"the probe needs epochs >= 1 and batch_size >= 1, got {epochs} and {batch_size}")
    if not lr > 0 or weight_decay < 0:
        raise GenzooError(f"the probe needs lr > 0 and weight_decay >= 0, got {lr} and {weight_decay}")


def _check_data(data, info, name) -> None:
    """Labels, train and test splits, and (for a model) the image format the model was built for."""
    if data.labels is None:
        raise GenzooError(f"{data.spec}: the probe needs class labels and this data set has none")
    for split in ("train", "test"):
        data.indices(split)  # a one-line GenzooError naming the valid splits
    if info is None:
        return
    if tuple(data.info.shape) != tuple(info.shape):
        raise GenzooError(
            f"{data.spec}: images of shape {tuple(data.info.shape)}, but model {name!r} was built "
            f"for {tuple(info.shape)}"
        )
    if data.info.num_values != info.num_values or data.info.palette != info.palette:
        what = "a different palette" if data.info.num_values == info.num_values else f"{data.info.num_values} values"
        raise GenzooError(
            f"{data.spec}: images with {what}, but model {name!r} was built for {info.num_values} "
            f"values{' and its own palette' if info.palette is not None else ''}"
        )


# -- the classifier ---------------------------------------------------------------------------
def _labels(data, split: str, device) -> torch.Tensor:
    return data.labels[data.indices(split)].long().to(device)  # (N,)


def _num_classes(data) -> int:
    return int(data.info.num_classes) or int(data.labels.max()) + 1


def _standardiser(train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Train-split mean and standard deviation per dimension; 1 where a dimension is constant."""
    mean, std = train.mean(0), train.std(0, unbiased=False)  # (D,)
    return mean, torch.where(std > 1e-8, std, torch.ones_like(std))


def _train(
    head: nn.Linear,
    params: list,
    features,
    y: torch.Tensor,
    *,
    epochs,
    batch_size,
    lr,
    weight_decay,
    seed,
    progress,
    desc,
) -> float:
    """Adam on mean cross-entropy + weight_decay / 2 |W|^2; ``features(idx)`` gives the mini-batch inputs."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(params, lr=lr)
    n, total = len(y), 0.0
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        perm = torch.randperm(n, generator=g)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            ce = F.cross_entropy(head(features(idx)), y[idx.to(y.device)])
            loss = ce + 0.5 * weight_decay * head.weight.square().sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += ce.item() * len(idx)
    return total / n  # mean cross-entropy over the last epoch


def _accuracy(head: nn.Linear, z: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    with torch.no_grad():
        hits = sum(
            int((head(z[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
            for i in range(0, len(z), batch_size)
        )
    return hits / len(z)


def _head(dim: int, classes: int, device) -> nn.Linear:
    head = nn.Linear(dim, classes).to(device)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def _fit_and_score(train: torch.Tensor, test: torch.Tensor, data, device, progress, **settings) -> dict:
    """Standardise with the train split, fit the softmax classifier, score both splits."""
    mean, std = _standardiser(train)
    z_tr, z_te = (train - mean) / std, (test - mean) / std  # (N, D)
    y_tr, y_te = _labels(data, "train", device), _labels(data, "test", device)
    head = _head(z_tr.shape[1], _num_classes(data), device)
    loss = _train(
        head,
        list(head.parameters()),
        lambda idx: z_tr[idx.to(device)],
        y_tr,
        progress=progress,
        desc="probe",
        **settings,
    )
    return _report(head, z_tr, y_tr, z_te, y_te, data, loss, settings["batch_size"])


def _report(head, z_tr, y_tr, z_te, y_te, data, loss, batch_size) -> dict:
    counts = torch.bincount(y_te, minlength=_num_classes(data))
    return {
        "code_dim": int(z_tr.shape[1]),
        "num_classes": _num_classes(data),
        "train_images": len(z_tr),
        "test_images": len(z_te),
        "train_accuracy": _accuracy(head, z_tr, y_tr, batch_size),
        "test_accuracy": _accuracy(head, z_te, y_te, batch_size),
        "majority_accuracy": int(counts.max()) / len(y_te),  # always guessing the commonest test class
        "final_train_cross_entropy": loss,
    }


def _protocol(inputs: str, data, *, epochs, batch_size, lr, weight_decay, seed, end_to_end: bool = False) -> str:
    fitted = "encoder and classifier trained end to end" if end_to_end else "softmax regression"
    return (
        f"{fitted} on {inputs}, standardised with the train split's mean/std; Adam lr={lr:g}, "
        f"batch {batch_size}, {epochs} epochs, mean cross-entropy + {weight_decay:g}/2 |W|^2, zero init, "
        f"shuffling seed {seed}; fitted on {data.spec} train ({data.size('train')} images), "
        f"accuracy on train and test ({data.size('test')} images)"
    )


# -- fine-tuning --------------------------------------------------------------------------------
def _finetune(model, data, *, epochs, batch_size, lr, weight_decay, seed, device, progress) -> dict:
    name = model.name
    if not model.has_encoder:
        raise GenzooError(f"model {name!r} has no encoder to fine-tune (its codes are fitted by optimisation)")
    net = copy.deepcopy(model).to(device)
    start = [p.detach().clone() for p in net.parameters()]
    mean, std = _standardiser(encode_split(net, data, "train", batch_size=batch_size, seed=seed).to(device))
    y_tr, y_te = _labels(data, "train", device), _labels(data, "test", device)
    head = _head(len(mean), _num_classes(data), device)
    g = torch.Generator(device=device).manual_seed(seed)

    def features(idx):
        z = net.encode(data.images("train", idx).to(device), generator=g).float().flatten(1)  # (b, D)
        if not z.requires_grad:
            raise GenzooError(f"model {name!r}: encode gives no gradient, so its encoder cannot be fine-tuned")
        return (z - mean) / std

    params = [p for p in net.parameters() if p.requires_grad] + list(head.parameters())
    net.train()
    loss = _train(
        head,
        params,
        features,
        y_tr,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        progress=progress,
        desc="finetune",
    )
    net.eval()
    codes = {
        s: (encode_split(net, data, s, batch_size=batch_size, seed=seed).to(device) - mean) / std
        for s in ("train", "test")
    }
    res = _report(head, codes["train"], y_tr, codes["test"], y_te, data, loss, batch_size)
    moved = math.sqrt(sum(float((p.detach() - s).square().sum()) for p, s in zip(net.parameters(), start)))
    size = math.sqrt(sum(float(s.square().sum()) for s in start))
    settings = _Settings(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed)
    return {
        "mode": "finetune",
        **res,
        "encoder_change": moved / max(size, 1e-12),
        "protocol": _protocol(f"a copy of {name}'s encoder plus a linear layer", data, end_to_end=True, **settings),
    }
