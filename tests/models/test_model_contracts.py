"""One suite over every registered model, built tiny: the contracts every family meets."""
import copy
import dataclasses

import pytest
import torch

from conftest import random_dataset, tiny_info, tiny_model
from genzoo.models.base import GenerativeModel, LikelihoodModel, TrainableModel
from genzoo.models.registry import available_models
from genzoo.training.config import TrainConfig
from genzoo.training.run import load_run
from genzoo.training.trainer import Trainer

# Every generative model; trainable networks outside that tree (the classifier, registered so
# `genzoo train classifier` works and used as a feature extractor) have their own tests.
MODELS = sorted(n for n, cls in available_models().items() if issubclass(cls, GenerativeModel))
# Translation models (pix2pix, CycleGAN) have no prior over inputs: sample(n, inputs=x) translates x, and
# they train on pairs. The suite gives them paired data and draws the inputs of a sample from its seed.
TRANSLATING = sorted(n for n in MODELS if "inputs" in available_models()[n].sample_options)


def data_for(model):
    return random_dataset(model.info, paired=model.name in TRANSLATING)


def inputs_for(model, n: int, seed: int) -> dict:
    if model.name not in TRANSLATING:
        return {}
    return {"inputs": random_dataset(model.info, n=n, seed=seed).x.long()}


def test_registry_lists_models_with_tiny_presets_and_papers():
    assert "pixelrnn" in MODELS and "classifier" not in MODELS
    for name, cls in available_models().items():
        assert issubclass(cls, TrainableModel)
        assert "tiny" in cls.presets, f"{name} needs a 'tiny' preset for the shared suite"
        assert cls.paper and cls.family != "?"
        assert cls.__module__ and (cls.__doc__ or __import__(cls.__module__).__doc__)


@pytest.mark.parametrize("name", MODELS)
def test_training_step_changes_weights_and_eval_does_not(name, tmp_path):
    model = tiny_model(name)
    data = data_for(model)
    before = copy.deepcopy(model.state_dict())
    if isinstance(model, LikelihoodModel):
        model.eval()
        with torch.no_grad():
            model.log_prob(data.images("test"))
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    cfg = TrainConfig(steps=1, batch_size=4, sample_every=0, eval_every=-1)
    Trainer(model, data, cfg, tmp_path, model_name=name, quiet=True).fit()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(before[k], v)]
    assert changed, "one optimiser step left every weight unchanged"


