"""The sparse autoencoder (Ng 2011, "Sparse autoencoder", CS294A lecture notes, Stanford).

The code units are sigmoids, z_j in (0, 1). With rho_hat_j the mean activation of unit j over the
batch (the notes average over the training set; a batch is its estimate), the loss adds a penalty
that pulls every unit's average activation towards a small target rho:

    L = E_x ||u - g(z)||^2 + beta * sum_j KL(rho || rho_hat_j),
    KL(rho || rho_hat) = rho log(rho / rho_hat) + (1 - rho) log((1 - rho) / (1 - rho_hat)),

the KL divergence between Bernoulli(rho) and Bernoulli(rho_hat) (the notes' eq. for J_sparse; their
weight decay term is the optimiser's ``weight_decay`` here). Everything else -- squared error,
encoder/decoder bodies, the ex-post code Gaussian for sampling -- is the plain autoencoder's
(:mod:`genzoo.models.autoencoders.autoencoder`). The notes' network is one sigmoid hidden layer, the ``mlp``
preset (784 -> 196 -> 784).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genzoo.models.autoencoders.autoencoder import AutoencoderBase, AutoencoderConfig
from genzoo.models.registry import register_model

RHO_HAT_CLAMP = 1e-6  # keeps log(rho_hat) and log(1 - rho_hat) finite


@dataclass
class SparseAutoencoderConfig(AutoencoderConfig):
    rho: float = 0.05  # target mean activation of each code unit
    beta: float = 3.0  # weight of the sparsity penalty

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.rho < 1:
            raise ValueError(f"rho must be in (0, 1), got {self.rho}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")


def bernoulli_kl(rho: float, rho_hat: torch.Tensor) -> torch.Tensor:
    """KL(Bernoulli(rho) || Bernoulli(rho_hat)) elementwise."""
    return rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))


@register_model("sparse_autoencoder")
class SparseAutoencoder(AutoencoderBase):
    """Sigmoid codes whose batch-mean activations are pulled towards rho by a KL penalty."""

    paper = "Ng 2011, Sparse autoencoder, CS294A lecture notes (Stanford)"
    Config = SparseAutoencoderConfig
    presets = {
        "tiny": {"arch": "mlp", "hidden": (8,), "latent_dim": 4, "batch_size": 8, "lr": 1e-2},
        # The notes' network: one layer of sigmoid units between input and output.
        "mlp": {"arch": "mlp", "hidden": (), "latent_dim": 196, "rho": 0.05, "beta": 3.0, "batch_size": 64, "lr": 1e-3},
        "conv": {
            "arch": "conv",
            "channels": (32, 64),
            "hidden": (256,),
            "latent_dim": 64,
            "batch_size": 64,
            "lr": 1e-3,
        },
        "fashion": {
            "arch": "conv",
            "channels": (16, 32, 64),
            "hidden": (256,),
            "latent_dim": 64,
            "batch_size": 64,
            "lr": 1e-3,
        },
    }

    def code_activation(self, h):
        return torch.sigmoid(h)  # (B, D) in (0, 1)

    def penalty(self, z):
        rho_hat = z.mean(0).clamp(RHO_HAT_CLAMP, 1 - RHO_HAT_CLAMP)  # (D,)
        kl = bernoulli_kl(self.config.rho, rho_hat).sum()
        return self.config.beta * kl, {"sparsity_kl": kl.item(), "mean_activation": rho_hat.mean().item()}
