"""The sample-quality section of ``genzoo eval --features SPEC``: ``genzoo eval --features SPEC``.

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
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from genzoo.data.continuous import to_unit
from genzoo.errors import GenzooError
from genzoo.evaluation.records import record
from genzoo.features import FeatureExtractor, build_extractor, cached_features
from genzoo.metrics.distances import (
    GaussianStats,
    density_coverage,
    frechet_distance_stats,
    kernel_distance,
    precision_recall,
)
from genzoo.metrics.quality import (
    DC_K,
    IS_SPLITS,
    KID_SUBSET,
    MIN_IMAGES,
    PR_K,
    REFERENCE_SEED,
    class_histogram_scores,
    inception_score,
)


def default_cache_dir() -> Path:
    """$GENZOO_CACHE_DIR, else $XDG_CACHE_HOME/genzoo/features, else ~/.cache/genzoo/features."""
    if os.environ.get("GENZOO_CACHE_DIR"):
        return Path(os.environ["GENZOO_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "genzoo" / "features"


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
        yield to_unit(data.images(split, positions[s : s + batch_size]), data.info)


@torch.no_grad()
def generated_features(model, extractor, info, n: int, seed: int, batch_size: int) -> np.ndarray:
    """Features (n, D) of n samples drawn in batches from one generator seeded with ``seed``."""
    g = torch.Generator(device=model.device).manual_seed(seed)
    cond = model.default_condition(n)
    out = []
    for s in range(0, n, batch_size):
        b = min(batch_size, n - s)
        c = None if cond is None else cond[s : s + b].to(model.device)
        x = model.sample(b, generator=g, condition=c)  # (b, C, H, W)
        out.append(extractor.features(to_unit(x.cpu(), info)))
    return np.concatenate(out, 0)


def quality_section(
    model,
    data,
    *,
    features: str | FeatureExtractor,
    n: int,
    seed: int,
    cache_dir,
    split: str = "test",
    kid_subsets: int = 100,
    batch_size: int = 100,
) -> list[dict]:
    """Sample-quality records of ``n`` samples of ``model`` against held-out images of ``split``.

    ``features`` is an extractor spec or an extractor already built (build it first to fail early).
    """
    if data.info.continuous:
        raise GenzooError(f"{data.spec}: sample-quality metrics need images; 2-D points have the modes section")
    size = data.size(split)
    n_ref = min(n, size)
    if min(n, n_ref) < MIN_IMAGES:
        raise GenzooError(
            f"sample quality needs at least {MIN_IMAGES} samples and {MIN_IMAGES} {split} images "
            f"(k-NN radii with k = {DC_K}); got {n} samples, {size} {split} images"
        )
    if kid_subsets < 1 or batch_size < 1:
        raise GenzooError("kid subsets and batch size must be >= 1")
    device = getattr(model, "device", "cpu")
    extractor = (
        features
        if isinstance(features, FeatureExtractor)
        else build_extractor(features, device=device, batch_size=batch_size)
    )
    if hasattr(extractor, "check_data"):
        extractor.check_data(data)

    positions, selection = reference_positions(size, n_ref)
    real = cached_features(
        extractor,
        reference_key(data, split, positions, selection),
        reference_batches(data, split, positions, batch_size),
        cache_dir,
        split=split,
        count=n_ref,
    )
    fake = generated_features(model, extractor, data.info, n, seed, batch_size)

    proto = {
        "samples": n,
        "seed": seed,
        "reference_split": split,
        "reference_images": n_ref,
        "reference_selection": selection,
        **extractor.describe(),
    }
    inception = extractor.name == "inception"
    fd = frechet_distance_stats(GaussianStats.of(real), GaussianStats.of(fake))
    m = min(KID_SUBSET, n, n_ref)
    kid, kid_std = kernel_distance(real, fake, n_subsets=kid_subsets, subset_size=m, seed=seed)
    kid_proto = {**proto, "kid_subsets": kid_subsets, "kid_subset_size": m}
    pr = precision_recall(real, fake, k=PR_K, device=device)
    dc = density_coverage(real, fake, k=DC_K, device=device)
    out = [
        record("fid" if inception else "frechet_distance", fd, "squared distance in feature space", **proto),
        record("kid" if inception else "kernel_distance", kid, "unbiased MMD^2, cubic kernel", **kid_proto),
        record(
            ("kid" if inception else "kernel_distance") + "_std",
            kid_std,
            "std of the subset estimates (ddof 1)",
            **kid_proto,
        ),
        record("precision", pr["precision"], "fraction of samples", **proto, k=PR_K),
        record("recall", pr["recall"], "fraction of reference images", **proto, k=PR_K),
        record("density", dc["density"], "mean ball count / k (can exceed 1)", **proto, k=DC_K),
        record("coverage", dc["coverage"], "fraction of reference images", **proto, k=DC_K),
    ]
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
    out = [
        record("inception_score", is_mean, unit_is, **is_proto),
        record("inception_score_std", is_std, "std over the splits (ddof 0)", **is_proto),
        record("reference_inception_score", ref_mean, unit_is, **is_proto),
        record(
            "classes_generated",
            hist["classes_generated"],
            f"fraction of {k} classes",
            **proto,
            rule="argmax class of >= 1 sample",
        ),
        record(
            "class_kl_from_uniform", hist["class_kl_from_uniform"], "nats", **proto, rule="histogram of argmax classes"
        ),
    ]
    if data.labels is not None:
        labels = data.batch(split, positions)["y"].numpy()
        out.append(
            record(
                "reference_classifier_accuracy",
                float((p_real.argmax(1) == labels).mean()),
                "fraction of reference images",
                **proto,
            )
        )
    return out
