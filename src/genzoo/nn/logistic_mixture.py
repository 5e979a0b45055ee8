"""The discretized logistic mixture likelihood of PixelCNN++ (sec. 2.1-2.2).

Salimans, Karpathy, Chen & Kingma 2017, "PixelCNN++: Improving the PixelCNN with Discretized
Logistic Mixture Likelihood and Other Modifications", arXiv:1701.05517.

Values v = 0 .. K-1 of one sub-pixel are mapped to bin centres x_v = 2 v / (K-1) - 1 in [-1, 1]
(bin width 2 / (K-1); for 8-bit data K = 256). A pixel has M mixture components, each with a
logistic per channel (eq. 2):

    P(v | mu, s) = sigmoid((x_v + 1/(K-1) - mu) / s) - sigmoid((x_v - 1/(K-1) - mu) / s)

where the lowest bin (v = 0) extends to -inf and the highest (v = K-1) to +inf, so the K bins
cover the real line and sum to one. The channels of one pixel share the mixture indicator, and
the means of later channels move linearly with the values of earlier ones (eq. 3; for RGB
mu_G = mu_G + alpha x_R and mu_B = mu_B + beta x_R + gamma x_G, coefficients through tanh):

    p(x_R, x_G, x_B) = sum_i pi_i P(x_R | i) P(x_G | i, x_R) P(x_B | i, x_R, x_G).

The autoregressive models here need one distribution per sub-pixel, so the joint is split by
the chain rule: channel c is a mixture whose weights are the posterior over components given
the earlier channels of the same pixel, w_i^(c) ∝ pi_i prod_{c'<c} P(x_c' | i, ...). The
product over c of these conditionals is exactly the joint above.

Numerics: everything is in log space. The K-1 bin edges e_j = x_j + 1/(K-1) are standardised
once, z_j = (e_j - mu) / s, and shared by the two bins they separate, so the bins telescope and
sum to one up to rounding. For an interior bin with edges a = z_v > b = z_{v-1},
sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(-(a - b))), so

    log P = logsigmoid(a) + logsigmoid(-b) + log(-expm1(-(a - b))),

which never cancels, however far in the tail. Only where a - b itself rounds to zero (an
enormous scale, or a mean so far away that neighbouring edges coincide) is the paper's mid-bin
approximation used, log(pdf(x_v) * 2 / (K-1)). Log-scales are clamped below at -7 as in the
paper's code.

Parameter layout along dimension 1 of ``params`` (B, P, H, W), P = M (1 + 2 C + C (C-1) / 2):
M mixture logits, then C x M means, C x M log-scales, and C (C-1) / 2 x M coupling
coefficients (pairs (c, c') with c' < c in order (1,0), (2,0), (2,1), ...).

The likelihood is meant for ordinal values (intensities, where neighbouring values are similar),
not palette indices, whose order means nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

MIN_LOG_SCALE = -7.0


def num_params(channels: int, mixtures: int) -> int:
    """Output channels a network must give per pixel: M (1 + 2C + C(C-1)/2)."""
    return mixtures * (1 + 2 * channels + channels * (channels - 1) // 2)


def value_grid(num_values: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Bin centres x_v = 2 v / (K-1) - 1 for v = 0 .. K-1, shape (K,)."""
    if num_values < 2:
        raise ValueError(f"the logistic mixture needs K >= 2 values, got {num_values}")
    v = torch.arange(num_values, dtype=dtype, device=device)
    return v * (2.0 / (num_values - 1)) - 1.0


def _unpack(params: torch.Tensor, channels: int):
    """params (B, P, H, W) -> mixture logits (B, M, H, W), means, log-scales (B, C, M, H, W), coeffs."""
    b, p, h, w = params.shape
    per = num_params(channels, 1)
    if p % per:
        raise ValueError(f"params have {p} channels; a {channels}-channel mixture needs a multiple of {per}")
    m = p // per
    logit_pi = params[:, :m]  # (B, M, H, W)
    means = params[:, m : m + channels * m].reshape(b, channels, m, h, w)  # (B, C, M, H, W)
    log_scales = params[:, m + channels * m : m + 2 * channels * m].reshape(b, channels, m, h, w)
    log_scales = log_scales.clamp(min=MIN_LOG_SCALE)
    n_pairs = channels * (channels - 1) // 2
    coeffs = torch.tanh(params[:, m + 2 * channels * m :].reshape(b, n_pairs, m, h, w))  # (B, pairs, M, H, W)
    return logit_pi, means, log_scales, coeffs


