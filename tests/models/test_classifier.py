"""The classifier (a feature network, not a generative model) and the run-folder feature extractors.

The data: ten classes of 8x8 grey images, each class a fixed random binary template with 5% of the
pixels flipped, written as IDX files so that training goes through the real ``genzoo train`` path.
"""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genzoo.cli import main
from genzoo.data import ImageInfo, load_dataset
from genzoo.data.continuous import to_unit
from genzoo.errors import GenzooError
from genzoo.features import build_extractor, state_dict_hash
from genzoo.models.base import GenerativeModel
from genzoo.models.classifier import Classifier, ClassifierConfig, dataset_accuracy
from genzoo.models.registry import resolve_configs
from genzoo.training.config import TrainConfig
from genzoo.training.run import load_run

SIDE, CLASSES = 8, 10


@pytest.fixture(scope="module")
def clf_run(idx_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "clf"
    code = main(["train", "classifier", "--data", f"idx:{idx_folder}", "--out", str(out), "--preset", "tiny",
                 "--set", "hidden=32", "--set", "channels=8", "--steps", "150", "--device", "cpu", "--quiet"])
    assert code == 0
    return out


def small(info=None, **cfg):
    torch.manual_seed(0)
    return Classifier(ClassifierConfig(**({"channels": (4, 6), "hidden": 5} | cfg)),
                      info or ImageInfo(channels=1, height=6, width=6, num_values=4, num_classes=3))


def test_trained_through_the_cli_it_classifies_the_held_out_images(clf_run, idx_folder):
    run = load_run(clf_run)
    assert type(run.model).family == "classifier" and run.model_name == "classifier"
    rows = [json.loads(line) for line in (clf_run / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "accuracy", "ce_nats"} <= set(rows[-1])
    assert not (clf_run / "samples").exists() or not any((clf_run / "samples").iterdir())  # it cannot sample
    acc = dataset_accuracy(run.model, load_dataset(f"idx:{idx_folder}"), "test")
    assert acc["images"] == 100
    assert acc["accuracy"] >= 0.9  # ten well-separated templates; chance is 0.1


def test_loss_is_the_mean_cross_entropy_and_accuracy_the_argmax_share():
    model = small()
    x = torch.randint(0, 4, (7, 1, 6, 6))
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    out = model.loss({"x": x, "y": y})
    logits = model.logits(x)
    manual = -F.log_softmax(logits, 1)[torch.arange(7), y].mean()
    assert torch.allclose(out.loss, manual)
    assert out.metrics["accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert out.metrics["ce_nats"] == pytest.approx(manual.item())
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_features_are_the_penultimate_layer_and_probabilities_sum_to_one():
    model = small().eval()
    x = torch.randint(0, 4, (5, 1, 6, 6))
    u = to_unit(x, model.info)
    f = model.features(u)
    assert f.shape == (5, 5) and (f >= 0).all()  # after ReLU
    assert torch.allclose(model.logits_from_features(f), model.logits(x))
    p = model.predict_proba(u)
    assert p.shape == (5, 3) and torch.allclose(p.sum(1), torch.ones(5))
    assert torch.allclose(p, F.softmax(model.logits(x), 1))


@pytest.mark.parametrize("info", [
    ImageInfo(channels=1, height=28, width=28, num_values=256, num_classes=10),  # MNIST
    ImageInfo(channels=3, height=32, width=32, num_values=256, num_classes=10),  # CIFAR-10
    ImageInfo(channels=1, height=20, width=20, num_values=3, palette=((0, 0, 0), (255, 0, 0), (0, 0, 255)),
              num_classes=2),  # palette -> RGB input
    ImageInfo(channels=1, height=5, width=7, num_values=2, num_classes=4),  # odd sides
])
def test_any_image_size_and_kind(info):
    for preset in ("tiny", "mnist", "cifar"):
        cfg, _ = resolve_configs(Classifier, TrainConfig, preset)
        model = Classifier(cfg, info).eval()
        x = torch.randint(0, info.num_values, (2, *info.shape))
        assert model.logits(x).shape == (2, info.num_classes)
        assert model.features(to_unit(x, info)).shape == (2, cfg.hidden)


def test_unlabelled_data_and_generation_are_one_line_errors():
    with pytest.raises(GenzooError, match="no class labels"):
        Classifier(ClassifierConfig(), ImageInfo(channels=1, height=6, width=6, num_values=4))
    model = small()
    with pytest.raises(GenzooError, match="no labels"):
        model.loss({"x": torch.zeros(2, 1, 6, 6, dtype=torch.long)})
    # a feature network, outside the generative-model tree: nothing to sample or complete
    assert not isinstance(model, GenerativeModel) and not model.can_sample
    with pytest.raises(GenzooError, match=r"expects images of shape \(1, 6, 6\)"):
        model.features(torch.zeros(2, 3, 6, 6))


def test_unlabelled_data_is_refused_by_the_cli_before_a_run_folder_exists(tmp_path, capsys):
    code = main(["train", "classifier", "--data", "pokemon", "--out", str(tmp_path / "r"), "--preset", "tiny",
                 "--steps", "1", "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no class labels" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("bad", [{"channels": ()}, {"channels": (0,)}, {"kernel": 2}, {"hidden": 0},
                                 {"dropout": 1.0}, {"dropout": -0.1}])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        ClassifierConfig(**bad)


def test_training_moves_the_weights_and_a_reloaded_run_gives_identical_logits(tmp_path):
    from genzoo.data import ImageDataset, every_tenth_split
    from genzoo.training.trainer import Trainer

    info = ImageInfo(channels=3, height=5, width=5, num_values=4, num_classes=3)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (40, 3, 5, 5), generator=g).to(torch.uint8)
    data = ImageDataset("random", x, info, every_tenth_split(40), labels=torch.randint(0, 3, (40,), generator=g))
    model = small(info)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Trainer(model, data, TrainConfig(steps=2, batch_size=4, sample_every=0, eval_every=-1), tmp_path,
            model_name="classifier", quiet=True).fit()
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    loaded = load_run(tmp_path).model
    model.eval()
    xs = data.images("test")
    assert torch.equal(model.logits(xs), loaded.logits(xs))


def test_dataset_accuracy_counts_the_argmax_matches(clf_run, idx_folder):
    run = load_run(clf_run)
    data = load_dataset(f"idx:{idx_folder}")
    b = data.batch("test", torch.arange(100))
    logits = run.model.logits(b["x"])
    res = dataset_accuracy(run.model, data, "test", batch_size=7)
    assert res["accuracy"] == pytest.approx((logits.argmax(1) == b["y"]).float().mean().item())
    assert res["ce_nats"] == pytest.approx(F.cross_entropy(logits, b["y"]).item(), rel=1e-5)


# -------------------------------------------------------------------------------- run extractors


def test_classifier_extractor_is_the_penultimate_layer_with_its_weights_hash(clf_run, idx_folder):
    run = load_run(clf_run)
    ex = build_extractor(f"classifier:{clf_run}")
    proto = ex.describe()
    assert proto["extractor"] == "classifier" and proto["resize"] == "none (native size)"
    assert proto["weights_hash"] == state_dict_hash(run.model.state_dict()) and proto["dim"] == 32
    assert proto["extractor_run"] == str(clf_run.resolve())
    data = load_dataset(f"idx:{idx_folder}")
    u = to_unit(data.images("test", range(9)), data.info)
    feats = ex.features(u)
    assert np.allclose(feats, run.model.features(u).detach().numpy(), atol=1e-6)
    assert np.allclose(ex.class_probabilities(feats), run.model.predict_proba(u).double().numpy(), atol=1e-6)


def test_run_extractors_check_the_image_shape_and_the_kind_of_run(clf_run, idx_folder, tmp_path):
    ex = build_extractor(f"classifier:{clf_run}")
    with pytest.raises(GenzooError, match=r"trained on images of shape \(1, 8, 8\).*\(3, 8, 8\)") as e:
        ex.features(torch.rand(2, 3, 8, 8))
    assert "\n" not in str(e.value)
    with pytest.raises(GenzooError, match="needs a run folder"):
        build_extractor("classifier")
    with pytest.raises(GenzooError, match="no encoder"):
        build_extractor(f"autoencoder:{clf_run}")
    ae = tmp_path / "ae"
    assert main(["train", "autoencoder", "--data", f"idx:{idx_folder}", "--out", str(ae), "--preset", "tiny",
                 "--steps", "2", "--device", "cpu", "--quiet"]) == 0
    with pytest.raises(GenzooError, match="not a classifier"):
        build_extractor(f"classifier:{ae}")
    codes = build_extractor(f"autoencoder:{ae}")
    model = load_run(ae).model
    data = load_dataset(f"idx:{idx_folder}")
    x = data.images("test", range(6))
    assert codes.dim == model.latent_dim and codes.describe()["weights_hash"] == state_dict_hash(model.state_dict())
    assert np.allclose(codes.features(to_unit(x, data.info)), model.encode(x).detach().numpy(), atol=1e-6)
    with pytest.raises(GenzooError, match="trained on images of shape"):
        codes.features(torch.rand(2, 1, 9, 9))


def test_quality_on_data_of_another_shape_fails_before_generating(clf_run, pokemon, tmp_path):
    from genzoo.evaluation.quality import quality_section

    model = Replay(pokemon.images("test"))
    with pytest.raises(GenzooError, match=r"trained on idx:.* images of shape \(1, 8, 8\).*pokemon has \(3, 20, 20\)"):
        quality_section(model, pokemon, features=f"classifier:{clf_run}", n=20, seed=0, cache_dir=tmp_path)
    assert model.pos == 0 and not list(tmp_path.iterdir())


class Replay:
    """Stands in for a generative model: its 'samples' are the given images, in order."""

    device = torch.device("cpu")

    def __init__(self, images):
        self.images, self.pos = images, 0

    def default_condition(self, n):
        return None

    def sample(self, n, *, generator=None, condition=None, **_):
        out = self.images[self.pos:self.pos + n]
        self.pos += n
        return out


def test_classifier_scores_of_held_out_images(clf_run, idx_folder, tmp_path):
    from genzoo.evaluation.quality import quality_section
    from genzoo.metrics.quality import class_histogram_scores, inception_score

    data = load_dataset(f"idx:{idx_folder}")
    test = data.images("test")
    recs = {r["metric"]: r for r in quality_section(Replay(test), data, features=f"classifier:{clf_run}", n=100,
                                                     seed=0, cache_dir=tmp_path, batch_size=30)}
    assert {"inception_score", "inception_score_std", "reference_inception_score", "classes_generated",
            "class_kl_from_uniform", "reference_classifier_accuracy"} <= set(recs)
    # the samples ARE the reference, in the same order: both scores are the same number
    assert recs["inception_score"]["value"] == pytest.approx(recs["reference_inception_score"]["value"], rel=1e-12)
    run = load_run(clf_run)
    probs = run.model.predict_proba(to_unit(test, data.info)).double().numpy()
    is_mean, is_std = inception_score(probs, 10)
    assert recs["inception_score"]["value"] == pytest.approx(is_mean, rel=1e-5)
    assert recs["inception_score_std"]["value"] == pytest.approx(is_std, rel=1e-4, abs=1e-6)
    hist = class_histogram_scores(probs)
    assert recs["classes_generated"]["value"] == hist["classes_generated"]
    assert recs["class_kl_from_uniform"]["value"] == pytest.approx(hist["class_kl_from_uniform"], abs=1e-9)
    acc = dataset_accuracy(run.model, data, "test")["accuracy"]
    assert recs["reference_classifier_accuracy"]["value"] == pytest.approx(acc)
    assert recs["inception_score"]["protocol"]["is_splits"] == 10
    assert recs["inception_score"]["unit"] == "exp(nats), 1 to 10"
