"""A synthetic captioned image set made from a labelled one: the captions are GENERATED, not written
by people. No captioned image set is available offline, so text-conditioned models (text2image) are
trained and measured on this one.

Each image's caption names its class and attributes measured from its pixels (u = pixel / 255):

* grey images (Fashion-MNIST, MNIST): ``dark`` / ``light`` -- the mean of u over the object's pixels
  (u > 0.1) below / above the median of the image's class on the train split; ``small`` / ``large``
  -- the share of object pixels below / above the class median;
* RGB images (CIFAR-10): a colour -- the name of the colour nearest (Euclidean, RGB) the mean colour of
  the image's central half, among :data:`COLOURS`; and ``dark`` / ``light`` as above, on the mean of
  the grey value over the whole image.

Per-class medians make each attribute word split every class in half, so a word is informative
within the class. Each image gets ``per_image`` captions from different phrasings (:data:`PHRASINGS`),
drawn with a seed; e.g. "a dark coat", "a large dark coat", "this coat is dark and large".

:func:`write_captioned_set` writes the set in the ``captions:PATH`` layout (:mod:`genzoo.data.captions`):
``train/NNNNN.png``, ``test/NNNNN.png``, ``captions.txt``, and ``attributes.json`` -- per file the class,
the attribute words and measured values, plus the thresholds, so a benchmark can measure generated
images with the same rule (:func:`measure`, :func:`attribute_words`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from genzoo.data.base import ImageDataset
from genzoo.errors import GenzooError
from genzoo.io import atomic_write_text

OBJECT_LEVEL = 0.1  # grey images: pixels above this (in [0, 1]) belong to the object
COLOURS = {
    "red": (200, 40, 40),
    "orange": (220, 130, 40),
    "yellow": (220, 210, 60),
    "green": (60, 150, 60),
    "blue": (50, 90, 200),
    "purple": (130, 60, 160),
    "brown": (120, 80, 50),
    "white": (235, 235, 235),
    "grey": (128, 128, 128),
    "black": (25, 25, 25),
}
# {c}: class words, {b}: dark/light, {a}: the second attribute (small/large, or a colour name)
PHRASINGS = (
    "a {b} {c}",
    "a {a} {c}",
    "a {a} {b} {c}",
    "a picture of a {b} {c}",
    "this {c} is {b} and {a}",
    "a {c} , {b} and {a}",
)
# Class names as caption words (a name not listed is lower-cased as it is).
CLASS_WORDS = {"T-shirt/top": "t-shirt", "Trouser": "trousers", "Ankle boot": "ankle boot"}
ATTRIBUTES_FILE = "attributes.json"


def class_words(name: str) -> str:
    return CLASS_WORDS.get(name, name.lower())


def measure(u: np.ndarray) -> dict[str, np.ndarray]:
    """Images in [0, 1] (N, C, H, W) -> the measured values: ``brightness`` and ``area`` (grey) or
    ``brightness`` and ``colour`` (an index into :data:`COLOURS`, RGB)."""
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 4 or u.shape[1] not in (1, 3):
        raise GenzooError(f"measure: expected images (N, 1 or 3, H, W), got {u.shape}")
    if u.shape[1] == 1:
        g = u[:, 0]  # (N, H, W)
        on = g > OBJECT_LEVEL
        area = on.mean(axis=(1, 2))
        brightness = np.where(on.any(axis=(1, 2)), (g * on).sum(axis=(1, 2)) / np.maximum(on.sum(axis=(1, 2)), 1), 0.0)
        return {"brightness": brightness, "area": area}
    h, w = u.shape[2:]
    centre = u[:, :, h // 4 : h - h // 4, w // 4 : w - w // 4].mean(axis=(2, 3)) * 255  # (N, 3)
    palette = np.array(list(COLOURS.values()), dtype=np.float64)  # (K, 3)
    colour = ((centre[:, None, :] - palette[None]) ** 2).sum(-1).argmin(1)
    return {"brightness": u.mean(axis=(1, 2, 3)), "colour": colour}


def thresholds(values: dict[str, np.ndarray], labels: np.ndarray, num_classes: int) -> dict[str, list[float]]:
    """Per-class medians of the continuous measurements (brightness, area) on the given images."""
    out: dict[str, list[float]] = {}
    for key in ("brightness", "area"):
        if key in values:
            out[key] = [float(np.median(values[key][labels == c])) if (labels == c).any() else 0.5
                        for c in range(num_classes)]  # fmt: skip
    return out


def attribute_words(values: dict[str, np.ndarray], labels: np.ndarray, limits: dict[str, list[float]]):
    """Measured values -> (brightness words, second-attribute words), one per image."""
    lim_b = np.asarray(limits["brightness"])[labels]
    b = np.where(values["brightness"] > lim_b, "light", "dark")
    if "area" in values:
        a = np.where(values["area"] > np.asarray(limits["area"])[labels], "large", "small")
    else:
        names = np.array(list(COLOURS))
        a = names[np.asarray(values["colour"], dtype=np.int64)]
    return b, a


def captions_for(cls: str, b: str, a: str, k: int, rng: np.random.Generator) -> list[str]:
    """``k`` captions of one image in different phrasings (k <= len(PHRASINGS))."""
    picks = rng.choice(len(PHRASINGS), size=k, replace=False)
    return [PHRASINGS[i].format(c=cls, b=b, a=a) for i in sorted(picks)]


def write_captioned_set(
    data: ImageDataset,
    out: Path,
    *,
    per_class: dict[str, int],
    per_image: int = 3,
    seed: int = 0,
) -> dict:
    """Write up to ``per_class[split]`` images of each class of each split (``train``, ``test``) of
    labelled ``data`` with ``per_image`` generated captions each into ``out`` (captions layout).
    Returns the summary also written to ``attributes.json``."""
    if data.labels is None or not data.info.class_names or data.info.num_values != 256:
        raise GenzooError(f"{data.spec}: needs 8-bit images with named classes (e.g. idx:fashion-mnist, cifar10)")
    if not 1 <= per_image <= len(PHRASINGS):
        raise GenzooError(f"per_image must be 1-{len(PHRASINGS)}, got {per_image}")
    out = Path(out)
    if (out / "captions.txt").exists():
        raise GenzooError(f"{out}: already holds captions.txt; choose another folder")
    rng = np.random.default_rng(seed)
    k = data.info.num_classes
    names = [class_words(n) for n in data.info.class_names]
    chosen: dict[str, np.ndarray] = {}
    for split, n in per_class.items():
        y = data.labels[data.indices(split)].numpy()
        pos = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:n] for c in range(k)])
        chosen[split] = np.sort(pos)
    measured = {s: measure(data.images(s, p.tolist()).numpy() / 255.0) for s, p in chosen.items()}
    train_labels = data.labels[data.indices("train")[chosen["train"]]].numpy()
    limits = thresholds(measured["train"], train_labels, k)
    lines, records = [], {}
    for split, pos in chosen.items():
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        x = data.images(split, pos.tolist()).numpy().astype(np.uint8)  # (n, C, H, W)
        labels = data.labels[data.indices(split)[pos]].numpy()
        b, a = attribute_words(measured[split], labels, limits)
        for j in range(len(pos)):
            name = f"{split}/{j:05d}.png"
            img = x[j, 0] if x.shape[1] == 1 else x[j].transpose(1, 2, 0)
            Image.fromarray(img).save(out / name)
            for text in captions_for(names[labels[j]], str(b[j]), str(a[j]), per_image, rng):
                lines.append(f"{name}\t{text}")
            records[name] = {
                "class": int(labels[j]),
                "brightness": str(b[j]),
                "attribute": str(a[j]),
                **{f"measured_{key}": float(v[j]) for key, v in measured[split].items()},
            }
    summary = {
        "generated": "captions GENERATED from class labels and measured pixel attributes (synthetic_captions)",
        "source": data.spec,
        "seed": seed,
        "class_names": list(data.info.class_names),
        "class_words": names,
        "second_attribute": "area" if data.info.channels == 1 else "colour",
        "thresholds": limits,
        "object_level": OBJECT_LEVEL,
        "phrasings": list(PHRASINGS),
        "per_image": per_image,
        "images": records,
    }
    atomic_write_text(out / ATTRIBUTES_FILE, json.dumps(summary) + "\n")
    atomic_write_text(out / "captions.txt", "\n".join(lines) + "\n")  # last: its presence marks a finished set
    return summary
