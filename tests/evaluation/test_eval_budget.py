"""Evaluation within a memory budget: the batch of the likelihood section is capped by the measured
working set of one image, never by the user's --batch-size alone, and the numbers do not change."""
import functools

import pytest
import torch

import genzoo.evaluation.sections as sections
import genzoo.metrics.likelihood as likelihood
from conftest import random_dataset, tiny_model
from genzoo.data import ImageInfo
from genzoo.metrics.budget import SLACK, items_per_call, leaf_output_bytes


def test_leaf_output_bytes_counts_what_each_layer_returns():
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 7))
    x = torch.zeros(4, 3)
    assert leaf_output_bytes(net, lambda: net(x)) == 4 * (5 + 5 + 7) * 4  # float32 outputs of three leaves
    n, per_item = items_per_call(net, lambda: net(x[:1]), most=1000, budget=10 * SLACK * (5 + 5 + 7) * 4)
    assert per_item == SLACK * (5 + 5 + 7) * 4 and n == 10
    assert items_per_call(net, lambda: net(x[:1]), most=3)[0] == 3  # never more than asked for


def test_the_likelihood_batch_is_capped_by_the_budget_with_the_same_numbers(monkeypatch):
    """Both `genzoo eval`'s likelihood section and the held-out NLL during training go through dataset_nll."""
    info = ImageInfo(channels=1, height=4, width=4, num_values=5)
    model = tiny_model("pixelcnn", info).eval()
    data = random_dataset(info, n=60)
    seen = []
    real_log_prob = model.log_prob
    monkeypatch.setattr(model, "log_prob", lambda x, c=None: seen.append(len(x)) or real_log_prob(x, c))
    free = sections.likelihood_section(model, data, "train", batch_size=256)
    assert max(seen) == data.size("train")
    _, per_image = items_per_call(model, lambda: real_log_prob(data.images("train", torch.arange(1))), 256)
    monkeypatch.setattr(likelihood, "items_per_call", functools.partial(items_per_call, budget=5 * per_image))
    seen.clear()
    capped = sections.likelihood_section(model, data, "train", batch_size=256)
    assert max(seen) == 5  # the batches actually computed hold at most the budget
    for a, b in zip(free, capped):
        assert a["protocol"] == b["protocol"] and a["value"] == pytest.approx(b["value"], rel=1e-6)
