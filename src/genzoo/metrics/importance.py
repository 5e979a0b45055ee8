"""The ELBO, the IWAE bound and the importance-sampled log-likelihood of a latent-variable model
(Burda, Grosse & Salakhutdinov 2015, "Importance Weighted Autoencoders", arXiv:1509.00519: the
k-sample bound L_k and its Theorem 1, log p(x) >= L_{k+1} >= L_k -> log p(x) when the weights are
bounded; their test log-likelihoods are importance-sampled with k = 5000).

For one image x and k draws z_i ~ q(z | x), log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x)
(the model's ``log_weights(x, k)``). Three estimates come from the same k draws:

* ELBO:      (1/k) sum_i log w_i                          (the mean of k one-draw ELBOs)
* IWAE_m:    log (1/m) sum_{i in group} w_i, averaged over the k // m disjoint groups of m draws:
             an unbiased estimate of the IWAE bound L_m (m = ``k_iwae``, e.g. 50)
* IS:        log (1/k) sum_i w_i, the importance-sampled estimate of log p(x); consistent as k
             grows, and a lower bound in expectation (E = L_k <= log p(x))

and ELBO <= IWAE_m <= IS in expectation. Each is reported as a negative log-likelihood in nats per
image (the mean over images, so -ELBO >= -IWAE_m >= -IS) and in bits per dimension, with k, k_iwae,
the split and the image count beside it. Log-sum-exps are taken in float64 and image totals are
accumulated in float64.
"""
from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from genzoo.errors import GenzooError
from genzoo.models.base import ImportanceWeighted


def log_mean_exp(a: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/n) sum exp(a) along ``dim``, stably."""
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


@torch.no_grad()
def importance_nll(model, data, split: str = "test", k: int = 5000, batch_size: int = 16,
                   generator: torch.Generator | None = None, max_images: int | None = None,
                   progress: bool = False, k_iwae: int = 50) -> dict:
    """-ELBO, -IWAE_{k_iwae} and the importance-sampled NLL (k draws) over ``split``; see the module doc."""

    if not isinstance(model, ImportanceWeighted):
        raise GenzooError(f"model {model.name!r} has no importance weights "
                          "(only models with an inference network, e.g. the VAE)")
    if k < 1 or k_iwae < 1 or k_iwae > k:
        raise GenzooError(f"importance sampling needs 1 <= k_iwae <= k, got k={k}, k_iwae={k_iwae}")
    if generator is None:
        generator = torch.Generator(device=model.device).manual_seed(0)
    was_training = model.training
    model.eval()
    n = data.size(split) if max_images is None else min(max_images, data.size(split))
    groups = k // k_iwae
    totals = {"elbo": 0.0, "iwae": 0.0, "is": 0.0}
    squares = 0.0  # of the per-image IS estimates, for the standard error of their mean
    try:
        for start in tqdm(range(0, n, batch_size), desc=f"importance {split}", disable=not progress, leave=False):
            x = data.images(split, torch.arange(start, min(start + batch_size, n))).to(model.device)
            log_w = model.log_weights(x, k, generator=generator).double()  # (k, B)
            iwae = log_mean_exp(log_w[:groups * k_iwae].view(groups, k_iwae, -1), dim=1).mean(0)  # (B,)
            is_ = log_mean_exp(log_w, dim=0)  # (B,)
            totals["elbo"] += log_w.mean(0).sum().item()
            totals["iwae"] += iwae.sum().item()
            totals["is"] += is_.sum().item()
            squares += (is_ * is_).sum().item()
    finally:
        model.train(was_training)
    dims = data.info.dims
    out: dict = {}
    for key, total in totals.items():
        nats = -total / n
        out[f"{key}_nats"] = nats
        out[f"{key}_bits_per_dim"] = nats / (dims * math.log(2))
    var = max(squares / n - (totals["is"] / n) ** 2, 0.0)
    out.update({"is_nats_std_over_images": math.sqrt(var), "k": k, "k_iwae": k_iwae, "iwae_groups": groups,
                "n_images": n, "split": split, "dims": dims})
    return out
