"""Feature extractors chosen by a spec string, and a disk cache of their outputs.

Specs (``prefix`` or ``prefix:argument``):

* ``inception:PATH`` -- the FID Inception-v3 (:mod:`genzoo.features.inception`) with weights from
  PATH; 2048-d pool features. Grey images are repeated to 3 channels; every image is resized
  bilinearly to 299x299. The features FID/KID numbers in papers use.
* ``pixels`` -- the flattened pixels in [0, 1] themselves (C*H*W dims). A BASELINE only: Euclidean
  pixel distance ignores that a shifted image is the same picture, and with more dimensions than
  samples the pixel covariance is singular, so a "pixel FID" is not comparable with FID.
* more prefixes (``classifier:RUN``, ``autoencoder:RUN`` in :mod:`genzoo.features.runs`) are added
  with :func:`register_extractor` by the module that defines the network; :mod:`genzoo.features`
  imports each such module, so the registry is complete once the package is imported.

Every extractor has ``name`` (the spec), ``weights_hash`` (first 16 hex digits of the sha256 of its
weights file or state-dict bytes), ``resize`` (how images are brought to the network's input),
``dim`` and ``features(images_unit) -> (N, D)`` float32 numpy, for float images (N, C, H, W) in
[0, 1]. These four facts are the protocol to record next to any number computed from the features.

:func:`cached_features` / :func:`cached_stats` store features (float32 .npy) or their
:class:`~genzoo.metrics.distances.GaussianStats` (.npz) under a file name derived from
(data key, split, count, extractor name, weights hash), written atomically with a JSON sidecar; any
change of the five gives another file, so stale features are never reused.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from genzoo._version import __version__
from genzoo.errors import GenzooError, choices_error
from genzoo.features.inception import FEATURE_DIM, FID_WEIGHTS_NAME, INPUT_SIZE, load_inception
from genzoo.io import atomic_write, atomic_write_text
from genzoo.metrics.distances import GaussianStats

_BUILDERS: dict[str, Callable[..., FeatureExtractor]] = {}


def register_extractor(prefix: str):
    """Decorator: ``builder(arg: str | None, *, device, batch_size) -> FeatureExtractor`` for ``prefix``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", prefix):
        raise ValueError(f"extractor prefix must be lower-case letters, digits and _, got {prefix!r}")

    def deco(builder):
        if prefix in _BUILDERS and _BUILDERS[prefix] is not builder:
            raise ValueError(f"feature extractor prefix {prefix!r} registered twice")
        _BUILDERS[prefix] = builder
        return builder

    return deco


def available_extractors() -> list[str]:
    """Registered spec prefixes, sorted."""
    return sorted(_BUILDERS)


def build_extractor(spec: str, *, device="cpu", batch_size: int = 50) -> FeatureExtractor:
    """``"inception:/path/w.pth"`` / ``"pixels"`` / a registered ``prefix:arg`` -> an extractor."""
    prefix, sep, arg = spec.partition(":")
    valid = available_extractors()
    if prefix not in _BUILDERS:
        raise choices_error("feature extractor", prefix, valid)
    if batch_size < 1:
        raise GenzooError(f"feature batch size must be >= 1, got {batch_size}")
    return _BUILDERS[prefix](arg if sep else None, device=device, batch_size=batch_size)


