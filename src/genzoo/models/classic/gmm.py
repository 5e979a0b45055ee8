"""A Gaussian mixture fitted by EM: the lectures' stepping stone from clustering to the VAE.

Dempster, Laird & Rubin 1977, "Maximum Likelihood from Incomplete Data via the EM Algorithm",
J. R. Stat. Soc. B 39(1):1-38 (no arXiv); see Bishop 2006, PRML sec. 9.2 (eq. 9.7, 9.23-9.27).
The ``online`` variant is the stepwise EM of Cappe & Moulines 2009, "On-line expectation-
maximization algorithm for latent data models", J. R. Stat. Soc. B 71(3), arXiv:0712.4273.

The model lives on the continuous view v = ``to_unit(x)`` of an image, flattened to D numbers
(grey, binary or RGB levels k -> k / (K-1); palette indices -> the RGB colour of the palette):

    p(u) = sum_m pi_m N(u; mu_m, Sigma_m),  Sigma_m = diag(sigma_m^2)   (covariance="diag")
                                            Sigma_m = L_m L_m^T          (covariance="full")

What ``log_prob`` reports (``model.likelihood``) depends on the data:

* levels (K >= 2, no palette), diag -- ``"exact"``. Level k of a sub-pixel is the bin
  B_k = [(k - 1/2)/(K-1), (k + 1/2)/(K-1)), with B_0 open to -inf and B_{K-1} to +inf, so

      P(x) = sum_m pi_m prod_d [Phi((b_d - mu_md)/sigma_md) - Phi((a_d - mu_md)/sigma_md)],

  a distribution over the K^D discrete images (it sums to one; bits/dim compare with the other
  families). Sampling u and rounding to the nearest level draws exactly from it. EM fits this
  discrete model: the component m *and* the value u inside the observed bin are the missing data,
  so the E-step takes truncated-normal moments E[u | u in B_k, m], E[u^2 | u in B_k, m].
* levels, full -- ``"approximate"``. The probability of a box under a correlated Gaussian has no
  closed form; we report log p(v) + D log(1/(K-1)): the density at the bin centre times the bin
  volume. It is not a probability: it can exceed one per bin when a variance is below the bin
  width squared (binary data!), so it is only meaningful when the bins are narrow. EM fits the
  density of the bin centres v.
* continuous data (``num_values == 0``) -- ``"exact"``: the log density itself.
* palette data -- ``"none"``. A palette index has no ordinal bin: a sample lands on the palette
  colour nearest to u (``from_unit``), whose probability is the mass of a 3-D Voronoi cell, which
  has no closed form. ``log_prob`` raises GenzooError; training fits the density of the RGB
  colours and logs it as ``density_nll_nats`` (a density on [0, 1]^D, not comparable with bits/dim).

EM, one ``update(batch)`` per trainer step (Bishop eq. 9.23-9.27 written with sufficient statistics):

    E:  r_bm = pi_m p(x_b | m) / sum_m' pi_m' p(x_b | m')
        S0_m = mean_b r_bm,  S1_m = mean_b r_bm E[u_b | x_b, m],  S2_m = mean_b r_bm E[u_b u_b^T | x_b, m]
        (diag keeps only the diagonal of S2; for the density fits E[u_b | x_b, m] = v_b)
    M:  pi_m = S0_m,  mu_m = S1_m / S0_m,  Sigma_m = S2_m / S0_m - mu_m mu_m^T with every variance
        (diag) or eigenvalue (full) floored at ``reg``.

Flooring the eigenvalues of the scatter matrix is the exact maximiser of the expected
complete-data log-likelihood over {Sigma >= reg I}, so each full-batch step is a true EM step on
that set and never lowers the training log-likelihood, while no component can collapse onto a
point. ``em="batch"`` expects the trainer to hand it the whole training split (the presets set a
huge ``batch_size``; the trainer's batch stream clips it to the split size). ``em="online"``
keeps running statistics S <- (1 - g_t) S + g_t S_hat(batch), g_t = t^(-step_power), t = 1, 2, ...
(Cappe & Moulines), so mini-batches of a large set suffice; it is not monotone.

Several processes (``sums_over_ranks``; :mod:`genzoo.training.distributed`): each process takes its
share of the batch and the statistics S0, S1, S2, the log-likelihood and the image count are summed
over the processes before the M-step, so every process makes the single process's step; the first
update seeds from the images of every process.

Initialisation (at the first ``update``, from that batch, with torch's global RNG so training is
reproducible): M seed images, by k-means++ (Arthur & Vassilvitskii 2007) or at random; every
image of the batch goes to its nearest seed and the M-step of these hard assignments gives the
starting weights, means and spreads (a seed that wins no image keeps its place and the batch's
spread, with weight 0). Online EM also seeds from its first mini-batch, so its batches should
hold many images per component.

Parameters are ``nn.Parameter``s with ``requires_grad=False`` (they are parameters, only not
fitted by gradients), all float64: EM's sums over many images and the truncated-normal moments
need the precision, and the shared device/dtype properties keep working.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from genzoo.data.continuous import from_unit, to_unit, unit_channels
from genzoo.data.kmeans import kmeans_pp
from genzoo.errors import GenzooError
from genzoo.models.base import LikelihoodModel, ModelOutput
from genzoo.models.registry import register_model
from genzoo.nn.gaussian import LOG_2PI, log_normal_mass

CHUNK = 1024  # images per E-step chunk: bounds memory only
WHOLE_SPLIT = 10**9  # a batch_size the trainer clips to the split size: full-batch EM


@dataclass
class GMMConfig:
    components: int = 10  # M
    covariance: Literal["diag", "full"] = "diag"
    reg: float = 1e-4  # variance floor (diag) / covariance eigenvalue floor (full), in squared [0, 1] units
    init: Literal["kmeans++", "random"] = "kmeans++"  # how the first update seeds the means
    em: Literal["batch", "online"] = "batch"  # full-batch EM, or stepwise EM on mini-batches
    step_power: float = 0.6  # online: step size t^(-step_power); (0.5, 1] for convergence

    def __post_init__(self):
        if self.components < 1:
            raise ValueError("components must be >= 1")
        if not self.reg > 0:
            raise ValueError("reg must be > 0 (it keeps every variance positive)")
        if not 0.5 < self.step_power <= 1:
            raise ValueError("step_power must be in (0.5, 1] (Cappe & Moulines' condition)")


@dataclass
class MixtureConditional:
    """p(u_H | x_V) = sum_m w_m N(u_H; mean_m, scale_m scale_m^T) over the hidden unit dimensions H.

    ``scale`` is (M, H) standard deviations for diag, (M, H, H) lower Cholesky factors for full.
    """

    log_weights: torch.Tensor  # (B, M) log P(m | x_V)
    mean: torch.Tensor  # (B, M, H)
    scale: torch.Tensor  # (M, H) or (M, H, H)
    hidden: torch.Tensor  # (H,) indices into the D flattened unit dimensions


@register_model("gmm")
class GaussianMixture(LikelihoodModel):
    """Mixture of M Gaussians on the unit view of the images, fitted by EM (no gradients)."""

    family = "mixture"
    paper = (
        "Dempster, Laird & Rubin 1977, Maximum Likelihood from Incomplete Data via the EM Algorithm "
        "(J. R. Stat. Soc. B 39:1-38; no arXiv)"
    )
    Config = GMMConfig
    gradient_free = True
    sums_over_ranks = True  # under torch.distributed, update() sums its statistics over the processes
    likelihood = "exact"  # the class default (levels, diag); each instance sets its own

    # parameters (fitted by EM, never by gradients) and buffers, made in __init__
    weight: nn.Parameter  # (M,) pi
    mean: nn.Parameter  # (M, D)
    var: nn.Parameter  # (M, D), diagonal covariances only
    scale_tril: nn.Parameter  # (M, D, D), full covariances only
    initialised: torch.Tensor
    em_steps: torch.Tensor
    s0: torch.Tensor  # running statistics of online EM only
    s1: torch.Tensor
    s2: torch.Tensor
    presets = {
        "tiny": {"components": 3},
        # binarized or grey MNIST: 100 diagonal components, 30 full-batch EM steps (binarized MNIST,
        # one CPU core: ~6 s a step, 141.4 test nats after 20)
        "mnist": {
            "components": 100,
            "covariance": "diag",
            "batch_size": WHOLE_SPLIT,
            "steps": 30,
            "checkpoint_every": 10,
            "sample_every": 10,
            "log_every": 1,
        },
        "fashion": {
            "components": 100,
            "covariance": "diag",
            "batch_size": WHOLE_SPLIT,
            "steps": 30,
            "checkpoint_every": 10,
            "sample_every": 10,
            "log_every": 1,
        },
        # the same by stepwise EM on mini-batches of 10,000 images, for sets too big for one batch
        # (binarized MNIST, 3 epochs: 137.4 nats on the first 3,000 test images; batches of 2,000
        # give each of the 100 components too few images a step: 150-155 nats)
        "mnist_online": {
            "components": 100,
            "covariance": "diag",
            "em": "online",
            "batch_size": 10_000,
            "epochs": 5.0,
            "checkpoint_every": 5,
            "sample_every": 5,
            "log_every": 1,
        },
        # Pokemon sprites on their RGB colours. Full covariances, because colour channels and neighbours
        # are strongly correlated (20 diagonal components give colour noise); 712 images in 1,200
        # dimensions need a strong floor: held-out density NLL -32 nats (4 full, reg 0.04) vs +49 (20 diag).
        # No discrete likelihood on palette data: no test NLL during training.
        "pokemon": {
            "components": 4,
            "covariance": "full",
            "reg": 0.04,
            "batch_size": WHOLE_SPLIT,
            "steps": 30,
            "checkpoint_every": 10,
            "sample_every": 10,
            "log_every": 1,
            "eval_every": -1,
        },
        # the 2-D toy mixtures (mixture:ring8 / grid25): full covariances, one component per mode
        # (grid25: all 25 modes covered after 30 steps)
        "toy": {
            "components": 25,
            "covariance": "full",
            "reg": 1e-5,
            "batch_size": WHOLE_SPLIT,
            "steps": 100,
            "checkpoint_every": 20,
            "sample_every": 20,
            "log_every": 1,
        },
    }

    def __init__(self, config: GMMConfig, info):
        super().__init__(config, info)
        if info.num_values == 1:
            raise GenzooError("gmm: data with a single value per sub-pixel has nothing to model")
        self.palette = info.palette is not None
        self.ordinal = info.num_values >= 2 and not self.palette  # levels with bins
        self.binned = self.ordinal and config.covariance == "diag"  # the exact discrete model
        # an instance attribute shadowing the class default: what log_prob reports for this data
        self.likelihood = "none" if self.palette else "approximate" if self.ordinal and not self.binned else "exact"
        m, d = config.components, unit_channels(info) * info.height * info.width
        self.dim = d
        f64 = torch.float64
        # a placeholder before the first update seeds from data: random means, the variance of U(0, 1)
        start = torch.randn(m, d, dtype=f64) if info.continuous else torch.rand(m, d, dtype=f64)  # (M, D)
        var0 = 1.0 if info.continuous else 1 / 12
        self.weight = nn.Parameter(torch.full((m,), 1 / m, dtype=f64), requires_grad=False)  # (M,) pi
        self.mean = nn.Parameter(start, requires_grad=False)  # (M, D)
        if config.covariance == "diag":
            self.var = nn.Parameter(torch.full((m, d), var0, dtype=f64), requires_grad=False)  # (M, D)
        else:
            eye = torch.eye(d, dtype=f64).expand(m, d, d)
            self.scale_tril = nn.Parameter(math.sqrt(var0) * eye.clone(), requires_grad=False)  # (M, D, D)
        self.register_buffer("initialised", torch.tensor(False))
        self.register_buffer("em_steps", torch.tensor(0, dtype=torch.long))
        if config.em == "online":  # running sufficient statistics, saved with the weights for --resume
            self.register_buffer("s0", torch.zeros(m, dtype=f64))
            self.register_buffer("s1", torch.zeros(m, d, dtype=f64))
            s2 = (m, d) if config.covariance == "diag" else (m, d, d)
            self.register_buffer("s2", torch.zeros(*s2, dtype=f64))
        # (parameter versions, bin log-mass (M, D, K), the same as (D*K, M)); not state
        self._cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None

    # -- the continuous view ---------------------------------------------------------------
    def _unit(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> unit values (B, D) float64, after checking shape and range."""
        if tuple(x.shape[1:]) != self.info.shape:
            raise GenzooError(f"gmm was built for images {self.info.shape}, got {tuple(x.shape[1:])}")
        k = self.info.num_values
        if k and len(x) and (x.min() < 0 or x.max() >= k):
            raise GenzooError(f"gmm: image values must lie in 0-{k - 1}, got {int(x.min())}-{int(x.max())}")
        return to_unit(x.to(self.device), self.info).flatten(1).to(torch.float64)  # (B, D)

    def _images(self, u: torch.Tensor) -> torch.Tensor:
        """Unit values (B, D) -> images (B, C, H, W): nearest level / palette colour; float for continuous."""
        y = u.view(len(u), unit_channels(self.info), self.info.height, self.info.width)
        return y.float() if self.info.continuous else from_unit(y, self.info)

    def _unit_mask(self, known: torch.Tensor) -> torch.Tensor:
        """``known`` (C, H, W) -> (D,) bool over unit dimensions (a palette pixel is 3 colour dims)."""
        known = torch.as_tensor(known, device=self.device).bool()
        if tuple(known.shape) != self.info.shape:
            raise GenzooError(f"gmm: the known mask has shape {tuple(known.shape)}, expected {self.info.shape}")
        if self.palette:
            known = known[:1].expand(3, -1, -1)
        return known.flatten()

    def _std(self) -> torch.Tensor:
        return self.var.sqrt()  # (M, D)

    def _cov(self) -> torch.Tensor:
        return self.scale_tril @ self.scale_tril.transpose(1, 2)  # (M, D, D)

    # -- bins (the exact discrete model) ---------------------------------------------------
    def _edges(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper bin edges (K,) in unit space; the outer bins reach -inf and +inf."""
        k = self.info.num_values
        centre = torch.arange(k, dtype=torch.float64, device=self.device) / (k - 1)  # (K,)
        half = 0.5 / (k - 1)
        lo, hi = centre - half, centre + half
        lo[0], hi[-1] = -math.inf, math.inf
        return lo, hi

    def _standard_edges(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(a - mu) / sigma and (b - mu) / sigma for every component, sub-pixel and level: (M, D, K) each."""
        lo, hi = self._edges()
        mu, sd = self.mean.unsqueeze(-1), self._std().unsqueeze(-1)  # (M, D, 1)
        return (lo - mu) / sd, (hi - mu) / sd

    def _log_mass(self) -> torch.Tensor:
        """log P(level k | m) for every component and sub-pixel: (M, D, K), cached until the weights change."""
        return self._log_mass_tables()[0]

    def _log_mass_table(self) -> torch.Tensor:
        """The same laid out (D*K, M), row d*K + k, for ``embedding_bag``."""
        return self._log_mass_tables()[1]

    def _log_mass_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        key = (self.device, *[(p.data_ptr(), p._version) for p in (self.mean, self.var)])
        if self._cache is None or self._cache[0] != key:
            alpha, beta = self._standard_edges()
            log_mass = log_normal_mass(alpha, beta)  # (M, D, K)
            table = log_mass.permute(1, 2, 0).reshape(-1, len(self.weight)).contiguous()  # (D*K, M)
            self._cache = (key, log_mass, table)
        return self._cache[1], self._cache[2]

    def _level_index(self, x: torch.Tensor, dims: torch.Tensor | None = None) -> torch.Tensor:
        """Row of (sub-pixel d, level x_d) in the (D*K, M) tables: (B, D) or (B, len(dims))."""
        k = self.info.num_values
        flat = x.to(self.device).flatten(1).long()  # (B, D)
        idx = flat + k * torch.arange(flat.shape[1], device=self.device)
        return idx if dims is None else idx[:, dims]

    # -- log-likelihood per component ------------------------------------------------------
    def _component_ll(self, x: torch.Tensor, v: torch.Tensor, dims: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x_b restricted to ``dims`` | m) (B, M) in the model's own likelihood (bin mass or density)."""
        if dims is not None and len(dims) == 0:  # nothing seen: every component explains it equally
            return v.new_zeros(len(v), len(self.weight))
        if self.binned:
            idx = self._level_index(x, dims)  # (B, D')
            return F.embedding_bag(idx, self._log_mass_table(), mode="sum")  # (B, M)
        if dims is not None:
            v = v[:, dims]
        if self.config.covariance == "diag":
            mu, var = (self.mean, self.var) if dims is None else (self.mean[:, dims], self.var[:, dims])
            return diag_log_normal(v, mu, var)
        if dims is None:
            ll = full_log_normal(v, self.mean, self.scale_tril)
        else:
            cov = self._cov()[:, dims][:, :, dims]  # (M, V, V)
            ll = full_log_normal(v, self.mean[:, dims], torch.linalg.cholesky(cov))
        if self.ordinal:  # density at the bin centre times the bin volume (1/(K-1))^D
            ll = ll - v.shape[1] * math.log(self.info.num_values - 1)
        return ll

    def joint_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log pi_m + log p(x | m) for every image and component: (B, M), logsumexp over M is log p(x)."""
        v = self._unit(x)
        out = [self._component_ll(x[i : i + CHUNK], v[i : i + CHUNK]) for i in range(0, len(v), CHUNK)]
        return torch.cat(out) + self.weight.log()

    def log_prob(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        self.check_condition(condition)
        if self.palette:
            raise GenzooError(
                "gmm on palette data has no discrete likelihood (a palette index has no ordinal "
                "bin; the mass of its nearest-colour cell has no closed form); train with "
                "eval_every=-1 and compare samples instead"
            )
        return torch.logsumexp(self.joint_log_prob(x), dim=1)  # (B,)

    def posterior(self, x: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """P(m | the known sub-pixels of x): (B, M); every sub-pixel when ``known`` is None."""
        if known is None:
            known = torch.ones(self.info.shape, dtype=torch.bool)
        return self.condition_on(x, known).log_weights.exp()

    # -- EM ---------------------------------------------------------------------------------
    def _e_step(self, x: torch.Tensor, v: torch.Tensor):
        """log p(x_b) (B,) under the current parameters and the statistics (S0, S1, S2) summed over b."""
        m, d = len(self.weight), self.dim
        zero = torch.zeros((), dtype=v.dtype, device=v.device)  # the sums start at 0 whatever their shape
        lls: list[torch.Tensor] = []
        s0, s1, s2, counts = zero, zero, zero, zero
        for i in range(0, len(v), CHUNK):
            xc, vc = x[i : i + CHUNK], v[i : i + CHUNK]
            joint = self._component_ll(xc, vc) + self.weight.log()  # (b, M)
            ll = torch.logsumexp(joint, dim=1)  # (b,)
            r = (joint - ll.unsqueeze(1)).exp()  # (b, M) responsibilities
            lls.append(ll)
            s0 = s0 + r.sum(0)  # (M,)
            if self.binned:  # soft counts n[(d, k), m] = sum_b r_bm [x_bd = k]
                counts = counts + soft_counts(self._level_index(xc), r, d * self.info.num_values)
            elif self.config.covariance == "diag":
                s1, s2 = s1 + r.T @ vc, s2 + r.T @ (vc * vc)  # (M, D) each
            else:
                s1 = s1 + r.T @ vc  # (M, D)
                s2 = s2 + (r.T.unsqueeze(-1) * vc).transpose(1, 2) @ vc  # (M, D, b) @ (b, D) -> (M, D, D)
        if self.binned:  # E[u | bin, m] and E[u^2 | bin, m] weighted by the soft counts of each bin
            counts = counts.view(d, self.info.num_values, m).permute(2, 0, 1)  # (M, D, K)
            e1, e2 = self._bin_moments()  # (M, D, K) each
            s1, s2 = (counts * e1).sum(-1), (counts * e2).sum(-1)
        return torch.cat(lls), (s0, s1, s2)

    def _bin_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """E[u] and E[u^2] of N(mu_md, sigma_md^2) truncated to each bin: (M, D, K) each."""
        alpha, beta = self._standard_edges()  # (M, D, K)
        m1, var = truncated_normal_moments(alpha, beta, self._log_mass())
        lo, hi = self._edges()
        mu, sd = self.mean.unsqueeze(-1), self._std().unsqueeze(-1)  # (M, D, 1)
        e1 = torch.minimum(torch.maximum(mu + sd * m1, lo), hi)  # inside its bin, whatever the rounding
        return e1, e1 * e1 + sd * sd * var

    def _m_step(self, s0: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor) -> None:
        """Parameters from (per-image) statistics; a component with no mass keeps its mean and spread."""
        reg = self.config.reg
        live = s0 > 1e-12 * s0.sum()  # (M,)
        n = s0.clamp_min(torch.finfo(s0.dtype).tiny)
        self.weight.copy_(s0 / s0.sum())
        mean = s1 / n.unsqueeze(1)  # (M, D)
        if self.config.covariance == "diag":
            var = (s2 / n.unsqueeze(1) - mean * mean).clamp_min(reg)  # (M, D)
            self.var.copy_(torch.where(live.unsqueeze(1), var, self.var))
        else:
            cov = s2 / n.view(-1, 1, 1) - mean.unsqueeze(2) * mean.unsqueeze(1)  # (M, D, D)
            cov = 0.5 * (cov + cov.transpose(1, 2))
            lam, vec = torch.linalg.eigh(cov)  # (M, D), (M, D, D)
            cov = (vec * lam.clamp_min(reg).unsqueeze(1)) @ vec.transpose(1, 2)  # eigenvalues >= reg
            tril = torch.linalg.cholesky(0.5 * (cov + cov.transpose(1, 2)))
            self.scale_tril.copy_(torch.where(live.view(-1, 1, 1), tril, self.scale_tril))
        self.mean.copy_(torch.where(live.unsqueeze(1), mean, self.mean))

    def _seed(self, v: torch.Tensor) -> None:
        """First update: seeds from the batch (k-means++ or random images); each image is given to its
        nearest seed and the M-step of those hard assignments sets weights, means and spreads."""
        m, b = len(self.weight), len(v)
        if self.config.init == "random":
            pick = torch.randperm(b)[:m] if b >= m else torch.randint(0, b, (m,))
        else:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))  # drawn from torch's global RNG
            pick = torch.from_numpy(kmeans_pp(v.cpu().numpy(), m, rng))
        seeds = v[pick.to(v.device)]  # (M, D)
        spread = v.var(0, unbiased=False).clamp_min(self.config.reg) if b > 1 else torch.full_like(v[0], 1 / 12)
        self.mean.copy_(seeds)  # kept, with the batch's spread, by a seed that wins no image (a duplicate)
        if self.config.covariance == "diag":
            self.var.copy_(spread.expand(m, -1))
        else:
            self.scale_tril.copy_(torch.diag_embed(spread.sqrt()).expand(m, -1, -1))
        zero = torch.zeros((), dtype=v.dtype, device=v.device)  # the sums start at 0 whatever their shape
        s0, s1, s2 = zero, zero, zero
        for i in range(0, b, CHUNK):
            vc = v[i : i + CHUNK]  # (b, D)
            near = ((vc * vc).sum(1, keepdim=True) - 2 * (vc @ seeds.T) + (seeds * seeds).sum(1)).argmin(1)
            r = F.one_hot(near, m).to(v.dtype)  # (b, M)
            s0, s1 = s0 + r.sum(0), s1 + r.T @ vc
            if self.config.covariance == "diag":
                s2 = s2 + r.T @ (vc * vc)
            else:
                s2 = s2 + (r.T.unsqueeze(-1) * vc).transpose(1, 2) @ vc  # (M, D, D)
        self._m_step(s0 / b, s1 / b, s2 / b)
        self.initialised.fill_(True)

    @torch.no_grad()
    def update(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        """One EM step on ``batch["x"]``; the loss is the batch's mean NLL before the step."""
        x = batch["x"].to(self.device)
        v = self._unit(x)  # (B, D)
        if not bool(self.initialised):
            self._seed(_rows_of_every_rank(v))
        lls, stats = self._e_step(x, v)
        count = torch.tensor(float(len(v)), dtype=torch.float64, device=v.device)
        *sums, total, count = _sum_over_ranks(*stats, lls.sum(), count)
        stats = tuple(s / count for s in sums)  # per-image averages
        if self.config.em == "online":
            t = int(self.em_steps) + 1
            g = t**-self.config.step_power  # 1 at the first step: the running statistics start from this batch
            for buf, s in zip((self.s0, self.s1, self.s2), stats):
                buf.mul_(1 - g).add_(g * s)
            stats = (self.s0, self.s1, self.s2)
        self._m_step(*stats)
        self.em_steps += 1
        nll = -total / count
        if self.palette:
            return ModelOutput(nll, {"density_nll_nats": nll.item()})
        bpd = nll.item() / (self.info.dims * math.log(2))
        return ModelOutput(nll, {"nll_nats": nll.item(), "bits_per_dim": bpd})

    # -- inference ---------------------------------------------------------------------------
    def condition_on(self, x: torch.Tensor, known: torch.Tensor) -> MixtureConditional:
        """The exact conditional of the hidden unit dimensions given the known sub-pixels of each image.

        Posterior weights use the visible marginal (bin masses for the exact model, densities
        otherwise); each component is then conditioned as a Gaussian (diag: the hidden dimensions
        are independent of the visible ones given m; full: mu_H + S_HV S_VV^-1 (v_V - mu_V),
        S_HH - S_HV S_VV^-1 S_VH).
        """
        with torch.no_grad():
            v = self._unit(x)  # (B, D)
            mask = self._unit_mask(known)  # (D,)
            vis, hid = mask.nonzero().squeeze(1), (~mask).nonzero().squeeze(1)
            joint = self._component_ll(x, v, vis) + self.weight.log()  # (B, M)
            log_w = joint - torch.logsumexp(joint, dim=1, keepdim=True)  # (B, M)
            b = len(v)
            if self.config.covariance == "diag":
                mean = self.mean[:, hid].expand(b, -1, -1)  # (B, M, H)
                return MixtureConditional(log_w, mean, self._std()[:, hid], hid)
            cov = self._cov()  # (M, D, D)
            if len(vis) == 0:
                return MixtureConditional(
                    log_w, self.mean.expand(b, -1, -1)[:, :, hid], torch.linalg.cholesky(cov[:, hid][:, :, hid]), hid
                )
            l_vv = torch.linalg.cholesky(cov[:, vis][:, :, vis])  # (M, V, V)
            a = torch.linalg.solve_triangular(l_vv, cov[:, vis][:, :, hid], upper=False)  # (M, V, H)
            diff = (v[:, vis].unsqueeze(1) - self.mean[:, vis]).permute(1, 2, 0)  # (M, V, B)
            z = torch.linalg.solve_triangular(l_vv, diff, upper=False)  # (M, V, B)
            mean = self.mean[:, hid].unsqueeze(0) + (a.transpose(1, 2) @ z).permute(2, 0, 1)  # (B, M, H)
            c_hh = cov[:, hid][:, :, hid] - a.transpose(1, 2) @ a  # (M, H, H) Schur complement
            scale = torch.linalg.cholesky(0.5 * (c_hh + c_hh.transpose(1, 2)))
            return MixtureConditional(log_w, mean, scale, hid)

    def _draw(self, log_w: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, generator, temperature):
        """One u per row: m ~ softmax(log_w) (B, M), then mean[b, m] + temperature * scale_m eps."""
        b = len(log_w)
        comp = torch.multinomial(log_w.exp(), 1, generator=generator).squeeze(1)  # (B,)
        eps = torch.randn(b, mean.shape[-1], generator=generator, device=self.device, dtype=torch.float64)
        mu = mean[torch.arange(b, device=self.device), comp]  # (B, H)
        if scale.dim() == 2:
            noise = scale[comp] * eps
        else:
            noise = (scale[comp] @ eps.unsqueeze(-1)).squeeze(-1)
        return mu + temperature * noise  # (B, H)

    def _sample(self, n, *, generator=None, temperature=1.0, condition=None, progress=False):
        """m ~ pi, u ~ N(mu_m, temperature^2 Sigma_m), then the level / palette colour nearest to u."""
        with torch.no_grad():
            scale = self._std() if self.config.covariance == "diag" else self.scale_tril
            log_w = self.weight.log().expand(n, -1)  # (n, M)
            u = self._draw(log_w, self.mean.expand(n, -1, -1), scale, generator, temperature)  # (n, D)
            return self._images(u)

    def _complete(self, x, known, *, generator=None, temperature=1.0, condition=None, progress=False):
        """Hidden sub-pixels drawn from the exact conditional (at temperature 1), known ones kept."""
        x = x.to(self.device)
        with torch.no_grad():
            cond = self.condition_on(x, known)
            u = self._unit(x)  # (B, D)
            if len(cond.hidden):
                u[:, cond.hidden] = self._draw(cond.log_weights, cond.mean, cond.scale, generator, temperature)
            out = self._images(u)
        keep = torch.as_tensor(known, device=self.device).bool().expand_as(out)
        return torch.where(keep, x.to(out.dtype), out)


# -- the pieces, as functions of tensors -------------------------------------------------------
def truncated_normal_moments(a: torch.Tensor, b: torch.Tensor, log_z: torch.Tensor | None = None):
    """Mean and variance of a standard normal truncated to [a, b] (elementwise; ends may be infinite).

    mean = (phi(a) - phi(b)) / Z,  var = 1 + (a phi(a) - b phi(b)) / Z - mean^2,  Z = Phi(b) - Phi(a)
    (``log_z`` if already known); the ratios phi / Z are taken in log space, a phi(a) is 0 at a = -inf,
    and the variance is clipped to [0, 1] against rounding.
    """
    if log_z is None:
        log_z = log_normal_mass(a, b)
    ra = (-0.5 * a * a - 0.5 * LOG_2PI - log_z).exp()  # phi(a) / Z; exp(-inf) = 0 at an infinite end
    rb = (-0.5 * b * b - 0.5 * LOG_2PI - log_z).exp()
    mean = ra - rb
    ara = torch.nan_to_num(a * ra, nan=0.0)  # -inf * 0 at an open end
    brb = torch.nan_to_num(b * rb, nan=0.0)
    return mean, (1 + ara - brb - mean * mean).clamp_(0, 1)


def diag_log_normal(v: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """log N(v_b; mu_m, diag(var_m)) for every pair: v (B, D), mean/var (M, D) -> (B, M), by matmuls."""
    prec = 1 / var  # (M, D)
    quad = (v * v) @ prec.T - 2 * (v @ (mean * prec).T) + (mean * mean * prec).sum(1)  # (B, M)
    return -0.5 * (quad + var.log().sum(1) + v.shape[1] * LOG_2PI)


def full_log_normal(v: torch.Tensor, mean: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """log N(v_b; mu_m, L_m L_m^T): v (B, D), mean (M, D), scale_tril (M, D, D) -> (B, M)."""
    diff = (v.unsqueeze(1) - mean).permute(1, 2, 0)  # (M, D, B)
    z = torch.linalg.solve_triangular(scale_tril, diff, upper=False)  # (M, D, B)
    log_det = 2 * scale_tril.diagonal(dim1=1, dim2=2).log().sum(1)  # (M,)
    return -0.5 * (z.square().sum(1).T + log_det + v.shape[1] * LOG_2PI)


def _grouped() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _sum_over_ranks(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Each tensor summed over the processes of the torch.distributed group (as it is in one process)."""
    if not _grouped():
        return list(tensors)
    out = []
    for t in tensors:
        buf = t.clone() if dist.get_backend() == "nccl" else t.cpu().clone()
        dist.all_reduce(buf)
        out.append(buf.to(t.device))
    return out


def _rows_of_every_rank(v: torch.Tensor) -> torch.Tensor:
    """The rows (B_r, D) of every process, in rank order (as they are in one process)."""
    if not _grouped():
        return v
    comm = v.device if dist.get_backend() == "nccl" else torch.device("cpu")
    n = torch.tensor([len(v)], device=comm)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    most = int(max(int(s) for s in sizes))
    padded = torch.zeros(most, v.shape[1], dtype=v.dtype, device=comm)
    padded[: len(v)] = v.to(comm)
    rows = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(rows, padded)
    return torch.cat([r[: int(s)] for r, s in zip(rows, sizes)]).to(v.device)


def soft_counts(idx: torch.Tensor, r: torch.Tensor, rows: int) -> torch.Tensor:
    """c[j, m] = sum_b r[b, m] * #{d : idx[b, d] = j}: (rows, M).

    The (b, d) pairs are sorted by row j, so each row is one bag of image indices summed by
    ``embedding_bag`` (much faster than ``index_add_`` on CPU, and deterministic).
    """
    key = idx.flatten()  # (B*D,)
    order = torch.argsort(key, stable=True)
    counts = torch.bincount(key, minlength=rows)
    offsets = counts.cumsum(0) - counts
    return F.embedding_bag(order // idx.shape[1], r, offsets, mode="sum")  # (rows, M)
