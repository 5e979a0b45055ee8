"""Models, grouped by family as the lectures group them; the contracts are in :mod:`genzoo.models.base`.

Importing this package imports every family, and each model module registers its classes by name
(:mod:`genzoo.models.registry`), so ``available_models()`` is complete once ``genzoo.models`` is imported.
"""

from genzoo.models import autoencoders, autoregressive, classic, classifier, gan, text
from genzoo.models.registry import available_models, build_model, get_model_class, register_model

__all__ = [
    "autoencoders",
    "autoregressive",
    "available_models",
    "build_model",
    "classic",
    "classifier",
    "gan",
    "get_model_class",
    "register_model",
    "text",
]
