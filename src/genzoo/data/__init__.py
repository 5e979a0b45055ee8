"""Data sets by spec string: ``pokemon``, ``folder:PATH``, ``binarized-mnist:PATH``, ``idx:PATH``,
``mixture:ring8|grid25`` (continuous 2-D points).

``load_dataset(spec, **options)`` is the one entry point; each kind registers a loader
with :func:`register_dataset` (:mod:`genzoo.data.kinds`), and ``genzoo datasets`` lists them.
"""

from genzoo.data import captions, cifar, faces, folder, mnist, olivetti, paired, patches, pokemon, text, toy
from genzoo.data.base import ImageDataset, ImageInfo, every_tenth_split
from genzoo.data.kinds import DatasetKind, dataset_kinds, load_dataset, register_dataset

__all__ = [
    "DatasetKind",
    "ImageDataset",
    "ImageInfo",
    "captions",
    "cifar",
    "dataset_kinds",
    "every_tenth_split",
    "faces",
    "folder",
    "load_dataset",
    "mnist",
    "olivetti",
    "paired",
    "patches",
    "pokemon",
    "register_dataset",
    "text",
    "toy",
]
