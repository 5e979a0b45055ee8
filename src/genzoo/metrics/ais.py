"""Annealed importance sampling for the partition function of an RBM.

Neal 2001, "Annealed Importance Sampling", Statistics and Computing 11:125-139 (arXiv:physics/9803008);
the RBM schedule and base distribution of Salakhutdinov & Murray 2008, "On the Quantitative Analysis
of Deep Belief Networks", ICML, sec. 3-4.

The base model A has no hidden units and independent visibles: Bernoulli with logits b_A, or
Gaussian N(b_A, sigma^2) (b_A from the data's mean, as S&M's "base-rate" model). Along
0 = beta_0 < beta_1 < ... < beta_K = 1 the intermediate distributions over v are (S&M eq. 11-12)

    log p*_beta(v) = (1 - beta) a_A(v) + beta a_B(v) + sum_j softplus(beta (c_j + (W^T v / s)_j)),

with a(v) = b.v (Bernoulli) or -|v - b|^2 / (2 sigma^2) (Gaussian) the visible term of each model.
At beta = 0 this is the base times 2^H, so log Z_0 = log Z_A + H log 2; at beta = 1 it is exp(-F_B(v)).
Each run draws v_1 ~ p_0, then for k = 1..K adds log p*_k(v_k) - log p*_{k-1}(v_k) to its log weight
w and moves v by one Gibbs step T_k that leaves p_k invariant:

    h ~ p(h | v) = sigmoid(beta_k (c + W^T v / s)),
    v ~ sigmoid((1 - beta_k) b_A + beta_k (b_B + W h))    or    N((1 - beta_k) b_A + beta_k (b_B + sigma W h), sigma^2).

Z_B / Z_0 is estimated by the mean of exp(w) over M independent runs (unbiased), so log Z_B by
log Z_0 + log mean exp(w) -- on average an underestimate (Jensen), so an NLL from it is on average
optimistic. The standard error of log Z_B is the delta method's std(exp(w)) / (sqrt(M) mean(exp(w))).

``exact_log_z`` enumerates the hidden states of a small RBM (the visibles summed out in closed form),
the reference the tests hold AIS to.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genzoo.errors import GenzooError
from genzoo.models.classic.rbm import LOGIT_CLIP, RBMLayer, bernoulli

SCHEDULE = "Salakhutdinov & Murray 2008: 1/29 of the betas in [0, 0.5), 8/29 in [0.5, 0.9), 20/29 in [0.9, 1]"
MAX_EXACT_HIDDEN = 24  # exact_log_z enumerates 2^H hidden states


@dataclass
class AISResult:
    log_z: float  # the estimate of log Z_B
    stderr: float  # its standard error (delta method)
    log_z_base: float  # log Z_0, exact
    betas: int  # K, the number of intermediate distributions
    chains: int  # M, independent runs
    seconds: float
    log_weights: torch.Tensor  # (M,) log Z_0 + w_m: each run's own estimate of log Z_B

    def protocol(self) -> dict:
        return {
            "estimator": "AIS",
            "betas": self.betas,
            "chains": self.chains,
            "schedule": SCHEDULE,
            "log_z": self.log_z,
            "log_z_stderr": self.stderr,
            "log_z_base": self.log_z_base,
            "ais_seconds": round(self.seconds, 2),
        }


def beta_schedule(k: int, dtype=torch.float64) -> torch.Tensor:
    """k + 1 inverse temperatures from 0 to 1, spaced as Salakhutdinov & Murray 2008 (500 / 4,000 /
    10,000 of their 14,500 in [0, 0.5) / [0.5, 0.9) / [0.9, 1])."""
    if k < 1:
        raise GenzooError(f"AIS needs at least 1 intermediate distribution, got {k}")
    n1, n2 = round(k * 500 / 14500), round(k * 4000 / 14500)
    n3 = k - n1 - n2
    parts = [
        torch.linspace(0.0, 0.5, n1 + 1, dtype=dtype)[:-1],
        torch.linspace(0.5, 0.9, n2 + 1, dtype=dtype)[:-1],
        torch.linspace(0.9, 1.0, n3 + 1, dtype=dtype),
    ]
    betas = torch.cat(parts)
    betas[0] = 0.0
    return betas  # (k + 1,)


def base_bias(layer: RBMLayer, v_data: torch.Tensor | None) -> torch.Tensor:
    """b_A: logits of the data's mean (clipped to [0.01, 0.99]) or the Gaussian data mean; the
    target's own visible biases when no data is given."""
    if v_data is None:
        return layer.visible_bias.detach().clone()
    mean = v_data.to(layer.weight.dtype).mean(0)
    if layer.gaussian:
        return mean
    p = mean.clamp(LOGIT_CLIP, 1 - LOGIT_CLIP)
    return (p / (1 - p)).log()


def _log_unnormalised(vis_a: torch.Tensor, vis_b: torch.Tensor, act: torch.Tensor, beta: float) -> torch.Tensor:
    """log p*_beta(v) (M,) of the annealing path (module doc), from the visible terms a_A(v), a_B(v)
    (M,) and the hidden inputs c + W^T v / s (M, H), which do not depend on beta."""
    return (1 - beta) * vis_a + beta * vis_b + F.softplus(beta * act).sum(1)


def log_z_base(layer: RBMLayer, b_a: torch.Tensor) -> float:
    """log Z_0 = log Z_A + H log 2."""
    d, h = layer.weight.shape
    if layer.gaussian:
        log_za = 0.5 * d * math.log(2 * math.pi * layer.sigma**2)
    else:
        log_za = F.softplus(b_a.double()).sum().item()
    return log_za + h * math.log(2)


