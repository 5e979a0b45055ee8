"""Sample quality in a feature space: ``genzoo eval --features SPEC``.

n images are generated (in batches: memory holds one batch of images and the features) and compared
with up to n held-out images of the data set's ``split`` in the space of a feature extractor
(:mod:`genzoo.features`):

* ``fid`` / ``frechet_distance`` -- the Fréchet distance between the Gaussians fitted to the two sets
  (Heusel et al. 2017, arXiv:1706.08500); it is called FID only with the Inception network's features;
* ``kid`` / ``kernel_distance`` and its ``_std`` -- unbiased MMD^2 with the cubic kernel over random
  subsets (Binkowski et al. 2018, arXiv:1801.01401);
* ``precision`` / ``recall`` with k = 3 (Kynkäänniemi et al. 2019, arXiv:1904.06991);
* ``density`` / ``coverage`` with k = 5 (Naeem et al. 2020, arXiv:2002.09797).

With a ``classifier:RUN`` extractor the class probabilities p(y | x) also give:

* ``inception_score`` -- exp(E_x KL(p(y | x) || p(y))), p(y) the mean of p(y | x) over the part, computed
  on 10 equal parts of the samples; mean and (``inception_score_std``) standard deviation over the parts
  (Salimans et al. 2016, arXiv:1606.03498, with the data set's own classifier in place of Inception);
  the same for the held-out images (``reference_inception_score``) gives the scale;
* ``classes_generated`` -- the share of the K classes that are the most probable class of at least one
  sample (mode coverage, as counted on stacked MNIST by Metz et al. 2016 and Srivastava et al. 2017);
* ``class_kl_from_uniform`` -- KL(q || U) = sum_c q_c log(K q_c) of the histogram q of those most
  probable classes from the uniform distribution over K classes (0 when every class is equally common);
* ``reference_classifier_accuracy`` -- the classifier's accuracy on the held-out images (when labelled):
  a classifier that cannot classify real images makes the numbers above meaningless.

Every record's protocol names the extractor, its weights hash and resize rule, the number of samples,
the reference split, selection and count, and the seed. Reference features are cached on disk
(:func:`genzoo.features.cached_features`) under a key made of the data spec and options, a digest of
the selected images' values, the split, the count and the extractor's name and weights hash; a second
evaluation against the same reference reads them back without touching the images.

Extractors defined here (importing this module registers them):

* ``classifier:RUN`` -- the penultimate layer of a ``genzoo train classifier`` run
  (:mod:`genzoo.models.classifier`), at the images' native size;
* ``autoencoder:RUN`` -- the code ``encode(x)`` of an autoencoder or VAE run (a VAE's posterior mean).
  The choice for unlabelled data such as the Pokémon sprites, where no classifier can be trained.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genzoo.data.continuous import from_unit, to_unit, unit_channels
from genzoo.errors import GenzooError
from genzoo.evaluation import record
from genzoo.features import (FeatureExtractor, ModuleExtractor, build_extractor, cached_features, register_extractor,
                             state_dict_hash)
from genzoo.metrics.distances import (GaussianStats, density_coverage, frechet_distance_stats, kernel_distance,
                                      precision_recall)

PR_K = 3  # neighbours for precision / recall (Kynkäänniemi et al.)
DC_K = 5  # neighbours for density / coverage (Naeem et al.)
IS_SPLITS = 10  # parts of the samples for the Inception Score's mean and std (Salimans et al.)
KID_SUBSET = 1000  # rows per KID subset (Binkowski et al.), fewer when a set is smaller
REFERENCE_SEED = 0  # the fixed random subset of the split used when n is smaller than the split
MIN_IMAGES = DC_K + 1  # k-NN radii need k other points in each set


def default_cache_dir() -> Path:
    """$GENZOO_CACHE_DIR, else $XDG_CACHE_HOME/genzoo/features, else ~/.cache/genzoo/features."""
    if os.environ.get("GENZOO_CACHE_DIR"):
        return Path(os.environ["GENZOO_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "genzoo" / "features"


# --------------------------------------------------------------------------------------------------
# Extractors from run folders


class RunExtractor(ModuleExtractor):
    """A network from a genzoo run folder, applied at the run's own image size."""

    def __init__(self, name: str, run, module: nn.Module, dim: int, *, device, batch_size: int):
        self.expected = (unit_channels(run.info), run.info.height, run.info.width)  # (C', H, W) in [0, 1]
        self.spec, self.trained_on = f"{name}:{run.path}", run.data_desc.get("spec", "?")

        def prepare(x: torch.Tensor) -> torch.Tensor:
            if tuple(x.shape[1:]) != self.expected:
                raise GenzooError(f"{self.spec}: the run was trained on images of shape {self.expected} in [0, 1]; "
                                  f"these are {tuple(x.shape[1:])} (evaluate data of the run's kind and size)")
            return x

        super().__init__(name, module, dim, "none (native size)", prepare,
                         weights_hash=state_dict_hash(run.model.state_dict()), device=device, batch_size=batch_size)
        self.run_path = str(Path(run.path).resolve())

    def check_data(self, data) -> None:
        """A data set whose images the network cannot take -> a one-line error before any work."""
        shape = (unit_channels(data.info), data.info.height, data.info.width)
        if shape != self.expected:
            raise GenzooError(f"{self.spec}: trained on {self.trained_on} images of shape {self.expected} in [0, 1]; "
                              f"{data.spec} has {shape}")

    def describe(self) -> dict:
        return {**super().describe(), "extractor_run": self.run_path}


