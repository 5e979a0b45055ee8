"""``genzoo eval``: every measurement that applies to a run, each with its protocol beside it.

A result is a list of *metric records*::

    {"metric": "nll", "value": 88.1, "unit": "nats/image",
     "protocol": {"split": "test", "images": 10000, "estimator": "importance sampling", "k": 5000, ...}}

so that two numbers are only ever compared when their protocols agree (``genzoo compare``
checks). Every protocol also names the data measured on (:func:`data_identity`: spec, loader
options and a digest of the images of every split), and a value that is not a finite number
(written as null) carries a ``reason``.
Sections are registered with :func:`register_section`; each declares ``applies(model, data)``
from the model's declared capabilities (its base classes), never from names or ``hasattr``:

* likelihood   -- exact NLL (autoregressive, mixtures) or the ELBO (VAEs; a bound), nats/image + bits/dim
* importance   -- :class:`~genzoo.models.base.ImportanceWeighted` models (VAEs): IWAE bound and
                  importance-sampled NLL with k recorded
* partition    -- :class:`~genzoo.models.base.PartitionFunction` models (RBM, DBN): log Z by AIS and the NLL
                  estimate (RBM) or the negated variational bound (DBN); betas, chains, seed, log Z +- stderr
                  recorded
* reconstruction -- :class:`~genzoo.models.base.Reconstructing` models (autoencoders): mean squared error in
                  [0, 1] units
* memorisation -- any model that samples images: nearest-training vs nearest-test distances of samples
* modes        -- 2-D mixture data: modes covered and high-quality share (VEEGAN's protocol)
* quality      -- only with ``features=SPEC``: Frechet/kernel distance, precision/recall, density/coverage
                  (and class scores with a classifier) of generated vs held-out images
                  (:mod:`genzoo.evaluation.quality`)
* class_accuracy -- :class:`~genzoo.models.base.ClassifiesImages` models (ACGAN's and the semi-supervised GAN's
                  discriminators): accuracy and cross-entropy of their class predictions on the labelled split
* classification -- :class:`~genzoo.models.classifier.Classifier` runs (feature networks, not generative):
                  accuracy and cross-entropy on the split
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from genzoo.data.base import ImageDataset
from genzoo.data.continuous import to_unit
from genzoo.data.toy import mode_report
from genzoo.errors import GenzooError, choices_error
from genzoo.evaluation.quality import default_cache_dir, quality_section
from genzoo.evaluation.records import record
from genzoo.features import FeatureExtractor, build_extractor
from genzoo.metrics.ais import ais_likelihood
from genzoo.metrics.importance import importance_nll
from genzoo.metrics.likelihood import dataset_nll
from genzoo.metrics.memorisation import memorisation_report, nearest_figure
from genzoo.models.base import (
    ClassifiesImages,
    GenerativeModel,
    ImportanceWeighted,
    LikelihoodModel,
    PartitionFunction,
    Reconstructing,
    TrainableModel,
)
from genzoo.models.classifier import Classifier, dataset_accuracy
from genzoo.training.run import CHECKPOINT
from genzoo.viz import save_png


def likelihood_section(model, data, split: str, batch_size: int) -> list[dict]:
    """``batch_size`` is an upper bound: a batch holds at most the memory budget of :mod:`genzoo.metrics.budget`."""
    res = dataset_nll(model, data, split, batch_size=batch_size, progress=True)
    kind = res["likelihood"]
    name = "negative_elbo" if kind == "bound" else "nll"
    estimator = {
        "exact": "exact",
        "bound": "ELBO (bound)",
        "approximate": "density at bin centre x bin volume (approximate)",
    }[kind]
    proto = {"split": split, "images": res["n_images"], "estimator": estimator}
    return [
        record(name, res["nll_nats"], "nats/image", **proto),
        record(name, res["bits_per_dim"], "bits/dim", **proto, dims=res["dims"]),
    ]


# The default cost of the per-image estimators (importance sampling, AIS): k = 1,000 draws on the
# split's first 200 images -- about a minute for the lecture VAE on a CPU, where Burda et al.'s
# k = 5,000 on a whole test set takes hours; both numbers stand in every record's protocol, and
# --k / --max-images ask for more. The likelihood section (exact NLL or ELBO) always measures every image.
DEFAULT_K = 1000
DEFAULT_ESTIMATE_IMAGES = 200


def importance_section(model, data, split: str, k: int, k_iwae: int, max_images: int | None, seed: int) -> list[dict]:
    """The working set is bounded by the memory budget of :mod:`genzoo.metrics.budget`, whatever k and the images."""
    res = importance_nll(model, data, split, k=k, k_iwae=k_iwae, seed=seed, max_images=max_images, progress=True)
    proto = {"split": split, "images": res["n_images"], "seed": seed}
    dims = data.info.dims
    out = []
    for metric, value, extra in (
        ("negative_iwae_bound", res["iwae_nats"], {"estimator": "IWAE bound", "k": res["k_iwae"]}),
        ("nll", res["is_nats"], {"estimator": "importance sampling", "k": res["k"]}),
    ):
        out.append(record(metric, value, "nats/image", **proto, **extra))
        out.append(record(metric, value / (dims * math.log(2)), "bits/dim", **proto, **extra, dims=dims))
    return out


def reconstruction_section(model, data, split: str, batch_size: int) -> list[dict]:
    n = data.size(split)
    total = 0.0
    with torch.no_grad():
        for start in range(0, n, batch_size):
            x = data.images(split, torch.arange(start, min(start + batch_size, n))).to(model.device)
            total += model.reconstruction_error(x).double().sum().item()
    return [
        record("reconstruction_mse", total / n, "mean squared error per sub-pixel, [0,1] units", split=split, images=n)
    ]


def _unit_flat(x, info):
    return to_unit(x, info).flatten(1)


def memorisation_section(model, data, n: int, seed: int, figure_path=None) -> list[dict]:
    g = torch.Generator(device=model.device).manual_seed(seed)
    progress = {"progress": True} if "progress" in model.sample_options else {}  # autoregressive: a moving bar
    samples = model.sample(n, generator=g, condition=model.default_condition(n), **progress).cpu()
    train, test = data.images("train"), data.images("test")
    rep = memorisation_report(_unit_flat(samples, data.info), _unit_flat(train, data.info), _unit_flat(test, data.info))
    proto = {
        "samples": n,
        "seed": seed,
        "train_images": len(train),
        "test_images": len(test),
        "space": "pixels in [0,1]",
        "near_copy_rule": rep.rule,
    }
    if figure_path is not None:
        k = min(16, n)
        save_png(
            nearest_figure(
                data.info.to_rgb(samples[:k]), data.info.to_rgb(train), rep.nearest_train[:k], distances=rep.d_train[:k]
            ),
            figure_path,
        )
    return [
        record("near_copy_share", rep.near_copy_share, "fraction of samples", **proto),
        record(
            "test_near_copy_share", rep.test_near_copy_share, "fraction of test images (false-positive rate)", **proto
        ),
        record(
            "train_closer_share",
            rep.train_closer_share,
            f"fraction (fresh draws expect {rep.train_closer_expected:.3f})",
            **proto,
        ),
        record("median_nn_train_distance", rep.median_d_train, "L2 in [0,1] pixels", **proto),
        record("median_nn_test_distance", rep.median_d_test, "L2 in [0,1] pixels", **proto),
    ]


def modes_section(model, data, seed: int) -> list[dict]:
    name = data.spec.partition(":")[2]
    g = torch.Generator(device=model.device).manual_seed(seed)
    pts = model.sample(2500, generator=g).reshape(2500, -1)[:, :2].cpu().numpy()
    rep = mode_report(pts, name)
    proto = {"samples": 2500, "seed": seed, "high_quality": "within 3 sigma", "covered": ">= 20 samples"}
    kl = record("mode_kl_from_uniform", rep["kl_from_uniform"], "nats", **proto)
    if not math.isfinite(kl["value"]):
        kl["reason"] = "no sample is within 3 sigma of a mode: there is no histogram over modes to compare"
    return [
        record("modes_covered", rep["modes"], f"of {rep['n_modes']}", **proto),
        record("high_quality_share", rep["high_quality"], "fraction of samples", **proto),
        kl,
    ]


def classification_section(model, data, split: str, batch_size: int) -> list[dict]:
    res = dataset_accuracy(model, data, split, batch_size)
    proto = {"split": split, "images": res["images"]}
    return [
        record("accuracy", res["accuracy"], "fraction of images", **proto),
        record("cross_entropy", res["ce_nats"], "nats/image", **proto),
    ]


@torch.no_grad()
def class_accuracy_section(model, data, split: str, batch_size: int) -> list[dict]:
    """Accuracy and cross-entropy of ``model.class_logits`` on every image of ``split`` (eval mode)."""
    was_training = model.training
    model.eval()
    n, correct, ce = data.size(split), 0, 0.0
    try:
        for start in range(0, n, batch_size):
            batch = data.batch(split, torch.arange(start, min(start + batch_size, n)))
            y = data.labels[data.indices(split)[start : start + len(batch["x"])]].long().to(model.device)
            logits = model.class_logits(batch["x"])  # (b, K)
            correct += int((logits.argmax(1) == y).sum())
            ce += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
    finally:
        model.train(was_training)
    proto = {"split": split, "images": n, "predictor": f"{type(model).__name__}.class_logits (the model's own)"}
    return [
        record("class_accuracy", correct / n, "fraction of images", **proto),
        record("class_cross_entropy", ce / n, "nats/image", **proto),
    ]


def partition_section(model, data, split: str, max_images: int | None, seed: int, batch_size: int) -> list[dict]:
    g = torch.Generator(device=model.device).manual_seed(seed)
    res = ais_likelihood(
        model,
        data,
        split,
        betas=model.config.ais_betas,
        chains=model.config.ais_chains,
        generator=g,
        max_images=max_images,
        batch_size=batch_size,
    )
    ais, kind = res["ais"], res["kind"]
    proto = {"split": split, "images": res["images"], "seed": seed, **ais.protocol()}
    value = -res["log_p"].mean().item()
    out = [record("log_partition_function", ais.log_z, "nats", **proto)]
    if kind == "density":  # real-valued visibles: a density of the [0, 1] view, not a probability
        return out + [record("negative_log_density", value, "nats/image (density of the [0,1] view)", **proto)]
    name = "nll"
    if kind == "bound":
        name = "negative_variational_bound"
        proto = {
            **proto,
            "estimator": "AIS (log Z of the top RBM) + variational bound of Hinton et al. 2006",
            "bound_samples": model.config.bound_samples,
        }
    dims = data.info.dims
    return out + [
        record(name, value, "nats/image", **proto),
        record(name, value / (dims * math.log(2)), "bits/dim", **proto, dims=dims),
    ]


@dataclass(frozen=True)
class EvalContext:
    """Everything a section may use: the run's model and data, and the command's options."""

    model: TrainableModel
    data: ImageDataset
    split: str
    k: int
    k_iwae: int
    max_images: int | None
    samples: int
    seed: int
    batch_size: int
    figure_dir: Path | None
    extractor: FeatureExtractor | None
    feature_cache: Path | None


@dataclass(frozen=True)
class Section:
    name: str
    help: str
    applies: Callable[[TrainableModel, ImageDataset], bool]
    run: Callable[[EvalContext], list[dict]]
    needs_features: bool = False  # runs only when --features names a feature space


SECTIONS: dict[str, Section] = {}


def register_section(
    name: str, help: str, applies: Callable[[TrainableModel, ImageDataset], bool], *, needs_features: bool = False
) -> Callable[[Callable[[EvalContext], list[dict]]], Callable[[EvalContext], list[dict]]]:
    """Decorator: ``run(ctx) -> records`` becomes the section ``name`` (listed in ``genzoo eval --help``)."""

    def deco(run: Callable[[EvalContext], list[dict]]) -> Callable[[EvalContext], list[dict]]:
        if name in SECTIONS:
            raise ValueError(f"evaluation section {name!r} registered twice")
        SECTIONS[name] = Section(name, help, applies, run, needs_features)
        return run

    return deco


def _images(data: ImageDataset) -> bool:
    """Discrete images: not 2-D points, not token sequences (the ``text`` section measures those)."""
    return not data.info.continuous and not data.info.is_text


def _has_likelihood(model: TrainableModel, data: ImageDataset) -> bool:
    return _images(data) and isinstance(model, LikelihoodModel) and model.likelihood != "none"


def _samples_images(model: TrainableModel, data: ImageDataset) -> bool:
    return _images(data) and isinstance(model, GenerativeModel)


def _extractor(ctx: EvalContext) -> FeatureExtractor:
    """The feature space of a ``needs_features`` section (:func:`evaluate` builds it before they run)."""
    if ctx.extractor is None:
        raise GenzooError("this section needs a feature space: name it with --features SPEC")
    return ctx.extractor


register_section("likelihood", "exact NLL or the ELBO bound, nats/image and bits/dim", _has_likelihood)(
    lambda c: likelihood_section(c.model, c.data, c.split, c.batch_size)
)
register_section(
    "importance",
    "IWAE bound and importance-sampled NLL (k recorded)",
    lambda m, d: _images(d) and isinstance(m, ImportanceWeighted),
)(lambda c: importance_section(c.model, c.data, c.split, c.k, c.k_iwae, c.max_images, c.seed))
register_section(
    "reconstruction",
    "mean squared reconstruction error through the code",
    lambda m, d: _images(d) and isinstance(m, Reconstructing),
)(lambda c: reconstruction_section(c.model, c.data, c.split, c.batch_size))
register_section("memorisation", "nearest training vs nearest test image of each sample", _samples_images)(
    lambda c: memorisation_section(
        c.model, c.data, c.samples, c.seed, None if c.figure_dir is None else c.figure_dir / "eval_nearest.png"
    )
)
register_section(
    "modes",
    "modes covered and high-quality share on 2-D mixtures",
    lambda m, d: isinstance(m, GenerativeModel) and d.spec.startswith("mixture:"),
)(lambda c: modes_section(c.model, c.data, c.seed))
register_section(
    "quality",
    "Frechet/kernel distance, precision/recall, density/coverage in a feature space",
    _samples_images,
    needs_features=True,
)(
    lambda c: quality_section(
        c.model,
        c.data,
        features=_extractor(c),
        n=c.samples,
        seed=c.seed,
        split=c.split,
        cache_dir=c.feature_cache or default_cache_dir(),
        batch_size=min(c.batch_size, 100),
    )
)
register_section(
    "classification", "accuracy and cross-entropy of a classifier", lambda m, d: isinstance(m, Classifier)
)(lambda c: classification_section(c.model, c.data, c.split, c.batch_size))
register_section(
    "class_accuracy",
    "accuracy of the model's own class predictions (ACGAN, semi-supervised GAN)",
    lambda m, d: _images(d) and isinstance(m, ClassifiesImages) and d.labels is not None,
)(lambda c: class_accuracy_section(c.model, c.data, c.split, c.batch_size))
register_section(
    "partition",
    "log Z by AIS; the RBM's NLL estimate or the DBN's variational bound",
    lambda m, d: _images(d) and isinstance(m, PartitionFunction),
)(lambda c: partition_section(c.model, c.data, c.split, c.max_images, c.seed, c.batch_size))


def applicable_sections(model: TrainableModel, data: ImageDataset, *, with_features: bool = False) -> list[str]:
    """Names of the sections that apply, in registration order (feature sections only ``with_features``)."""
    return [s.name for s in SECTIONS.values() if s.applies(model, data) and (with_features or not s.needs_features)]


def evaluate(
    run,
    *,
    split: str = "test",
    sections: list[str] | None = None,
    k: int = DEFAULT_K,
    k_iwae: int = 50,
    max_images: int | None = DEFAULT_ESTIMATE_IMAGES,
    samples: int = 1000,
    seed: int = 0,
    batch_size: int = 256,
    figure_dir=None,
    features: str | None = None,
    feature_cache=None,
) -> dict:
    """Run every applicable section on a loaded run; returns the eval.json object.

    ``features`` (an extractor spec, e.g. ``classifier:RUN``) adds the sample-quality section on
    ``samples`` generated images; reference features are cached in ``feature_cache``. ``k`` and
    ``max_images`` (None: every image) set the cost of importance sampling and AIS only.
    """
    model, data = run.model, run.data()
    data.indices(split)  # unknown split -> one-line error
    for key, value in (
        ("--k", k),
        ("--k-iwae", k_iwae),
        ("--samples", samples),
        ("--batch-size", batch_size),
        ("--max-images", 1 if max_images is None else max_images),
    ):
        if value < 1:
            raise GenzooError(f"{key} must be >= 1, got {value}")
    possible = applicable_sections(model, data, with_features=features is not None)
    unknown = [s for s in sections or [] if s not in SECTIONS]
    if unknown:
        raise choices_error("evaluation section", unknown[0], list(SECTIONS))
    if sections and "quality" in sections and features is None:
        raise GenzooError(
            "--only quality: name the feature space with --features SPEC "
            "(inception:WEIGHTS | pixels | classifier:RUN | autoencoder:RUN)"
        )
    if sections:
        bad = [s for s in sections if s not in possible]
        if bad:
            raise GenzooError(
                f"--only {bad[0]}: not applicable to {run.model_name!r} on {data.spec}; "
                f"valid here: {', '.join(possible) or 'none'}"
            )
    chosen = sections or possible
    # built first: a bad --features fails before the slow sections run
    extractor = (
        build_extractor(features, device=model.device, batch_size=min(batch_size, 100))
        if "quality" in chosen and features is not None
        else None
    )
    ctx = EvalContext(
        model,
        data,
        split,
        k,
        k_iwae,
        max_images,
        samples,
        seed,
        batch_size,
        None if figure_dir is None else Path(figure_dir),
        extractor,
        None if feature_cache is None else Path(feature_cache),
    )
    metrics: list[dict] = []
    timings = {}
    for name in chosen:
        t0 = time.perf_counter()
        metrics += SECTIONS[name].run(ctx)
        timings[name] = time.perf_counter() - t0
    metrics = with_data_identity(metrics, data)
    return {
        "model": run.model_name,
        "family": type(model).family,
        "data": data.spec,
        "checkpoint": str(run.path / CHECKPOINT),
        "checkpoint_step": run.step,
        "split": split,
        "metrics": metrics,
        "seconds": timings,
    }


def data_identity(data) -> dict:
    """What the numbers were measured on, for every record's protocol: the data spec, its loader
    options, and a digest (SHA-256, 16 hex digits) of the image info and of every split's images and
    labels in split order -- two data sets share it only when every split holds the same images in
    the same order, so a reshuffled or edited copy of the same files never compares as equal."""
    h = hashlib.sha256(json.dumps(data.info.to_dict(), sort_keys=True).encode())
    for name in sorted(data.split_names()):
        idx = data.indices(name)
        h.update(f"|{name}:{len(idx)}|".encode())
        h.update(data.x[idx].contiguous().numpy())  # (N, C, H, W) in split order
        if data.labels is not None:
            h.update(data.labels[idx].contiguous().numpy())
    options = {k: v for k, v in (data.meta.get("options") or {}).items() if v is not None}
    return {"data": data.spec, "data_options": options, "data_digest": h.hexdigest()[:16]}


def with_data_identity(metrics: list[dict], data) -> list[dict]:
    """Records with :func:`data_identity` in their protocol, and a ``reason`` beside every value that is
    not a finite number (eval.json writes it as null)."""
    identity = data_identity(data)
    out = []
    for m in metrics:
        m = {**m, "protocol": {**m["protocol"], **identity}}
        if not math.isfinite(m["value"]) and "reason" not in m:
            m["reason"] = f"the measurement gave {m['value']}, not a finite number"
        out.append(m)
    return out


def summary(result: dict) -> dict:
    """Flat view of the headline numbers: {"nll_nats": ..., "bits_per_dim": ..., ...} (first of each)."""
    flat: dict = {}
    for m in result["metrics"]:
        key = m["metric"] + ("_bits_per_dim" if m["unit"] == "bits/dim" else "")
        flat.setdefault(key, m["value"])
    return flat
