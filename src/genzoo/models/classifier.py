"""A small convolutional image classifier: the feature network for sample-quality metrics on small images.

The network is LeNet-shaped (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-Based Learning Applied to
Document Recognition", Proc. IEEE 86(11):2278-2324): convolution and pooling stages, then fully connected
layers and a softmax over the classes. With u = to_unit(x) in [0, 1] (palette images as RGB) and one stage
per entry c_i of ``channels``:

    h_0 = 2u - 1                                                          (B, C', H, W)
    h_i = maxpool_2(ReLU(Conv^{kxk}(h_{i-1})))    pooling with ceil mode  (B, c_i, ceil(H/2^i), ceil(W/2^i))
    f   = ReLU(W_f flatten(h_n) + b_f)            the penultimate layer   (B, hidden)
    p(y | x) = softmax(W_o dropout(f) + b_o)                              (B, K)

and the loss is the cross-entropy -log p(y | x) averaged over the batch (nats). Any H x W works (ceil-mode
pooling keeps a 1-pixel side at 1): 28 -> 14 -> 7 for MNIST, 32 -> 16 -> 8 -> 4 for CIFAR-10.

Why a classifier in a zoo of generative models: FID's Inception-v3 was trained on 299x299 ImageNet photos,
and its features say little about 28x28 digits or 20x20 sprites. A common practice for such data is to take
the Fréchet distance (Heusel et al. 2017, arXiv:1706.08500) and the Inception Score (Salimans et al. 2016,
arXiv:1606.03498) in the feature and label space of a classifier trained on the data set itself, and to
count the classes (modes) the samples fall into with it (the stacked-MNIST protocol of Metz et al. 2016,
arXiv:1611.02163, and Srivastava et al. 2017, arXiv:1705.07761). ``features`` gives f (the ``classifier:RUN``
extractor of :mod:`genzoo.features.runs`), ``predict_proba`` gives p(y | x).

This is not a generative model: ``sample`` and ``complete`` raise :class:`GenzooError` (from the base class).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.data.base import ImageInfo
from genzoo.data.continuous import to_unit, unit_channels
from genzoo.errors import GenzooError
from genzoo.models.base import ModelOutput, TrainableModel
from genzoo.models.registry import register_model


@dataclass
class ClassifierConfig:
    channels: tuple[int, ...] = (32, 64)  # output channels of each conv + pool stage
    kernel: int = 3  # conv kernel side (odd; 'same' padding)
    hidden: int = 128  # width of the penultimate layer: the feature dimension
    dropout: float = 0.0  # dropout on the features before the output layer (training only)

    def __post_init__(self):
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError(f"channels needs at least one stage and every entry >= 1, got {self.channels}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and >= 1, got {self.kernel}")
        if self.hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {self.hidden}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def pooled_side(n: int, stages: int) -> int:
    """Side length after ``stages`` ceil-mode 2x2 max pools."""
    for _ in range(stages):
        n = -(-n // 2)
    return n


@register_model("classifier")
class Classifier(TrainableModel):
    """Conv + pool stages, one hidden fully connected layer (the features), softmax over the classes."""

    family = "classifier"
    paper = (
        "LeCun, Bottou, Bengio & Haffner 1998, Gradient-Based Learning Applied to Document Recognition, "
        "Proc. IEEE 86(11):2278-2324"
    )
    Config = ClassifierConfig
    presets = {
        "tiny": {"channels": (4,), "hidden": 8, "batch_size": 8, "lr": 1e-2},
        # 28x28 digits or clothes: 28 -> 14 -> 7, ~421k weights (most in the 3136 -> 128 layer).
        "mnist": {"channels": (32, 64), "hidden": 128, "dropout": 0.25, "batch_size": 64, "lr": 1e-3},
        # 32x32 RGB: 32 -> 16 -> 8 -> 4.
        "cifar": {"channels": (64, 128, 256), "hidden": 256, "dropout": 0.25, "batch_size": 64, "lr": 1e-3},
    }
    # The shared model suite builds every model for a small data shape; a classifier needs labels.
    test_info = ImageInfo(channels=1, height=4, width=4, num_values=5, num_classes=3)

    def __init__(self, config: ClassifierConfig, info):
        super().__init__(config, info)
        if info.num_classes < 2:
            raise GenzooError(
                "classifier: the data has no class labels (num_classes = "
                f"{info.num_classes}); train it on labelled data (idx with labels files, cifar10, "
                "a folder of class subfolders)"
            )
        stages, cin = [], unit_channels(info)
        for c in config.channels:
            stages.append(nn.Conv2d(cin, c, config.kernel, padding=config.kernel // 2))
            cin = c
        self.convs = nn.ModuleList(stages)
        n = len(config.channels)
        flat = cin * pooled_side(info.height, n) * pooled_side(info.width, n)
        self.fc = nn.Linear(flat, config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, info.num_classes)

    # -- the network --------------------------------------------------------------------------
    def features(self, u: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (B, C', H, W) -> penultimate-layer features f (B, hidden)."""
        expected = (unit_channels(self.info), self.info.height, self.info.width)
        if tuple(u.shape[1:]) != expected:
            raise GenzooError(f"classifier: expects images of shape {expected} in [0, 1], got {tuple(u.shape[1:])}")
        h = 2 * u.to(self.device, self.dtype) - 1  # (B, C', H, W)
        for conv in self.convs:
            h = F.max_pool2d(F.relu(conv(h)), 2, ceil_mode=True)  # (B, c_i, ceil(H/2), ceil(W/2))
        return F.relu(self.fc(h.flatten(1)))  # (B, hidden)

    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        """Features (B, hidden) -> class logits (B, K); dropout acts only in training mode."""
        return self.head(self.dropout(f))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Discrete images (B, C, H, W) -> class logits (B, K)."""
        return self.logits_from_features(self.features(to_unit(x.to(self.device), self.info)))

    @torch.no_grad()
    def predict_proba(self, u: torch.Tensor) -> torch.Tensor:
        """p(y | x) for images in [0, 1] (B, C', H, W) -> (B, K), rows summing to 1."""
        return F.softmax(self.logits_from_features(self.features(u)), dim=1)

    # -- training -----------------------------------------------------------------------------
    def loss(self, batch):
        if "y" not in batch:
            raise GenzooError("classifier: the batch has no labels 'y'; the data set must carry class labels")
        y = batch["y"].to(self.device)  # (B,)
        logits = self.logits(batch["x"])  # (B, K)
        loss = F.cross_entropy(logits, y)
        accuracy = (logits.argmax(1) == y).float().mean()
        return ModelOutput(loss, {"ce_nats": loss.item(), "accuracy": accuracy.item()})


@torch.no_grad()
def dataset_accuracy(model: Classifier, data, split: str = "test", batch_size: int = 256) -> dict:
    """Share of ``split`` images whose most probable class is their label, and the mean cross-entropy."""
    if data.labels is None:
        raise GenzooError(f"{data.spec}: no class labels, so no accuracy to measure")
    was_training = model.training
    model.eval()
    n, correct, ce = data.size(split), 0, 0.0
    for start in range(0, n, batch_size):
        batch = data.batch(split, torch.arange(start, min(start + batch_size, n)))
        y = batch["y"].to(model.device)
        logits = model.logits(batch["x"])  # (b, K)
        correct += int((logits.argmax(1) == y).sum())
        ce += float(F.cross_entropy(logits, y, reduction="sum"))
    model.train(was_training)
    return {"accuracy": correct / n, "ce_nats": ce / n, "images": n}
