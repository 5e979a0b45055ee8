"""The classic models: mixtures (and, with them, linear factor models, RBMs, DBNs)."""
from genzoo.models.classic import gmm
from genzoo.models.classic import dbn, rbm
from genzoo.models.classic import factor_analysis, ica, pca, ppca

__all__ = ["factor_analysis", "gmm", "ica", "pca", "ppca", "rbm", "dbn"]
