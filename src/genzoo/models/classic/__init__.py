"""The classic models: mixtures (and, with them, linear factor models, RBMs, DBNs)."""

from genzoo.models.classic import dbn, factor_analysis, gmm, ica, pca, ppca, rbm, sparse_coding

__all__ = ["dbn", "factor_analysis", "gmm", "ica", "pca", "ppca", "rbm", "sparse_coding"]
