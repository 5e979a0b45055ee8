"""The semi-supervised GAN: its losses against their formulas on fixed logits (the free-logit identity
D(x) = Z / (Z + 1) included), the --labels-per-class data option (how many labels stay visible, drawn
with a recorded seed, hidden in batches, labelled companions), and the discriminator's test accuracy in
``genzoo eval``."""
import json
import math

import pytest
import torch

from conftest import run_cli
from genzoo.data import load_dataset
from genzoo.errors import GenzooError
from genzoo.losses.conditional import feature_matching, free_logit, ssgan_discriminator_loss


def test_free_logit_is_z_over_z_plus_one_and_losses_equal_their_formulas():
    logits = torch.tensor([[1.0, 0.0, -2.0], [-3.0, -1.0, 0.5]])
    z = logits.exp().sum(1)
    assert torch.allclose(torch.sigmoid(free_logit(logits)), z / (z + 1))
    # with a (K+1)-th logit fixed at 0, p(fake) = 1 / (Z + 1)
    full = torch.softmax(torch.cat([logits, torch.zeros(2, 1)], 1), 1)
    assert torch.allclose(full[:, -1], 1 / (z + 1))
    real, fake = logits, logits.flip(1) - 1
    lab, y = logits[:1], torch.tensor([2])
    total, sup, unsup = ssgan_discriminator_loss(real, fake, lab, y)
    d_real = (real.exp().sum(1) / (real.exp().sum(1) + 1))
    d_fake = (fake.exp().sum(1) / (fake.exp().sum(1) + 1))
    expect_unsup = -(d_real.log().mean() + (1 - d_fake).log().mean())
    expect_sup = -math.log(math.exp(-2.0) / (math.exp(1) + 1 + math.exp(-2)))
    assert unsup.item() == pytest.approx(expect_unsup.item(), rel=1e-6)
    assert sup.item() == pytest.approx(expect_sup, rel=1e-6)
    assert total.item() == pytest.approx(expect_sup + expect_unsup.item(), rel=1e-6)
    f_real, f_fake = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    assert feature_matching(f_real, f_fake).item() == pytest.approx((2 - 1) ** 2 + (3 - 1) ** 2)


def test_labels_per_class_keeps_n_per_class_drawn_by_seed(idx_folder):
    spec = f"idx:{idx_folder}"
    data = load_dataset(spec, labels_per_class=3, label_seed=1)
    train, test = data.splits["train"], data.splits["test"]
    visible = data.labelled[train]
    assert torch.equal(torch.bincount(data.labels[train][visible].long(), minlength=10), torch.full((10,), 3))
    assert bool(data.labelled[test].all())  # held-out labels stay for the test accuracy
    assert data.meta["options"] == {"labels_per_class": 3, "label_seed": 1}
    assert torch.equal(load_dataset(spec, labels_per_class=3, label_seed=1).labelled, data.labelled)
    assert not torch.equal(load_dataset(spec, labels_per_class=3, label_seed=2).labelled, data.labelled)
    batch = data.batch("train", torch.arange(16))
    hidden = ~batch["labelled"]
    assert hidden.any() and bool((batch["y"][hidden] == -1).all())
    assert len(batch["x_labelled"]) == 16 and bool((batch["y_labelled"] >= 0).all())
    for x, y in zip(batch["x_labelled"], batch["y_labelled"]):  # companions are labelled training images
        i = int(((data.x[train].long() == x).flatten(1).all(1) & data.labelled[train]).nonzero()[0])
        assert int(data.labels[train][i]) == int(y)
    with pytest.raises(GenzooError, match="class 0 has 40 training images, fewer than --labels-per-class 50"):
        load_dataset(spec, labels_per_class=50)
    with pytest.raises(GenzooError, match="has none"):
        load_dataset("mixture:ring8", labels_per_class=1)


def test_cli_ssgan_trains_on_hidden_labels_and_eval_reports_accuracy(capsys, tmp_path, idx_folder):
    run = tmp_path / "ss"
    code, _, err = run_cli(capsys, "train", "ssgan", "--out", run, "--data", f"idx:{idx_folder}", "--preset",
                           "tiny", "--steps", "2", "--labels-per-class", "2", "--seed", "3", "--quiet")
    assert code == 0, err
    desc = json.loads((run / "run.json").read_text())
    assert json.dumps({"labels_per_class": 2, "label_seed": 3})[1:-1] in json.dumps(desc)
    code, out, err = run_cli(capsys, "eval", run, "--only", "class_accuracy")
    assert code == 0, err
    m = {r["metric"]: r for r in json.loads((run / "eval.json").read_text())["metrics"]}
    assert 0 <= m["class_accuracy"]["value"] <= 1 and m["class_accuracy"]["protocol"]["images"] == 100
    # a model that does not train on partly labelled data refuses the option, writing nothing
    code, _, err = run_cli(capsys, "train", "cgan", "--out", tmp_path / "c", "--data", f"idx:{idx_folder}",
                           "--labels-per-class", "2", "--quiet")
    assert code == 2 and "ssgan" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()