def _coupled_means(means: torch.Tensor, coeffs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """mu_c + sum_{c'<c} coeff_{c,c'} x_c' (eq. 3). means (B, C, M, H, W), x (B, C, H, W) in [-1, 1]."""
    channels = means.shape[1]
    out = [means[:, 0]]
    k = 0
    for c in range(1, channels):
        mu = means[:, c]  # (B, M, H, W)
        for cp in range(c):
            mu = mu + coeffs[:, k] * x[:, cp].unsqueeze(1)
            k += 1
        out.append(mu)
    return torch.stack(out, dim=1)  # (B, C, M, H, W)


def _edges(num_values: int, dtype, device) -> torch.Tensor:
    """The K-1 bin edges e_j = x_j + 1/(K-1), j = 0 .. K-2: bin v spans (e_{v-1}, e_v]."""
    return value_grid(num_values, dtype=dtype, device=device)[:-1] + 1.0 / (num_values - 1)


def _interval_log_prob(
    log_cdf_upper: torch.Tensor,
    log_sf_lower: torch.Tensor,
    gap: torch.Tensor,
    mid: Callable[[], torch.Tensor],
    log_scale: torch.Tensor,
    num_values: int,
) -> torch.Tensor:
    """log(sigmoid(a) - sigmoid(b)) = logsigmoid(a) + logsigmoid(-b) + log(1 - exp(-(a - b))), gap = a - b >= 0.

    Where the edges coincide in floating point (gap == 0) the bin is too narrow to resolve and
    the mid-bin approximation log(pdf * width) at the standardised centre ``mid()`` is used.
    """
    resolved = gap > 0
    if bool(resolved.all()):
        return log_cdf_upper + log_sf_lower + torch.log(-torch.expm1(-gap))
    exact = log_cdf_upper + log_sf_lower + torch.log(-torch.expm1(-torch.where(resolved, gap, 1.0)))
    z = mid()
    mid_bin = F.logsigmoid(z) + F.logsigmoid(-z) - log_scale + math.log(2.0 / (num_values - 1))
    return torch.where(resolved, exact, mid_bin)


def _value_log_prob(
    v: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, num_values: int
) -> torch.Tensor:
    """log P(v | logistic(mean, exp(log_scale))) for given values v (x = their bin centres); all broadcast."""
    inv_s = torch.exp(-log_scale)
    edges = _edges(num_values, mean.dtype, mean.device)
    upper = inv_s * (edges[v.clamp(max=num_values - 2)] - mean)  # z_v
    lower = inv_s * (edges[(v - 1).clamp(min=0)] - mean)  # z_{v-1}
    first = F.logsigmoid(upper)  # v = 0: the bin reaches -inf
    last = F.logsigmoid(-lower)  # v = K-1: the bin reaches +inf
    inner = (v > 0) & (v < num_values - 1)
    gap = torch.where(inner, upper - lower, 1.0)  # the edge bins take no interior branch
    interior = _interval_log_prob(first, last, gap, lambda: inv_s * (x - mean), log_scale, num_values)
    return torch.where(v == 0, first, torch.where(v == num_values - 1, last, interior))


def _every_value_log_prob(mean: torch.Tensor, log_scale: torch.Tensor, num_values: int) -> torch.Tensor:
    """log P(v) for every v: mean, log_scale (...) -> (..., K); each edge is evaluated once.

    Interior bins take logsigmoid(-z) as logsigmoid(z) - z, whose rounding error (~eps |z|) only
    touches bins with |z| large, i.e. with negligible mass; the two edge bins use the exact form.
    """
    inv_s = torch.exp(-log_scale).unsqueeze(-1)
    z = inv_s * (_edges(num_values, mean.dtype, mean.device) - mean.unsqueeze(-1))  # (..., K-1)
    log_cdf = F.logsigmoid(z)  # (..., K-1)
    last = F.logsigmoid(-z[..., -1:])
    if num_values == 2:
        return torch.cat([log_cdf, last], dim=-1)

    def mid():
        centres = value_grid(num_values, dtype=mean.dtype, device=mean.device)[1:-1]
        return inv_s * (centres - mean.unsqueeze(-1))

    interior = _interval_log_prob(
        log_cdf[..., 1:],
        log_cdf[..., :-1] - z[..., :-1],
        z[..., 1:] - z[..., :-1],
        mid,
        log_scale.unsqueeze(-1),
        num_values,
    )  # (..., K-2)
    return torch.cat([log_cdf[..., :1], interior, last], dim=-1)


def _posterior_weights(logit_pi: torch.Tensor, observed: torch.Tensor, channels: int) -> torch.Tensor:
    """log w^(c) (B, C, M, H, W): mixture weights for channel c given the pixel's earlier channels.

    ``observed`` (B, >= C-1, M, H, W) holds log P(x_c | component) of the actual values; channel
    c uses only channels < c of it, so w^(0) = pi.
    """
    prior = logit_pi.unsqueeze(1)  # (B, 1, M, H, W)
    before = observed[:, : channels - 1].cumsum(1)  # (B, C-1, M, H, W): sum over c' <= c-1
    return F.log_softmax(torch.cat([prior, prior + before], dim=1), dim=2)


def log_prob_values(params: torch.Tensor, x: torch.Tensor, num_values: int) -> torch.Tensor:
    """log p(x_c | earlier channels of the pixel, params) per sub-pixel: x (B, C, H, W) long -> (B, C, H, W).

    Summed over C this is the pixel's joint log-likelihood (eq. 3).
    """
    channels = x.shape[1]
    logit_pi, means, log_scales, coeffs = _unpack(params, channels)
    grid = value_grid(num_values, dtype=params.dtype, device=params.device)
    xv = grid[x]  # (B, C, H, W) bin centres
    mean = _coupled_means(means, coeffs, xv)  # (B, C, M, H, W)
    comp = _value_log_prob(x.unsqueeze(2), xv.unsqueeze(2), mean, log_scales, num_values)  # (B, C, M, H, W)
    log_w = _posterior_weights(logit_pi, comp, channels)
    return torch.logsumexp(log_w + comp, dim=2)  # (B, C, H, W)


def all_value_log_probs(params: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """log p(x_c = v | earlier channels of the pixel, params) for every v: (B, C, H, W, K).

    ``onehot`` (B, C, H, W, K) gives the earlier channels' values (read differentiably: their
    centres are ``onehot @ grid`` and their component log-probs are selected by the one-hot), so
    channel c's output depends on channels < c of the same pixel only.
    """
    channels, k = onehot.shape[1], onehot.shape[-1]
    logit_pi, means, log_scales, coeffs = _unpack(params, channels)
    grid = value_grid(k, dtype=params.dtype, device=params.device)  # (K,)
    xv = onehot.to(params.dtype) @ grid  # (B, C, H, W)
    mean = _coupled_means(means, coeffs, xv)  # (B, C, M, H, W)
    every = _every_value_log_prob(mean, log_scales, k)  # (B, C, M, H, W, K)
    observed = (every[:, :-1] * onehot[:, :-1].unsqueeze(2)).sum(-1)  # (B, C-1, M, H, W): the last is never needed
    log_w = _posterior_weights(logit_pi, observed, channels)
    return torch.logsumexp(log_w.unsqueeze(-1) + every, dim=2)  # (B, C, H, W, K)


def channel_log_probs(params: torch.Tensor, x: torch.Tensor, channel: int, num_values: int) -> torch.Tensor:
    """log p(x_c = v | x_<c of the same pixel, params) for every v, one channel: (B, H, W, K).

    The sampling path: ``x`` (B, C, H, W) long holds the earlier channels' values (channels >= c
    are ignored), so only channel c's table is built; equal to ``all_value_log_probs(...)[:, c]``.
    """
    channels = x.shape[1]
    logit_pi, means, log_scales, coeffs = _unpack(params, channels)
    xv = value_grid(num_values, dtype=params.dtype, device=params.device)[x]  # (B, C, H, W)
    mean = _coupled_means(means[:, : channel + 1], coeffs, xv)  # (B, c+1, M, H, W)
    observed = _value_log_prob(
        x[:, :channel].unsqueeze(2),
        xv[:, :channel].unsqueeze(2),
        mean[:, :channel],
        log_scales[:, :channel],
        num_values,
    )  # (B, c, M, H, W)
    log_w = F.log_softmax(logit_pi + observed.sum(1), dim=1)  # (B, M, H, W)
    every = _every_value_log_prob(mean[:, channel], log_scales[:, channel], num_values)  # (B, M, H, W, K)
    return torch.logsumexp(log_w.unsqueeze(-1) + every, dim=1)
