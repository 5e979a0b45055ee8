"""Linear probes on a hand-made encoder: separable codes are classified perfectly, random labels stay at
chance, fine-tuning changes only a copy, shapes are checked, and one seed gives one result."""
import copy
import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from genzoo.data import ImageDataset, ImageInfo
from genzoo.data.continuous import to_unit
from genzoo.errors import GenzooError
from genzoo.evaluation.probe import encode_split, linear_probe, pixel_probe
from genzoo.models.base import LatentModel

INFO = ImageInfo(channels=1, height=4, width=4, num_values=8, num_classes=3)
N_TRAIN, N_TEST = 600, 600
FAST = dict(epochs=15, batch_size=50, lr=0.05, weight_decay=1e-4)


@dataclass
class CodesConfig:
    latent_dim: int = 16


class LinearCodes(LatentModel):
    """A fixed linear encoder z = W to_unit(x), W a random rotation (fixed seed): a stand-in autoencoder
    whose codes keep the pixels' geometry, so classes apart in pixel space are apart in code space."""

    name = "linear_codes"
    has_encoder = True

    def __init__(self, info=INFO):
        super().__init__(CodesConfig(), info)
        g = torch.Generator().manual_seed(7)
        self.enc = nn.Linear(info.dims, self.latent_dim)
        with torch.no_grad():
            q, _ = torch.linalg.qr(torch.randn(info.dims, info.dims, generator=g))
            self.enc.weight.copy_(q[:self.latent_dim])
            self.enc.bias.zero_()

    def encode(self, x, condition=None, *, generator=None):
        return self.enc(to_unit(x, self.info).flatten(1))  # (B, latent_dim)


def labelled(labels_random: bool = False, seed: int = 0) -> ImageDataset:
    """Three classes, each a template of levels plus -1/0/+1 noise, so the classes are well apart in
    pixel space and (the encoder being a rotation) linearly separable in its codes."""
    g = torch.Generator().manual_seed(seed)
    n = N_TRAIN + N_TEST
    templates = torch.randint(0, 8, (3, 16), generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    x = (templates[y] + torch.randint(-1, 2, (n, 16), generator=g)).clamp(0, 7)
    if labels_random:
        y = torch.randint(0, 3, (n,), generator=g)
    splits = {"train": torch.arange(N_TRAIN), "test": torch.arange(N_TRAIN, n)}
    return ImageDataset(spec="synthetic", x=x.view(n, 1, 4, 4).to(torch.uint8), info=INFO, splits=splits, labels=y)


def test_separable_codes_are_classified_perfectly():
    data = labelled()
    res = linear_probe(LinearCodes(), data, **FAST)
    assert res["mode"] == "linear" and res["code_dim"] == 16 and res["num_classes"] == 3
    assert res["train_images"] == N_TRAIN and res["test_images"] == N_TEST
    assert res["test_accuracy"] >= 0.99 and res["train_accuracy"] >= 0.99
    assert "Adam lr=0.05" in res["protocol"] and "15 epochs" in res["protocol"]
    pix = pixel_probe(data, **FAST)
    assert pix["mode"] == "pixels" and pix["code_dim"] == 16 and pix["test_accuracy"] >= 0.99


def test_random_labels_stay_near_chance():
    res = linear_probe(LinearCodes(), labelled(labels_random=True), **FAST)
    # labels independent of the images: test accuracy ~ Binomial(600, 1/3) / 600, sd = 0.019
    assert abs(res["test_accuracy"] - 1 / 3) < 5 * math.sqrt((1 / 3) * (2 / 3) / N_TEST)


def test_codes_are_standardised_with_the_train_split():
    model, data = LinearCodes(), labelled()
    z = encode_split(model, data, "train", batch_size=64)
    expected = model.encode(data.images("train")).detach()
    assert torch.allclose(z, expected, atol=1e-5)
    # standardised codes: stretching and shifting a code dimension changes nothing
    base = linear_probe(model, data, **FAST)
    stretched = LinearCodes()
    with torch.no_grad():
        stretched.enc.weight[2] *= 1000.0
        stretched.enc.bias[5] = 50.0
    res = linear_probe(stretched, data, **FAST)
    assert res["test_accuracy"] == base["test_accuracy"]
    assert res["final_train_cross_entropy"] == pytest.approx(base["final_train_cross_entropy"], rel=1e-3)
    # a constant code dimension (zero weights) is not divided by a zero spread
    with torch.no_grad():
        model.enc.weight[0] = 0.0
    res = linear_probe(model, data, **FAST)
    assert math.isfinite(res["final_train_cross_entropy"]) and res["test_accuracy"] >= 0.99


def test_finetune_trains_a_copy_and_leaves_the_model_alone():
    model, data = LinearCodes(), labelled()
    before = copy.deepcopy(model.state_dict())
    res = linear_probe(model, data, finetune=True, **{**FAST, "epochs": 5})
    assert res["mode"] == "finetune" and res["encoder_change"] > 0
    assert res["test_accuracy"] >= 0.99
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_finetune_needs_an_encoder_with_gradients():
    class Frozen(LinearCodes):
        def encode(self, x, condition=None, *, generator=None):
            with torch.no_grad():
                return super().encode(x)

    with pytest.raises(GenzooError, match="no gradient"):
        linear_probe(Frozen(), labelled(), finetune=True, **FAST)


def test_data_of_another_shape_or_without_labels_is_rejected():
    other = ImageInfo(channels=1, height=5, width=5, num_values=8, num_classes=3)
    data = ImageDataset(spec="other", x=torch.zeros(20, 1, 5, 5, dtype=torch.uint8), info=other,
                        splits={"train": torch.arange(10), "test": torch.arange(10, 20)},
                        labels=torch.zeros(20, dtype=torch.long))
    with pytest.raises(GenzooError, match=r"\(1, 5, 5\).*\(1, 4, 4\)"):
        linear_probe(LinearCodes(), data, **FAST)
    unlabelled = labelled()
    unlabelled.labels = None
    with pytest.raises(GenzooError, match="labels"):
        linear_probe(LinearCodes(), unlabelled, **FAST)
    with pytest.raises(GenzooError, match="labels"):
        pixel_probe(unlabelled, **FAST)


def test_same_seed_same_result():
    data = labelled(labels_random=True)  # not saturated: the optimisation path shows in the numbers
    a = linear_probe(LinearCodes(), data, seed=3, **FAST)
    b = linear_probe(LinearCodes(), data, seed=3, **FAST)
    c = linear_probe(LinearCodes(), data, seed=4, **FAST)
    assert a == b
    assert a["final_train_cross_entropy"] != c["final_train_cross_entropy"]
