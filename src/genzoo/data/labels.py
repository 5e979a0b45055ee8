"""Partly labelled data for semi-supervised training (``--labels-per-class N``).

:func:`hide_labels` keeps the labels of N training images per class, drawn with a recorded seed, and
hides the rest of the training split's labels; other splits keep theirs (a test accuracy needs them).
A batch of such a data set (:meth:`genzoo.data.base.ImageDataset.batch`) then carries

* ``labelled`` (B,) bool -- whether the image's label is visible; ``y`` is -1 where it is not;
* ``x_labelled``, ``y_labelled`` (B, ...) -- companions drawn from the split's labelled images (the
  image at position p of the split brings labelled image p mod L of the L), so a model sees labelled
  examples in every batch even when they are 100 of 60,000 images, as the semi-supervised GAN's
  training does (Salimans et al. 2016, arXiv:1606.03498, Sec. 5).
"""

from __future__ import annotations

import dataclasses

import torch

from genzoo.data.base import ImageDataset, int_option
from genzoo.errors import GenzooError

TRAIN = "train"


def hide_labels(data: ImageDataset, per_class, seed) -> ImageDataset:
    """``data`` with only ``per_class`` training labels per class visible (drawn with ``seed``)."""
    spec = data.spec
    per_class = int_option(spec, "labels_per_class", per_class, 1, None)
    seed = int_option(spec, "label_seed", seed, 0, 2**63 - 1)
    if data.labels is None:
        raise GenzooError(f"{spec}: --labels-per-class needs class labels and this data set has none")
    if TRAIN not in data.splits:
        raise GenzooError(f"{spec}: --labels-per-class needs a {TRAIN!r} split")
    train = data.splits[TRAIN]
    y = data.labels[train].long()
    g = torch.Generator().manual_seed(seed)
    labelled = torch.ones(len(data.x), dtype=torch.bool)
    labelled[train] = False
    for c in torch.unique(y).tolist():
        members = train[y == c]
        if len(members) < per_class:
            raise GenzooError(
                f"{spec}: class {c} has {len(members)} training images, fewer than --labels-per-class {per_class}"
            )
        labelled[members[torch.randperm(len(members), generator=g)[:per_class]]] = True
    return dataclasses.replace(data, labelled=labelled)