class _Penultimate(nn.Module):
    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(u)  # (B, hidden)


class _Codes(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        x = from_unit(u, self.model.info)  # the discrete image back (exact for images made by to_unit)
        return self.model.encode(x).reshape(len(u), -1)  # (B, D)


class ClassifierExtractor(RunExtractor):
    """Penultimate features of a trained classifier; its output layer maps them to p(y | x)."""

    def __init__(self, run, *, device, batch_size: int):
        clf = run.model
        super().__init__("classifier", run, _Penultimate(clf), clf.config.hidden, device=device,
                         batch_size=batch_size)
        self.classifier = clf
        self.num_classes = clf.info.num_classes

    @torch.no_grad()
    def class_probabilities(self, feats: np.ndarray) -> np.ndarray:
        """Features (N, hidden) from :meth:`features` -> p(y | x) (N, K) float64."""
        f = torch.as_tensor(np.asarray(feats), dtype=self.classifier.dtype, device=self.classifier.device)
        return torch.softmax(self.classifier.logits_from_features(f).double(), dim=1).cpu().numpy()


def _load(arg: str | None, prefix: str, device):
    from genzoo.training.run import load_run

    if not arg:
        raise GenzooError(f"feature extractor {prefix!r} needs a run folder: {prefix}:RUN")
    return load_run(arg, device)


@register_extractor("classifier")
def _classifier(arg: str | None, *, device="cpu", batch_size: int = 50) -> ClassifierExtractor:
    run = _load(arg, "classifier", device)
    if type(run.model).family != "classifier":
        raise GenzooError(f"classifier:{arg}: holds a {run.model_name!r} run, not a classifier "
                          "(train one with `genzoo train classifier --data ...`)")
    return ClassifierExtractor(run, device=device, batch_size=batch_size)


@register_extractor("autoencoder")
def _autoencoder(arg: str | None, *, device="cpu", batch_size: int = 50) -> RunExtractor:
    from genzoo.models.base import LatentModel

    run = _load(arg, "autoencoder", device)
    if not (isinstance(run.model, LatentModel) and run.model.has_encoder):
        raise GenzooError(f"autoencoder:{arg}: holds a {run.model_name!r} run ({type(run.model).family}), "
                          "which has no encoder; use an autoencoder or VAE run")
    return RunExtractor("autoencoder", run, _Codes(run.model), run.model.latent_dim, device=device,
                        batch_size=batch_size)


# --------------------------------------------------------------------------------------------------
# Class-probability scores


def inception_score(probs, splits: int = IS_SPLITS) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) on each of ``splits`` equal consecutive parts: (mean, std over parts).

    ``probs`` (N, K) rows of class probabilities. Parts are np.array_split's (sizes differ by at most
    one); the std has ddof 0, as in Salimans et al.'s code. Between 1 (every image gets the same
    distribution) and K (confident and evenly spread over the classes).
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) < splits or splits < 1:
        raise GenzooError(f"inception score: need (N, K) probabilities with N >= {splits} parts, got {p.shape}")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(0, keepdims=True)  # (1, K)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)  # (n, K)
        scores.append(math.exp(terms.sum(1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def class_histogram_scores(probs) -> dict:
    """Most-probable classes of (N, K) probabilities: share of classes seen, KL(histogram || uniform)."""
    p = np.asarray(probs)
    k = p.shape[1]
    counts = np.bincount(p.argmax(1), minlength=k)  # (K,)
    q = counts / counts.sum()
    nz = q > 0
    return {"classes_generated": float(nz.sum() / k), "n_classes_generated": int(nz.sum()), "n_classes": k,
            "class_kl_from_uniform": float((q[nz] * np.log(q[nz] * k)).sum()), "counts": counts.tolist()}


# --------------------------------------------------------------------------------------------------
# The section


def reference_positions(size: int, count: int) -> tuple[torch.Tensor, str]:
    """Which positions of a split of ``size`` images form the reference of ``count``, and the rule's name."""
    if count >= size:
        return torch.arange(size), "all"
    g = torch.Generator().manual_seed(REFERENCE_SEED)
    return torch.randperm(size, generator=g)[:count].sort().values, f"random subset (seed {REFERENCE_SEED})"


def reference_key(data, split: str, positions: torch.Tensor, selection: str) -> str:
    """Data spec and options, the selection rule, and a digest of the selected images' values."""
    idx = data.indices(split)[positions]
    digest = hashlib.sha256(data.x[idx].contiguous().numpy().tobytes()).hexdigest()[:16]
    opts = data.meta.get("options") or {}
    return f"{data.spec}|{json.dumps(opts, sort_keys=True)}|{selection}|images:{digest}"


def reference_batches(data, split: str, positions: torch.Tensor, batch_size: int):
    """Unit images of the reference, one batch at a time (consumed only on a cache miss)."""
    for s in range(0, len(positions), batch_size):
        yield to_unit(data.images(split, positions[s:s + batch_size]), data.info)


@torch.no_grad()
def generated_features(model, extractor, info, n: int, seed: int, batch_size: int) -> np.ndarray:
    """Features (n, D) of n samples drawn in batches from one generator seeded with ``seed``."""
    g = torch.Generator(device=model.device).manual_seed(seed)
    cond = model.default_condition(n)
    out = []
    for s in range(0, n, batch_size):
        b = min(batch_size, n - s)
        c = None if cond is None else cond[s:s + b].to(model.device)
        x = model.sample(b, generator=g, condition=c)  # (b, C, H, W)
        out.append(extractor.features(to_unit(x.cpu(), info)))
    return np.concatenate(out, 0)


def quality_section(model, data, *, features: str | FeatureExtractor, n: int, seed: int, cache_dir,
                    split: str = "test", kid_subsets: int = 100, batch_size: int = 100) -> list[dict]:
    """Sample-quality records of ``n`` samples of ``model`` against held-out images of ``split``.

    ``features`` is an extractor spec or an extractor already built (build it first to fail early).
    """
    if data.info.continuous:
        raise GenzooError(f"{data.spec}: sample-quality metrics need images; 2-D points have the modes section")
    size = data.size(split)
    n_ref = min(n, size)
    if min(n, n_ref) < MIN_IMAGES:
        raise GenzooError(f"sample quality needs at least {MIN_IMAGES} samples and {MIN_IMAGES} {split} images "
                          f"(k-NN radii with k = {DC_K}); got {n} samples, {size} {split} images")
    if kid_subsets < 1 or batch_size < 1:
        raise GenzooError("kid subsets and batch size must be >= 1")
    device = getattr(model, "device", "cpu")
    extractor = features if isinstance(features, FeatureExtractor) else build_extractor(
        features, device=device, batch_size=batch_size)
    if hasattr(extractor, "check_data"):
        extractor.check_data(data)

    positions, selection = reference_positions(size, n_ref)
    real = cached_features(extractor, reference_key(data, split, positions, selection),
                           reference_batches(data, split, positions, batch_size), cache_dir, split=split,
                           count=n_ref)
    fake = generated_features(model, extractor, data.info, n, seed, batch_size)

    proto = {"samples": n, "seed": seed, "reference_split": split, "reference_images": n_ref,
             "reference_selection": selection, **extractor.describe()}
    inception = extractor.name == "inception"
    fd = frechet_distance_stats(GaussianStats.of(real), GaussianStats.of(fake))
    m = min(KID_SUBSET, n, n_ref)
    kid, kid_std = kernel_distance(real, fake, n_subsets=kid_subsets, subset_size=m, seed=seed)
    kid_proto = {**proto, "kid_subsets": kid_subsets, "kid_subset_size": m}
    pr = precision_recall(real, fake, k=PR_K, device=device)
    dc = density_coverage(real, fake, k=DC_K, device=device)
    out = [record("fid" if inception else "frechet_distance", fd, "squared distance in feature space", **proto),
           record("kid" if inception else "kernel_distance", kid, "unbiased MMD^2, cubic kernel", **kid_proto),
           record(("kid" if inception else "kernel_distance") + "_std", kid_std,
                  "std of the subset estimates (ddof 1)", **kid_proto),
           record("precision", pr["precision"], "fraction of samples", **proto, k=PR_K),
           record("recall", pr["recall"], "fraction of reference images", **proto, k=PR_K),
           record("density", dc["density"], "mean ball count / k (can exceed 1)", **proto, k=DC_K),
           record("coverage", dc["coverage"], "fraction of reference images", **proto, k=DC_K)]
    if hasattr(extractor, "class_probabilities"):
        out += _class_records(extractor, data, split, positions, real, fake, proto)
    return out


def _class_records(extractor, data, split, positions, real, fake, proto) -> list[dict]:
    p_fake, p_real = extractor.class_probabilities(fake), extractor.class_probabilities(real)
    k = p_fake.shape[1]
    splits = min(IS_SPLITS, len(p_fake), len(p_real))
    is_proto = {**proto, "is_splits": splits}
    is_mean, is_std = inception_score(p_fake, splits)
    ref_mean, _ = inception_score(p_real, splits)
    hist = class_histogram_scores(p_fake)
    unit_is = f"exp(nats), 1 to {k}"
    out = [record("inception_score", is_mean, unit_is, **is_proto),
           record("inception_score_std", is_std, "std over the splits (ddof 0)", **is_proto),
           record("reference_inception_score", ref_mean, unit_is, **is_proto),
           record("classes_generated", hist["classes_generated"], f"fraction of {k} classes", **proto,
                  rule="argmax class of >= 1 sample"),
           record("class_kl_from_uniform", hist["class_kl_from_uniform"], "nats", **proto,
                  rule="histogram of argmax classes")]
    if data.labels is not None:
        labels = data.batch(split, positions)["y"].numpy()
        out.append(record("reference_classifier_accuracy", float((p_real.argmax(1) == labels).mean()),
                          "fraction of reference images", **proto))
    return out
