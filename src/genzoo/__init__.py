"""genzoo: deep generative models behind one API and one CLI.

Data flows one way: dataset -> batch -> model.loss(batch) -> trainer -> checkpoint
-> sampler / evaluator -> CLI.
"""

from genzoo._version import __version__
from genzoo.errors import GenzooError
from genzoo.models import available_models, build_model, get_model_class, register_model

__all__ = [
    "__version__",
    "GenzooError",
    "available_models",
    "build_model",
    "get_model_class",
    "register_model",
]