def state_dict_hash(state: dict) -> str:
    """First 16 hex digits of a sha256 over a state dict's sorted names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # raw bytes (bf16/bool too)
    return h.hexdigest()[:16]


def check_unit_images(images, what: str = "images") -> torch.Tensor:
    """Float (N, C, H, W) in [0, 1] as a CPU/any-device float tensor, or a one-line GenzooError."""
    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if x.ndim != 4:
        raise GenzooError(f"{what}: expected (N, C, H, W) images, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise GenzooError(f"{what}: expected floats in [0, 1], got {x.dtype} (convert with to_unit)")
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise GenzooError(f"{what}: values must lie in [0, 1] (got {float(x.min()):.3g}..{float(x.max()):.3g})")
    return x


class FeatureExtractor:
    """Maps unit images (N, C, H, W) to features (N, D); subclasses set the protocol fields."""

    name: str
    weights_hash: str
    resize: str
    dim: int

    def features(self, images_unit) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        """The protocol to store next to a metric computed from these features."""
        return {"extractor": self.name, "weights_hash": self.weights_hash, "resize": self.resize, "dim": self.dim}


class ModuleExtractor(FeatureExtractor):
    """A torch module applied in eval mode and in batches: ``module(prepare(x)) -> (B, D)``.

    The generic wrapper for network extractors (Inception, a trained classifier's penultimate
    layer, an autoencoder's code): ``prepare`` turns validated unit images into the module's input
    (channel repeat, resize, scaling); ``weights_hash`` defaults to :func:`state_dict_hash`.
    """

    def __init__(
        self,
        name: str,
        module: torch.nn.Module,
        dim: int,
        resize: str,
        prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
        *,
        weights_hash: str | None = None,
        device="cpu",
        batch_size: int = 50,
    ):
        self.name, self.dim, self.resize = name, dim, resize
        self.module = module.to(device).eval().requires_grad_(False)
        self.prepare = prepare or (lambda x: x)
        self.weights_hash = weights_hash or state_dict_hash(module.state_dict())
        self.device, self.batch_size = torch.device(device), batch_size

    @torch.no_grad()
    def features(self, images_unit) -> np.ndarray:
        x = check_unit_images(images_unit, self.name)
        out = np.empty((x.shape[0], self.dim), dtype=np.float32)
        for s in range(0, x.shape[0], self.batch_size):
            xb = self.prepare(x[s : s + self.batch_size].to(self.device, torch.float32))
            f = self.module(xb)  # (b, D)
            if f.shape != (xb.shape[0], self.dim):
                raise GenzooError(f"{self.name}: network returned shape {tuple(f.shape)}, expected (B, {self.dim})")
            out[s : s + f.shape[0]] = f.float().cpu().numpy()
        return out


def to_rgb3(x: torch.Tensor, what: str) -> torch.Tensor:
    """(N, 1 or 3, H, W) -> (N, 3, H, W): grey is repeated to three channels."""
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise GenzooError(f"{what}: needs 1 (grey) or 3 (RGB) channels, got {x.shape[1]}")
    return x


@register_extractor("inception")
def _inception(arg: str | None, *, device="cpu", batch_size: int = 50) -> FeatureExtractor:
    if not arg:
        raise GenzooError(
            f"feature extractor 'inception' needs a weights file: inception:PATH (pytorch-fid's {FID_WEIGHTS_NAME})"
        )
    net = load_inception(arg, device=device)
    return ModuleExtractor(
        "inception",
        net,
        FEATURE_DIM,
        f"grey->RGB, bilinear to {INPUT_SIZE}x{INPUT_SIZE} (align_corners=False, no antialias), [0,1]->[-1,1]",
        prepare=lambda x: to_rgb3(x, "inception"),
        weights_hash=net.weights_hash,
        device=device,
        batch_size=batch_size,
    )


class PixelExtractor(FeatureExtractor):
    """Flattened unit pixels: a baseline feature space with no learned weights."""

    name = "pixels"
    weights_hash = hashlib.sha256(b"genzoo pixels: flattened [0,1] values, C*H*W order").hexdigest()[:16]
    resize = "none (native size, flattened C*H*W)"
    dim = 0  # known once images are seen

    def features(self, images_unit) -> np.ndarray:
        x = check_unit_images(images_unit, "pixels")
        self.dim = x.shape[1] * x.shape[2] * x.shape[3]
        return x.detach().reshape(x.shape[0], -1).float().cpu().numpy()


@register_extractor("pixels")
def _pixels(arg: str | None, *, device="cpu", batch_size: int = 50) -> FeatureExtractor:
    if arg:
        raise GenzooError(f"feature extractor 'pixels' takes no argument, got {arg!r}")
    return PixelExtractor()


# --------------------------------------------------------------------------------------------------
# Disk cache


def cache_key(extractor: FeatureExtractor, data_key: str, split: str, count: int) -> dict:
    return {
        "data_key": str(data_key),
        "split": str(split),
        "count": int(count),
        "extractor": extractor.name,
        "weights_hash": extractor.weights_hash,
    }


def cache_path(cache_dir, key: dict, kind: str) -> Path:
    """``<cache_dir>/<readable slug>-<sha256(key)[:16]>.<npy|npz>``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    slug = re.sub(
        r"[^A-Za-z0-9_.-]+", "_", f"{key['data_key']}-{key['split']}-{key['count']}-{key['extractor'].split(':')[0]}"
    )[-80:].strip("_.")
    return Path(cache_dir) / f"{slug}-{digest}.{'npy' if kind == 'features' else 'npz'}"


def _read_cached(path: Path, key: dict, kind: str):
    """The cached array/stats if the file and its sidecar match ``key``; None on any mismatch."""
    meta_path = path.with_suffix(path.suffix + ".json")
    if not path.is_file() or not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key or meta.get("kind") != kind:
            return None
        if kind == "features":
            arr = np.load(path, allow_pickle=False)
            return arr if arr.ndim == 2 and arr.shape[0] == key["count"] else None
        with np.load(path, allow_pickle=False) as z:
            stats = GaussianStats.from_state(z)
        return stats if stats.count == key["count"] else None
    except (OSError, ValueError, KeyError, GenzooError) as e:
        warnings.warn(f"{path}: unreadable feature cache entry, recomputing ({e})", stacklevel=3)
        return None


def _write_cached(path: Path, key: dict, kind: str, value, extractor: FeatureExtractor) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            if kind == "features":
                np.save(f, value)
            else:
                np.savez(f, **value.state())

    atomic_write(path, write)
    meta = {"key": key, "kind": kind, "protocol": extractor.describe(), "genzoo": __version__}
    atomic_write_text(path.with_suffix(path.suffix + ".json"), json.dumps(meta, indent=1))


def _batches(extractor: FeatureExtractor, images_iter: Iterable, count: int, data_key: str):
    seen = 0
    for images in images_iter:
        f = extractor.features(images)  # (B, D)
        seen += f.shape[0]
        if seen > count:
            raise GenzooError(f"{data_key}: the images gave more than the {count} promised for the cache key")
        yield f
    if seen != count:
        raise GenzooError(f"{data_key}: the images gave {seen} features, {count} promised for the cache key")


def cached_features(
    extractor: FeatureExtractor, data_key: str, images_iter: Iterable, cache_dir, *, split: str, count: int
) -> np.ndarray:
    """Features (count, D) float32 of the images, read from ``cache_dir`` or computed and stored.

    ``images_iter`` yields unit-image batches (N, C, H, W); it is consumed only on a miss (pass a
    generator so nothing is loaded on a hit) and must yield exactly ``count`` images.
    ``data_key`` must identify the images (data spec and options, or a run + seed for samples).
    """
    key = cache_key(extractor, data_key, split, count)
    path = cache_path(cache_dir, key, "features")
    hit = _read_cached(path, key, "features")
    if hit is not None:
        return hit
    feats = np.concatenate(list(_batches(extractor, images_iter, count, data_key)), 0).astype(np.float32)
    _write_cached(path, key, "features", feats, extractor)
    return feats


def cached_stats(
    extractor: FeatureExtractor, data_key: str, images_iter: Iterable, cache_dir, *, split: str, count: int
) -> GaussianStats:
    """Like :func:`cached_features` but keeps only the Gaussian statistics (O(D^2) memory)."""
    key = cache_key(extractor, data_key, split, count)
    path = cache_path(cache_dir, key, "stats")
    hit = _read_cached(path, key, "stats")
    if hit is not None:
        return hit
    stats = GaussianStats()
    for f in _batches(extractor, images_iter, count, data_key):
        stats.update(f)
    _write_cached(path, key, "stats", stats, extractor)
    return stats
