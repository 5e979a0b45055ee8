"""Likelihood heads p(x | z): a distribution over the data's values for every sub-pixel, given the
decoder body's output.

A head asks the decoder body for ``param_channels`` maps per image channel: ``params`` has shape
(B, C * P, H, W), read as (B, C, P, H, W). Sub-pixels are independent given z, so
log p(x | z) = sum over sub-pixels of log p(x_chw | params_chw). Every discrete head is a proper
distribution over the K values {0, ..., K-1}, so its NLL is in the same nats (and bits/dim) as the
autoregressive models'.

* :class:`BernoulliHead` (K = 2, P = 1): logit l, p(1) = sigmoid(l).
* :class:`CategoricalHead` (P = K): a softmax over the K values; palette indices or 256 levels.
* :class:`DiscretizedGaussianHead` (P = 2): the lecture's x | z ~ N(mu(z), sigma(z)^2) on [0, 1],
  discretized: level v has centre c_v = v / (K-1) and the bin (c_v - h, c_v + h], h = 1 / (2 (K-1)),
  with the first bin extended to -inf and the last to +inf, so

      P(v) = Phi((c_v + h - mu) / sigma) - Phi((c_v - h - mu) / sigma)

  sums to one over v, computed in log space without cancellation by
  :func:`genzoo.nn.gaussian.log_normal_mass`. log sigma is clamped below at -7.
* :class:`DiscretizedLogisticHead` (P = 2): one logistic per sub-pixel on the [-1, 1] grid of
  Salimans et al. 2017 (PixelCNN++, arXiv:1701.05517, eq. 2), i.e. the single-component case of
  :mod:`genzoo.nn.logistic_mixture`, which computes it.
* :class:`GaussianDensityHead` (P = 2, continuous data only, ``num_values == 0``): the density
  N(x; mu, sigma^2) itself, for the 2-D toy sets.

Discrete heads share ``mean_unit`` (the expected value in [0, 1] units: sum_v P(v) unit(v), the
expected palette colour for palette data), ``mode`` (argmax_v P(v) per sub-pixel) and ``sample``,
all from ``log_prob_all`` (B, C, H, W, K).

``make_head(name, info)`` picks one: ``"auto"`` is Bernoulli for K = 2, categorical for palette
data, logistic for other K > 2 levels, and the Gaussian density for continuous data.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from genzoo.data.continuous import palette_tensor
from genzoo.errors import GenzooError
from genzoo.nn import logistic_mixture
from genzoo.nn.gaussian import log_normal_mass

HeadName = Literal["auto", "bernoulli", "categorical", "gaussian", "logistic"]
MIN_LOG_SIGMA = -7.0


class Head:
    """p(x | params) for every sub-pixel; no parameters of its own."""

    param_channels: int = 1

    def __init__(self, info):
        self.info = info

    def split(self, params: torch.Tensor) -> torch.Tensor:
        """(B, C * P, H, W) -> (B, C, P, H, W)."""
        b, _, h, w = params.shape
        return params.reshape(b, self.info.channels, self.param_channels, h, w)

    def log_prob_values(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x_chw | params) per sub-pixel (B, C, H, W)."""
        raise NotImplementedError

    def log_prob(self, params: torch.Tensor, x: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x | params) summed over sub-pixels, or over the ``known`` (C, H, W) ones only: (B,)."""
        lp = self.log_prob_values(params, x)  # (B, C, H, W)
        if known is not None:
            lp = torch.where(known.to(lp.device), lp, 0.0)  # hidden sub-pixels count for nothing
        return lp.flatten(1).sum(1)

    def mean_unit(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError


class DiscreteHead(Head):
    """A distribution over the K values; subclasses give ``log_prob_values`` and ``log_prob_all``."""

    def log_prob_all(self, params: torch.Tensor) -> torch.Tensor:
        """log P(v) for every value v: (B, C, H, W, K)."""
        raise NotImplementedError

    def unit_values(self, dtype, device) -> torch.Tensor:
        """What each value is in [0, 1] units: (K, 3) palette colours, else (K,) levels v / (K-1)."""
        if self.info.palette is not None:
            return palette_tensor(self.info, device, dtype)
        return torch.arange(self.info.num_values, dtype=dtype, device=device) / (self.info.num_values - 1)

    def mean_unit(self, params):
        probs = self.log_prob_all(params).exp()  # (B, C, H, W, K)
        values = self.unit_values(probs.dtype, probs.device)
        if values.ndim == 2:  # palette: expected colour, C = 1 -> 3 channels
            return (probs[:, 0] @ values).permute(0, 3, 1, 2)  # (B, 3, H, W)
        return probs @ values  # (B, C, H, W)

    def mode(self, params):
        return self.log_prob_all(params).argmax(-1)  # (B, C, H, W)

    def sample(self, params, generator=None):
        logp = self.log_prob_all(params)  # (B, C, H, W, K)
        flat = logp.reshape(-1, logp.shape[-1]).exp()  # (B*C*H*W, K)
        return torch.multinomial(flat, 1, generator=generator).view(logp.shape[:-1])


class BernoulliHead(DiscreteHead):
    param_channels = 1

    def log_prob_values(self, params, x):
        logit = self.split(params)[:, :, 0]  # (B, C, H, W)
        return torch.where(x.bool(), F.logsigmoid(logit), F.logsigmoid(-logit))

    def log_prob_all(self, params):
        logit = self.split(params)[:, :, 0]  # (B, C, H, W)
        return torch.stack([F.logsigmoid(-logit), F.logsigmoid(logit)], dim=-1)  # (B, C, H, W, 2)


class CategoricalHead(DiscreteHead):
    def __init__(self, info):
        super().__init__(info)
        self.param_channels = info.num_values

    def log_prob_all(self, params):
        return F.log_softmax(self.split(params).movedim(2, -1), dim=-1)  # (B, C, H, W, K)

    def log_prob_values(self, params, x):
        return self.log_prob_all(params).gather(-1, x.unsqueeze(-1)).squeeze(-1)  # (B, C, H, W)


class DiscretizedGaussianHead(DiscreteHead):
    param_channels = 2

    def _mu_log_sigma(self, params):
        p = self.split(params)  # (B, C, 2, H, W)
        return p[:, :, 0], p[:, :, 1].clamp(min=MIN_LOG_SIGMA)  # (B, C, H, W) each

    def _bins(self, v: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
        k = self.info.num_values
        half = 0.5 / (k - 1)
        inv_sigma = torch.exp(-log_sigma)
        centre = v.to(mu.dtype) / (k - 1)
        lower = (centre - half - mu) * inv_sigma
        upper = (centre + half - mu) * inv_sigma
        lower = torch.where(v == 0, -math.inf, lower)  # the outer bins reach -inf and +inf
        upper = torch.where(v == k - 1, math.inf, upper)
        mid = (centre - mu) * inv_sigma
        return log_normal_mass(lower, upper, mid=mid, log_width=math.log(2 * half) - log_sigma)

    def log_prob_values(self, params, x):
        mu, log_sigma = self._mu_log_sigma(params)
        return self._bins(x, mu, log_sigma)  # (B, C, H, W)

    def mode(self, params):
        """The level at the density's peak mu. (The argmax over levels would favour the edge bins, which
        hold the whole tail beyond them: a wide density then shows as black-and-white pictures.)"""
        mu, _ = self._mu_log_sigma(params)
        return (mu.clamp(0, 1) * (self.info.num_values - 1)).round().long()  # (B, C, H, W)

    def log_prob_all(self, params):
        mu, log_sigma = self._mu_log_sigma(params)
        v = torch.arange(self.info.num_values, device=params.device)  # (K,)
        return self._bins(v, mu.unsqueeze(-1), log_sigma.unsqueeze(-1))  # (B, C, H, W, K)


class DiscretizedLogisticHead(DiscreteHead):
    param_channels = 2  # mean on the [-1, 1] grid, log-scale

    def _mixture_params(self, params):
        """(B, C*2, H, W) -> one-component, one-channel mixture parameters (B*C, 3, H, W)."""
        p = self.split(params)  # (B, C, 2, H, W)
        b, c, _, h, w = p.shape
        p = p.reshape(b * c, 2, h, w)
        return torch.cat([torch.zeros_like(p[:, :1]), p], dim=1)  # (B*C, 3, H, W): logit, mean, log-scale

    def log_prob_values(self, params, x):
        b, c, h, w = x.shape
        lp = logistic_mixture.log_prob_values(
            self._mixture_params(params), x.reshape(b * c, 1, h, w), self.info.num_values
        )  # (B*C, 1, H, W)
        return lp.view(b, c, h, w)

    def mode(self, params):
        """The level at the density's peak (see DiscretizedGaussianHead.mode on the edge bins)."""
        mean = self.split(params)[:, :, 0]  # (B, C, H, W) on the [-1, 1] grid
        return ((mean.clamp(-1, 1) + 1) / 2 * (self.info.num_values - 1)).round().long()

    def log_prob_all(self, params):
        mp = self._mixture_params(params)
        bc, _, h, w = mp.shape
        k = self.info.num_values
        blank = torch.zeros(bc, 1, h, w, k, dtype=params.dtype, device=params.device)  # no earlier channels
        lp = logistic_mixture.all_value_log_probs(mp, blank)  # (B*C, 1, H, W, K)
        return lp.view(len(params), self.info.channels, h, w, k)


