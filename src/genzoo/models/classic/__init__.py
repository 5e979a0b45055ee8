"""The classic models: mixtures (and, with them, linear factor models, RBMs, DBNs)."""
from genzoo.models.classic import gmm

__all__ = ["gmm"]
