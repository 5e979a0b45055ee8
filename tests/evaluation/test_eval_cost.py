"""What evaluation costs by default: the held-out NLL during training measures a fixed subset (the split's
first HELD_OUT_IMAGES images) and says how many, and `genzoo eval`'s per-image estimators (importance
sampling, AIS) default to k = 1000 draws on the first 200 images, recorded in their protocol."""
import inspect
from types import SimpleNamespace

import pytest

import genzoo.evaluation.sections as sections
from conftest import random_dataset, tiny_model
from genzoo.data import ImageInfo
from genzoo.evaluation.callbacks import HELD_OUT_IMAGES, HeldOutLikelihood
from genzoo.metrics.likelihood import dataset_nll


def _trainer(model, data):
    return SimpleNamespace(is_eval_step=True, cfg=SimpleNamespace(eval_every=0), data=data, eval_model=model,
                           model=model, quiet=True)


def test_held_out_nll_during_training_is_a_fixed_subset_and_says_how_many():
    info = ImageInfo(channels=1, height=3, width=3, num_values=4)
    model = tiny_model("pixelcnn", info).eval()
    data = random_dataset(info, n=80)
    n_test = data.size("test")
    assert HeldOutLikelihood().max_images == HELD_OUT_IMAGES <= 1000  # a subset by default
    cb = HeldOutLikelihood("test", max_images=5)
    record: dict = {}
    cb.on_step_end(_trainer(model, data), record)
    assert record["test_nll_images"] == 5 < n_test
    first5 = dataset_nll(model, data, "test", max_images=5)["nll_nats"]
    assert record["test_nll_nats"] == pytest.approx(first5)
    again: dict = {}
    cb.on_step_end(_trainer(model, data), again)  # the same images every time: comparable along training
    assert again["test_nll_nats"] == record["test_nll_nats"]
    whole: dict = {}
    HeldOutLikelihood("test", max_images=None).on_step_end(_trainer(model, data), whole)
    assert whole["test_nll_images"] == n_test


def test_eval_defaults_bound_the_per_image_estimators_and_record_them(monkeypatch):
    """`genzoo eval` and evaluate() default to k = 1000 on the first 200 images; the section passes them on
    and the records carry the images and k actually used."""
    from genzoo.cli import cmd_eval

    for fn in (sections.evaluate, cmd_eval):
        params = inspect.signature(fn).parameters
        assert params["k"].default == sections.DEFAULT_K == 1000
        assert params["max_images"].default == sections.DEFAULT_ESTIMATE_IMAGES == 200
    info = ImageInfo(channels=1, height=4, width=4, num_values=5)
    model = tiny_model("vae", info)
    data = random_dataset(info, n=30)
    seen = {}

    def fake_importance(model, data, split, k, k_iwae, seed, max_images, progress):
        seen.update(k=k, max_images=max_images, progress=progress)
        return {"iwae_nats": 1.0, "is_nats": 1.0, "k_iwae": k_iwae, "k": k, "n_images": min(max_images, 9)}

    monkeypatch.setattr(sections, "importance_nll", fake_importance)
    records = sections.importance_section(model, data, "test", 7, 7, 3, 0)
    assert seen == {"k": 7, "max_images": 3, "progress": True}
    assert all(r["protocol"]["images"] == 3 and r["protocol"]["k"] == 7 for r in records)


def test_memorisation_sampling_shows_progress_for_autoregressive_models(capsys):
    info = ImageInfo(channels=1, height=3, width=3, num_values=4)
    model = tiny_model("pixelcnn", info)
    data = random_dataset(info, n=40)
    sections.memorisation_section(model, data, n=4, seed=0)
    assert "sampling" in capsys.readouterr().err  # the raster loop's bar