class GaussianDensityHead(Head):
    """N(x; mu, sigma^2) per coordinate of continuous data (a density, not a probability)."""

    param_channels = 2

    def _mu_log_sigma(self, params):
        p = self.split(params)  # (B, C, 2, H, W)
        return p[:, :, 0], p[:, :, 1].clamp(min=MIN_LOG_SIGMA)

    def log_prob_values(self, params, x):
        mu, log_sigma = self._mu_log_sigma(params)
        zs = (x - mu) * torch.exp(-log_sigma)
        return -0.5 * zs * zs - log_sigma - 0.5 * math.log(2 * math.pi)  # (B, C, H, W)

    def mean_unit(self, params):
        return self._mu_log_sigma(params)[0]

    def mode(self, params):
        return self._mu_log_sigma(params)[0]

    def sample(self, params, generator=None):
        mu, log_sigma = self._mu_log_sigma(params)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(log_sigma) * eps


def resolve_head_name(name: str, info) -> str:
    """``"auto"`` -> the head for the data; an unusable explicit choice -> GenzooError."""
    k = info.num_values
    if name == "auto":
        if k == 0:
            return "gaussian"
        return "bernoulli" if k == 2 else "categorical" if info.palette is not None else "logistic"
    if k == 0 and name != "gaussian":
        raise GenzooError(f"decoder={name!r} needs discrete data; continuous data takes decoder=gaussian")
    if name == "bernoulli" and k != 2:
        raise GenzooError(f"decoder='bernoulli' needs binary data (K = 2 values), this data has K = {k}")
    if name in ("gaussian", "logistic") and info.palette is not None:
        raise GenzooError(
            f"decoder={name!r} needs ordered levels, but this data holds palette indices; use decoder=categorical"
        )
    return name


def make_head(name: str, info) -> Head:
    name = resolve_head_name(name, info)
    if name == "gaussian":
        return GaussianDensityHead(info) if info.num_values == 0 else DiscretizedGaussianHead(info)
    return {"bernoulli": BernoulliHead, "categorical": CategoricalHead, "logistic": DiscretizedLogisticHead}[name](info)
