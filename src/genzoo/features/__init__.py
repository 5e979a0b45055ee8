"""Feature spaces for sample-quality metrics: the FID Inception network, pixels, and a cache.

``build_extractor("inception:/path/pt_inception-2015-12-05-6726825d.pth")`` or
``build_extractor("pixels")``; other modules add prefixes with :func:`register_extractor`.
"""

from genzoo.features.extractors import (
    FeatureExtractor,
    ModuleExtractor,
    PixelExtractor,
    available_extractors,
    build_extractor,
    cached_features,
    cached_stats,
    register_extractor,
    state_dict_hash,
)
from genzoo.features.inception import FIDInceptionV3, load_inception
from genzoo.features.runs import ClassifierExtractor, RunExtractor

__all__ = [
    "ClassifierExtractor",
    "RunExtractor",
    "FIDInceptionV3",
    "FeatureExtractor",
    "ModuleExtractor",
    "PixelExtractor",
    "available_extractors",
    "build_extractor",
    "cached_features",
    "cached_stats",
    "load_inception",
    "register_extractor",
    "state_dict_hash",
]
