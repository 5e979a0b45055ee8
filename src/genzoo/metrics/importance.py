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

Draws and memory. Image i of the split takes its draws from its own generator, seeded with
(seed, i), so an image's estimate does not depend on which other images are measured, on their
order or on how the work is cut. The draws of one image are taken in chunks of m, each reduced at
once to running sums (nothing of size k is kept), and m is chosen from a memory budget (1 GiB by
default; :mod:`genzoo.metrics.budget`): the bytes of one draw are measured by running ``log_weights``
once on one image with one draw and adding up what every leaf module outputs (the decoder's
activations and its output), doubled for the likelihood head's own steps and the allocator's slack;
m = budget // that, between 1 and k. The user's options (k, images) never change the working set,
only how long it runs.
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from genzoo.errors import GenzooError
from genzoo.metrics.budget import MEMORY_BUDGET, items_per_call
from genzoo.models.base import ImportanceWeighted, TrainableModel


def log_mean_exp(a: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/n) sum exp(a) along ``dim``, stably."""
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


def draws_per_call(model, x1: torch.Tensor, k: int, budget: int = MEMORY_BUDGET) -> tuple[int, int]:
    """(m, estimated bytes of one draw of one image): the chunk of draws that fits ``budget``."""
    g = torch.Generator(device=model.device).manual_seed(0)
    return items_per_call(model, lambda: model.log_weights(x1, 1, generator=g), k, budget)


@torch.no_grad()
def importance_nll(
    model: TrainableModel,
    data,
    split: str = "test",
    k: int = 5000,
    k_iwae: int = 50,
    seed: int = 0,
    max_images: int | None = None,
    progress: bool = False,
    memory_budget: int = MEMORY_BUDGET,
) -> dict:
    """-ELBO, -IWAE_{k_iwae} and the importance-sampled NLL (k draws) over ``split``; see the module doc."""

    if not isinstance(model, ImportanceWeighted):
        raise GenzooError(
            f"model {model.name!r} has no importance weights (only models with an inference network, e.g. the VAE)"
        )
    if k < 1 or k_iwae < 1 or k_iwae > k:
        raise GenzooError(f"importance sampling needs 1 <= k_iwae <= k, got k={k}, k_iwae={k_iwae}")
    was_training = model.training
    model.eval()
    n = data.size(split) if max_images is None else min(max_images, data.size(split))
    groups = k // k_iwae
    totals = {"elbo": 0.0, "iwae": 0.0, "is": 0.0}
    squares = 0.0  # of the per-image IS estimates, for the standard error of their mean
    try:
        m, per_draw = draws_per_call(model, data.images(split, torch.arange(1)).to(model.device), k, memory_budget)
        bar = tqdm(
            total=n * k,
            desc=f"importance {split} ({n} images x {k} draws)",
            unit="draw",
            unit_scale=True,
            disable=not progress,
            leave=False,
        )
        for i in range(n):
            x = data.images(split, torch.tensor([i])).to(model.device)  # (1, C, H, W)
            g = torch.Generator(device=model.device).manual_seed(seed * 1_000_003 + i)
            elbo, lse = 0.0, torch.tensor(-math.inf, dtype=torch.float64)
            iwae, pending, taken = 0.0, torch.zeros(0, dtype=torch.float64), 0
            for start in range(0, k, m):
                log_w = model.log_weights(x, min(m, k - start), generator=g).double()[:, 0].cpu()  # (m,)
                elbo += log_w.sum().item()
                lse = torch.logaddexp(lse, torch.logsumexp(log_w, 0))
                pending = torch.cat([pending, log_w])
                full = min(len(pending) // k_iwae, groups - taken)  # whole groups of k_iwae draws, in order
                if full:
                    iwae += log_mean_exp(pending[: full * k_iwae].view(full, k_iwae), dim=1).sum().item()
                    taken += full
                pending = pending[full * k_iwae :] if taken < groups else pending[:0]
                bar.update(len(log_w))
            is_ = lse.item() - math.log(k)
            totals["elbo"] += elbo / k
            totals["iwae"] += iwae / groups
            totals["is"] += is_
            squares += is_ * is_
        bar.close()
    finally:
        model.train(was_training)
    dims = data.info.dims
    out: dict = {}
    for key, total in totals.items():
        nats = -total / n
        out[f"{key}_nats"] = nats
        out[f"{key}_bits_per_dim"] = nats / (dims * math.log(2))
    var = max(squares / n - (totals["is"] / n) ** 2, 0.0)
    out.update(
        {
            "is_nats_std_over_images": math.sqrt(var),
            "k": k,
            "k_iwae": k_iwae,
            "iwae_groups": groups,
            "n_images": n,
            "split": split,
            "dims": dims,
            "draws_per_call": m,
            "bytes_per_draw": per_draw,
            "memory_budget": memory_budget,
        }
    )
    return out
