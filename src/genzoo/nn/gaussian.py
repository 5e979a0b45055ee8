"""The probability mass of a Gaussian on an interval, in log space: the one formula behind every
discretized Gaussian in genzoo (the VAE's discretized-Gaussian likelihood head in
:mod:`genzoo.nn.decoders`, the Gaussian mixture's exact discrete likelihood in
:mod:`genzoo.models.classic.gmm`).

For a level whose bin is [l, u] and a Gaussian N(mu, sigma^2), with standardised edges
a = (l - mu) / sigma < b = (u - mu) / sigma,

    P = Phi(b) - Phi(a)      (Abramowitz & Stegun 1964, 26.2; Phi the standard normal CDF).

Computed without cancellation: an interval mostly above zero is mirrored to (-b, -a) (same mass), so
both CDF values are small and log Phi is exact; then log P = log Phi(b) + log(1 - exp(log Phi(a) - log Phi(b))).
Where the two log-CDFs coincide in floating point (a bin far narrower than sigma), the mid-bin density
phi(mid) * width / sigma stands in. Bins reaching -inf or +inf (the outer levels) take log Phi(b) or
log Phi(-a). log Phi is :func:`log_ndtr`: torch's value, with a gradient from an asymptotic series far
in the lower tail, where torch's own drifts.
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)
TAIL = -20.0  # below this, log Phi uses its asymptotic series (torch's log_ndtr gradient drifts far out)


def log_ndtr(x: torch.Tensor) -> torch.Tensor:
    """log Phi(x): torch's value, with a gradient that stays exact far in the lower tail.

    Below x = -20 the gradient is that of the asymptotic series
    Phi(x) = phi(x) / (-x) * (1 - r + 3 r^2 - 15 r^3 + 105 r^4 - ...), r = 1 / x^2 (relative truncation error
    below 1e-10 there), where torch's own gradient drifts; the value is torch's everywhere.
    """
    value = torch.special.log_ndtr(x)
    if not (torch.is_grad_enabled() and x.requires_grad):
        return value
    tail = x < TAIL
    xt = torch.where(tail, x, TAIL)  # finite stand-ins keep the unused branch's gradient finite
    r = 1.0 / (xt * xt)
    series = (
        -0.5 * xt * xt - 0.5 * LOG_2PI - torch.log(-xt) + torch.log1p(r * (-1.0 + r * (3.0 + r * (-15.0 + 105.0 * r))))
    )
    return torch.where(
        tail, value.detach() + (series - series.detach()), torch.special.log_ndtr(torch.where(tail, TAIL, x))
    )


def _needs_grad(*ts) -> bool:
    return torch.is_grad_enabled() and any(torch.is_tensor(t) and t.requires_grad for t in ts)


def log_normal_mass(
    lower: torch.Tensor,
    upper: torch.Tensor,
    *,
    mid: torch.Tensor | None = None,
    log_width: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """log(Phi(upper) - Phi(lower)) for standardised edges lower < upper; all arguments broadcast.

    ``lower`` may be -inf and ``upper`` +inf (the outer bins). Gradients stay finite when an infinite
    edge is a constant put in with ``torch.where`` (as the decoder head does): finite stand-ins replace
    the infinite edges whenever a gradient is wanted. ``mid`` (the standardised bin centre) and
    ``log_width`` (log of the width / sigma) serve the mid-bin density where the two CDFs coincide; by
    default they come from the edges, which loses digits when the edges are large and close, so a caller
    that knows them exactly passes them. Without gradients the same values come from half the work.
    """
    if not _needs_grad(lower, upper, mid, log_width):  # log Phi(-inf) = -inf: the outer bins fall out
        flip = (lower + upper) > 0  # upper tail: use Phi(-lower) - Phi(-upper)
        a = torch.where(flip, -upper, lower)
        b = torch.where(flip, -lower, upper)
        log_a, log_b = log_ndtr(a), log_ndtr(b)
        diff = log_a - log_b  # <= 0
        resolved = diff < 0
        out = log_b + torch.log(-torch.expm1(torch.where(resolved, diff, -1.0)))
        if bool(resolved.all()):
            return out
        if mid is None:
            mid = 0.5 * (lower + upper)
        if log_width is None:
            log_width = torch.log(upper - lower)
        return torch.where(resolved, out, -0.5 * mid * mid - 0.5 * LOG_2PI + log_width)
    first, last = torch.isneginf(lower), torch.isposinf(upper)
    lower = torch.where(first, upper - 1.0, lower)  # finite stand-ins for the infinite edges
    upper = torch.where(last, lower + 1.0, upper)
    if mid is None:
        mid = 0.5 * (lower + upper)
    if log_width is None:
        log_width = torch.log(upper - lower)
    flip = (lower + upper) > 0
    a = torch.where(flip, -upper, lower)
    b = torch.where(flip, -lower, upper)
    log_a, log_b = log_ndtr(a), log_ndtr(b)
    diff = log_a - log_b
    resolved = diff < 0
    inner = log_b + torch.log(-torch.expm1(torch.where(resolved, diff, -1.0)))
    inner = torch.where(resolved, inner, -0.5 * mid * mid - 0.5 * LOG_2PI + log_width)
    out = torch.where(last, log_ndtr(-lower), inner)
    return torch.where(first, log_ndtr(upper), out)


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) per row: (B, D) -> (B,)."""
    return 0.5 * (mu * mu + sigma * sigma - 1.0 - 2.0 * torch.log(sigma)).sum(-1)


def reparameterize(mu: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator | None = None):
    """z = mu + sigma * eps with eps ~ N(0, I) from ``generator``; returns (z, eps)."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + sigma * eps, eps