@pytest.mark.parametrize("name", MODELS)
def test_save_load_gives_identical_outputs(name, tmp_path):
    model = tiny_model(name)
    data = data_for(model)
    cfg = TrainConfig(steps=2, batch_size=4, sample_every=0, eval_every=-1)
    Trainer(model, data, cfg, tmp_path, model_name=name, quiet=True).fit()
    loaded = load_run(tmp_path).model
    model.eval()
    x = data.images("test")
    if isinstance(model, LikelihoodModel):
        assert torch.equal(model.log_prob(x), loaded.log_prob(x))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    inputs = inputs_for(model, 3, 5)
    assert torch.equal(model.sample(3, generator=g1, **inputs), loaded.sample(3, generator=g2, **inputs))
    assert dataclasses.asdict(model.config) == dataclasses.asdict(loaded.config)


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_samples_and_values_in_range(name):
    model = tiny_model(name)
    a = model.sample(6, generator=torch.Generator().manual_seed(3), **inputs_for(model, 6, 3))
    b = model.sample(6, generator=torch.Generator().manual_seed(3), **inputs_for(model, 6, 3))
    c = model.sample(6, generator=torch.Generator().manual_seed(4), **inputs_for(model, 6, 4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == (6, *model.info.shape) and a.dtype == torch.long
    assert a.min() >= 0 and a.max() < model.info.num_values


@pytest.mark.parametrize("name", [m for m in MODELS if m not in TRANSLATING])
def test_completion_keeps_the_shown_pixels(name):
    from genzoo.sampling.masks import make_mask

    model = tiny_model(name)
    x = random_dataset(model.info).images("train", [0, 1, 2])
    for mask in ("bottom-half", "right-half", "bottom-three-quarters"):
        known = make_mask(mask, model.info)
        out = model.complete(x, known, generator=torch.Generator().manual_seed(0))
        assert torch.equal(out[:, known], x[:, known])
        assert out.min() >= 0 and out.max() < model.info.num_values


@pytest.mark.parametrize("name", [m for m in MODELS if issubclass(available_models()[m], LikelihoodModel)])
def test_loss_is_mean_nll_in_nats(name):
    model = tiny_model(name)
    x = random_dataset(model.info).images("train", [0, 1, 2, 3])
    torch.manual_seed(0)
    out = model.loss({"x": x})
    torch.manual_seed(0)  # a bound's one-draw estimate (VAE) takes its noise from the global RNG in training
    assert torch.allclose(out.loss, -model.log_prob(x).mean())
    assert out.metrics["nll_nats"] == pytest.approx(out.loss.item(), rel=1e-6)
    dims = tiny_info(type(model)).dims
    assert out.metrics["bits_per_dim"] == pytest.approx(out.loss.item() / (dims * 0.6931471805599453), rel=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_every_preset_resolves_and_builds(name):
    from genzoo.models.registry import resolve_configs

    cls = available_models()[name]
    for preset in cls.presets:
        model_cfg, train_cfg = resolve_configs(cls, TrainConfig, preset)
        model = cls(model_cfg, tiny_info(cls))
        assert sum(p.numel() for p in model.parameters()) > 0


def test_lecture_preset_is_the_lectures_network():
    from genzoo.data import ImageInfo
    from genzoo.models.autoregressive.pixelrnn import PixelRNN
    from genzoo.models.registry import resolve_configs

    cfg, _ = resolve_configs(PixelRNN, TrainConfig, "lecture")
    model = PixelRNN(cfg, ImageInfo(channels=1, height=20, width=20, num_values=167))
    assert model.lstm.num_layers == 1 and model.lstm.hidden_size == 512 and model.lstm.input_size == 168
    assert model.head.out_features == 167


@pytest.mark.parametrize("name", MODELS)
def test_sample_and_complete_refuse_what_the_model_does_not_take(name):
    from genzoo.errors import GenzooError

    model = tiny_model(name)
    x = random_dataset(model.info).images("test")[:2]
    known = torch.ones(model.info.shape, dtype=torch.bool)
    for call in (lambda **kw: model.sample(2, **kw), lambda **kw: model.complete(x, known, **kw)):
        with pytest.raises(GenzooError, match="does not take the sampling option 'no_such_option'"):
            call(no_such_option=True)
        for bad in (float("nan"), float("inf"), -1.0):
            with pytest.raises(GenzooError, match="temperature must be a finite number >= 0"):
                call(temperature=bad)
    with pytest.raises(GenzooError, match="number of samples"):
        model.sample(0)
    with pytest.raises(GenzooError, match="exceed the limit"):
        model.sample(2**40)  # refused before anything is allocated
    with pytest.raises(GenzooError, match="images must have shape"):
        model.complete(torch.cat([x, x], dim=-1), known)  # twice as wide: wrong for every shape
    assert {"progress"} <= model.sample_options


def test_a_declared_capability_must_be_implemented():
    """Capabilities are abstract: declaring one without its methods fails when the class is built, not in eval."""
    from genzoo.models.base import ImportanceWeighted, Reconstructing

    class Incomplete(Reconstructing):
        pass

    with pytest.raises(TypeError, match="reconstruction_error"):
        Incomplete()
    for name, cls in available_models().items():
        for capability in (ImportanceWeighted, Reconstructing):
            if issubclass(cls, capability):
                assert not getattr(cls, "__abstractmethods__", frozenset()), name


@pytest.mark.parametrize("name", TRANSLATING)
def test_translation_models_refuse_sampling_without_inputs_and_completion(name):
    from genzoo.errors import GenzooError
    from genzoo.models.base import Translates

    model = tiny_model(name)
    assert isinstance(model, Translates)
    x = random_dataset(model.info).images("test")[:2]
    with pytest.raises(GenzooError, match="pass inputs"):
        model.sample(2)
    with pytest.raises(GenzooError, match="does not complete"):
        model.complete(x, torch.ones(model.info.shape, dtype=torch.bool))
    assert torch.equal(model.sample(2, inputs=x, generator=torch.Generator().manual_seed(0)),
                       model.translate(x, generator=torch.Generator().manual_seed(0)))