@torch.no_grad()
def ais_log_z(
    layer: RBMLayer,
    *,
    betas: int = 14500,
    chains: int = 100,
    v_data: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> AISResult:
    """Estimate log Z of ``layer`` by AIS with ``betas`` intermediate distributions and ``chains`` runs.

    ``v_data`` (N, D), the visible units of training data, sets the base model; ``dtype`` (default the
    layer's) is the precision of the chains; log weights are summed in float64.
    """
    if chains < 1:
        raise GenzooError(f"AIS needs at least 1 chain, got {chains}")
    t0 = time.perf_counter()
    dtype = dtype or layer.weight.dtype
    device = layer.weight.device
    b_a = base_bias(layer, v_data).to(dtype)
    bs = beta_schedule(betas).tolist()
    d = layer.weight.shape[0]
    if layer.gaussian:  # v_1 ~ p_0: the base model
        v = b_a + layer.sigma * torch.randn(chains, d, generator=generator, device=device, dtype=dtype)
    else:
        v = bernoulli(b_a.expand(chains, d), generator)
    w = torch.zeros(chains, dtype=torch.float64, device=device)
    lay = layer if dtype == layer.weight.dtype else _cast(layer, dtype)
    for beta_prev, beta in zip(bs[:-1], bs[1:]):
        vis_a, vis_b, act = lay.visible_term(v, b_a), lay.visible_term(v), lay.hidden_input(v)
        w += (_log_unnormalised(vis_a, vis_b, act, beta) - _log_unnormalised(vis_a, vis_b, act, beta_prev)).double()
        h = bernoulli(beta * act, generator)  # one Gibbs step of p_beta: h | v, then v | h
        a = (1 - beta) * b_a + beta * lay.visible_input(h)
        if lay.gaussian:
            v = a + lay.sigma * torch.randn(a.shape, generator=generator, device=device, dtype=dtype)
        else:
            v = bernoulli(a, generator)
    base = log_z_base(lay, b_a)
    m = w.max()
    mean = (w - m).exp().mean()
    log_z = base + (m + mean.log()).item()
    stderr = ((w - m).exp().std(unbiased=True) / (math.sqrt(chains) * mean)).item() if chains > 1 else math.inf
    return AISResult(log_z, stderr, base, betas, chains, time.perf_counter() - t0, (base + w).cpu())


def _cast(layer: RBMLayer, dtype: torch.dtype) -> RBMLayer:
    d, h = layer.weight.shape
    out = RBMLayer(d, h, layer.kind, layer.sigma).to(device=layer.weight.device, dtype=dtype)
    out.load_state_dict({k: v.to(dtype) for k, v in layer.state_dict().items()})
    return out


@torch.no_grad()
def exact_log_z(layer: RBMLayer) -> float:
    """log Z by enumerating the 2^H hidden states, the visibles summed (Bernoulli) or integrated
    (Gaussian) out in closed form, in float64:

        Bernoulli: log Z = logsumexp_h [c.h + sum_i softplus(b_i + (W h)_i)]
        Gaussian:  log Z = logsumexp_h [c.h + b.(W h) / sigma + |W h|^2 / 2] + D/2 log(2 pi sigma^2)
    """
    d, h = layer.weight.shape
    if h > MAX_EXACT_HIDDEN:
        raise GenzooError(f"exact log Z enumerates 2^H hidden states; H = {h} > {MAX_EXACT_HIDDEN}")
    w, b, c = (t.detach().double().cpu() for t in (layer.weight, layer.visible_bias, layer.hidden_bias))
    states = ((torch.arange(2**h).unsqueeze(1) >> torch.arange(h)) & 1).double()  # (2^H, H)
    wh = states @ w.T  # (2^H, D)
    if layer.gaussian:
        terms = states @ c + wh @ b / layer.sigma + 0.5 * (wh * wh).sum(1)
        return (torch.logsumexp(terms, 0) + 0.5 * d * math.log(2 * math.pi * layer.sigma**2)).item()
    return torch.logsumexp(states @ c + F.softplus(b + wh).sum(1), 0).item()


@torch.no_grad()
def ais_likelihood(
    model,
    data,
    split: str,
    *,
    betas: int,
    chains: int,
    generator: torch.Generator | None = None,
    max_images: int | None = None,
    batch_size: int = 256,
) -> dict:
    """log p of ``split`` for a :class:`~genzoo.models.base.PartitionFunction` model with log Z by AIS.

    The AIS base is fit to the training split's visible units (or ``split``'s without one). Returns
    ``{"ais": AISResult, "log_p": (N,) float64, "images": N, "kind": model.likelihood_kind}``; for
    ``kind == "bound"`` log_p is the model's lower bound, for "density" a log-density.
    """
    base_split = "train" if "train" in data.splits else split
    x_base = data.images(base_split)
    v_base = torch.cat(
        [
            model.partition_visible(x_base[i : i + batch_size].to(model.device), generator=generator)
            for i in range(0, len(x_base), batch_size)
        ]
    )
    ais = ais_log_z(model.partition_layer(), betas=betas, chains=chains, v_data=v_base, generator=generator)
    n = data.size(split) if max_images is None else min(max_images, data.size(split))
    log_p = []
    for start in range(0, n, batch_size):
        x = data.images(split, torch.arange(start, min(start + batch_size, n))).to(model.device)
        log_p.append(model.log_prob_given_log_z(x, ais.log_z, generator=generator).double().cpu())
    return {"ais": ais, "log_p": torch.cat(log_p), "images": n, "kind": model.likelihood_kind}
