"""The linear-Gaussian latent model shared by PCA, probabilistic PCA, factor analysis and ICA.

Tipping & Bishop 1999, "Probabilistic Principal Component Analysis", J. R. Stat. Soc. B
61(3):611-622 (no arXiv), sec. 2-3: the model, its marginal and its posterior.

On the continuous view v = ``to_unit(x)`` of an image, flattened to D numbers,

    v = mu + W z + eps,   z ~ p(z) (q numbers),   eps ~ N(0, Psi),  Psi = diag(psi_1 .. psi_D),

with p(z) = N(0, I) (PCA, PPCA, FA) or independent non-Gaussian sources (ICA). PPCA ties
Psi = sigma^2 I; FA leaves it free; PCA is PPCA's sigma -> 0 limit. The pieces below are
shared; each model module fits (mu, W, Psi) its own way.

* Marginal (Gaussian prior): v ~ N(mu, C), C = W W^T + Psi, evaluated with the Woodbury identity
  and the matrix determinant lemma in O(D q^2):
  log N(v) = -1/2 [D log 2pi + log|Psi| + log|M| + r^T Psi^-1 r - b^T M^-1 b],
  r = v - mu, M = I + W^T Psi^-1 W, b = W^T Psi^-1 r.
* Posterior (Tipping & Bishop eq. 6, for a general Psi): z | v_K ~ N(M_K^-1 b_K, M_K^-1) for
  the sub-pixels K that are seen (all of them for ``encode``), so completion draws the hidden
  sub-pixels from the exact Gaussian conditional v_H | v_K: z from this posterior, then
  v_H = mu_H + W_H z + eps_H. Its mean equals mu_H + C_HK C_KK^-1 (v_K - mu_K).

What ``log_prob`` reports on discrete images (levels k of K, bins B_k = [(k - 1/2)/(K-1),
(k + 1/2)/(K-1)), the outer two open, as the Gaussian mixture uses): given z the sub-pixels
are independent, so the model is a distribution over the K^D discrete images,

    P(x) = integral p(z) prod_d P(x_d | z) dz,  P(x_d | z) = Phi((b - m_d)/s_d) - Phi((a - m_d)/s_d),

m_d = mu_d + w_d^T z, s_d = sqrt(psi_d) (sampling v and rounding to the nearest level draws
exactly from it). The integral over z has no closed form, so ``log_prob`` is a lower bound,
the ELBO with the Gaussian posterior q(z | x) = N(M^-1 b, M^-1) of the bin centres v:

    log P(x) >= sum_d E_q[log P(x_d | z)] + E_q[log p(z)] + H[q].

Each E_q[log P(x_d | z)] is a 1-D Gaussian expectation (m_d is Gaussian under q with mean
mu_d + w_d^T E[z] and variance w_d^T M^-1 w_d), taken by Gauss-Hermite quadrature with
``quadrature`` nodes (the integrand is smooth: for PPCA with 64 components on binarized MNIST,
8, 16, 32 and 128 nodes agree to 1e-9 nats per image); E_q[log p(z)] and H[q] are in closed form. ``log_weights``
gives the importance weights of q for ``genzoo eval``'s IWAE bound and importance-sampled NLL,
which tighten it. On continuous data a Gaussian-prior model reports its exact density.

Parameters are float64 ``nn.Parameter``s with ``requires_grad=False``: these models are fitted
in closed form or by EM (``gradient_free``), and the shared device/dtype properties keep working.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from genzoo.data.base import ImageInfo
from genzoo.data.continuous import from_unit, to_unit, unit_channels
from genzoo.errors import GenzooError
from genzoo.models.base import ImportanceWeighted, LatentModel, LikelihoodModel
from genzoo.nn.gaussian import LOG_2PI, log_normal_mass

CHUNK = 256  # images per quadrature chunk: bounds memory only
F64 = torch.float64


class Scatter:
    """The centred second moment S = (1/N) sum_n (v_n - mu)(v_n - mu)^T of a batch, as an operator.

    Built as a D x D matrix when N >= D, else kept as the centred data (N x D) so that a face set
    with D = 4096 >> N costs O(N D) memory; ``top(q)`` gives its leading eigenpairs either way.
    """

    def __init__(self, v: torch.Tensor):
        self.n, self.d = v.shape
        self.mean = v.mean(0)  # (D,)
        centred = v - self.mean  # (N, D)
        self.diag = centred.square().mean(0)  # (D,)
        self.trace = float(self.diag.sum())
        # exactly one of the two is kept: S itself (N >= D) or the centred data (N < D)
        self.matrix: torch.Tensor | None = centred.T @ centred / self.n if self.n >= self.d else None  # (D, D)
        self.centred: torch.Tensor | None = None if self.matrix is not None else centred  # (N, D)

    def __matmul__(self, b: torch.Tensor) -> torch.Tensor:
        """S @ b for b (D, q)."""
        if self.matrix is not None:
            return self.matrix @ b
        assert self.centred is not None  # kept whenever the matrix is not
        return self.centred.T @ (self.centred @ b) / self.n

    def top(self, q: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The q largest eigenvalues (q,) in decreasing order and their unit eigenvectors (D, q)."""
        if self.matrix is not None:
            lam, vec = torch.linalg.eigh(self.matrix)  # ascending
            lam, vec = lam.flip(0)[:q], vec.flip(1)[:, :q]
        else:
            assert self.centred is not None  # kept whenever the matrix is not
            _, s, vh = torch.linalg.svd(self.centred, full_matrices=False)
            lam, vec = s[:q] ** 2 / self.n, vh[:q].T
            if len(lam) < q:  # more components than images: the rest have eigenvalue 0
                extra = q - len(lam)
                basis = torch.linalg.qr(torch.cat([vec, torch.eye(self.d, dtype=vec.dtype)[:, : extra + len(lam)]], 1))[
                    0
                ]
                vec = torch.cat([vec, basis[:, len(lam) : q]], 1)
                lam = torch.cat([lam, lam.new_zeros(extra)])
        # a fixed sign (the largest entry of each vector positive) so refits give identical weights
        sign = torch.sign(vec.gather(0, vec.abs().argmax(0, keepdim=True)))  # (1, q)
        return lam.clamp_min(0), vec * sign


def ppca_fit(scatter: Scatter, q: int, floor: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tipping & Bishop's closed-form maximum likelihood (eq. 7-8).

    sigma^2 = (trace S - sum of the q largest eigenvalues) / (D - q), W = U_q (L_q - sigma^2 I)^(1/2);
    sigma^2 is floored at ``floor`` (and is ``floor`` when q = D).
    Returns (W (D, q), sigma^2, L_q (q,), U_q (D, q)).
    """
    lam, vec = scatter.top(q)
    d = scatter.d
    rest = (scatter.trace - float(lam.sum())) / (d - q) if d > q else 0.0
    sigma2 = max(rest, floor)
    w = vec * (lam - sigma2).clamp_min(0).sqrt()  # (D, q)
    return w, torch.tensor(sigma2, dtype=F64), lam, vec


class LinearFactorModel(LatentModel):
    """v = mu + W z + eps, eps ~ N(0, diag(psi)); the code of an image is E[z | v] (component scores)."""

    family = "linear factor"
    gradient_free = True
    has_encoder = True
    whole_split: ClassVar[int] = 10**9  # a batch_size the trainer clips to the split size: a full-batch fit
    # the shared test suite's data: enough dimensions for every preset's components (q <= D is checked)
    test_info: ClassVar[ImageInfo] = ImageInfo(channels=1, height=8, width=8, num_values=5)

    # parameters (fitted in closed form or by EM, never by gradients) and buffers, made in __init__
    mean: nn.Parameter  # (D,) mu
    weight: nn.Parameter  # (D, q) W
    noise: nn.Parameter  # (D,) psi, the diagonal of Psi
    initialised: torch.Tensor  # () bool: an update has fitted the data

    def __init__(self, config, info):
        super().__init__(config, info)
        if info.num_values == 1:
            raise GenzooError(f"{self.name}: data with a single value per sub-pixel has nothing to model")
        self.palette = info.palette is not None
        d = unit_channels(info) * info.height * info.width
        q = int(config.components)
        if q > d:
            raise GenzooError(f"{self.name}: components={q} exceeds the {d} dimensions of the data")
        self.dim = d
        # a placeholder before the first update fits the data: mid-grey mean, random loadings
        g = torch.Generator().manual_seed(0)
        self.mean = nn.Parameter(torch.full((d,), 0.0 if info.continuous else 0.5, dtype=F64), requires_grad=False)
        self.weight = nn.Parameter(0.2 * torch.randn(d, q, generator=g, dtype=F64), requires_grad=False)  # (D, q)
        self.noise = nn.Parameter(torch.full((d,), 1 / 12, dtype=F64), requires_grad=False)  # (D,) psi
        self.register_buffer("initialised", torch.tensor(False))

    @property
    def latent_dim(self) -> int:
        return int(self.config.components)

    # -- the continuous view ---------------------------------------------------------------
    def _unit(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> unit values (B, D) float64, after checking shape and range."""
        if x.dim() != 4 or tuple(x.shape[1:]) != self.info.shape:
            raise GenzooError(f"{self.name} was built for images {self.info.shape}, got {tuple(x.shape[1:])}")
        k = self.info.num_values
        if k and len(x) and (x.min() < 0 or x.max() >= k):
            raise GenzooError(f"{self.name}: image values must lie in 0-{k - 1}, got {int(x.min())}-{int(x.max())}")
        return to_unit(x.to(self.device), self.info).flatten(1).to(F64)  # (B, D)

    def _images(self, v: torch.Tensor) -> torch.Tensor:
        """Unit values (B, D) -> images (B, C, H, W): the nearest level / palette colour; float for continuous."""
        y = v.view(len(v), unit_channels(self.info), self.info.height, self.info.width)
        return y.float() if self.info.continuous else from_unit(y, self.info)

    def _unit_mask(self, known: torch.Tensor) -> torch.Tensor:
        """``known`` (C, H, W) -> (D,) bool over unit dimensions (a palette pixel is 3 colour dims)."""
        known = torch.as_tensor(known, device=self.device).bool()
        if self.palette:
            known = known[:1].expand(3, -1, -1)
        return known.flatten()

    # -- the source prior (N(0, I); ICA overrides) ---------------------------------------------
    def prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator, device=self.device, dtype=F64)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) summed over the last dimension."""
        return -0.5 * (z.square() + LOG_2PI).sum(-1)

    def expected_log_prior(self, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """E[log p(z)] for independent z_j ~ N(mean_j, var_j): mean (B, q), var (q,) -> (B,)."""
        return -0.5 * (mean.square() + var + LOG_2PI).sum(-1)

    # -- inference ----------------------------------------------------------------------------
    def posterior(self, v: torch.Tensor, dims: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """N(z; M^-1 b, M^-1) given the unit values of ``dims`` (all when None): mean (B, q), cov (q, q)."""
        w: torch.Tensor = self.weight
        mu: torch.Tensor = self.mean
        psi: torch.Tensor = self.noise
        if dims is not None:
            w, mu, psi, v = w[dims], mu[dims], psi[dims], v[:, dims]
        wp = w / psi.unsqueeze(1)  # (D', q) Psi^-1 W
        m = torch.eye(w.shape[1], dtype=F64, device=w.device) + w.T @ wp  # (q, q)
        chol = torch.linalg.cholesky(m)
        cov = torch.cholesky_inverse(chol)
        mean = (v - mu) @ wp @ cov  # (B, q)
        return mean, 0.5 * (cov + cov.T)

    def encode(self, x, condition=None, *, generator=None):
        """Codes E[z | v] (B, q): the component scores of each image."""
        self.check_condition(condition)
        with torch.no_grad():
            return self.posterior(self._unit(x))[0].to(torch.get_default_dtype())

    def decode_unit(self, z, condition=None):
        """mu + W z, clamped to [0, 1] (continuous data: unclamped), as images (B, C', H, W)."""
        v = self.mean + z.to(F64) @ self.weight.T  # (B, D)
        if not self.info.continuous:
            v = v.clamp(0, 1)
        return v.view(len(z), unit_channels(self.info), self.info.height, self.info.width).to(z.dtype)

    # -- sampling and completion -----------------------------------------------------------------
    def _sample(self, n, *, generator=None, temperature=1.0, condition=None, progress=False):
        """z ~ p(z) and eps ~ N(0, Psi), both scaled by ``temperature``; v = mu + W z + eps, then the nearest level."""
        with torch.no_grad():
            z = temperature * self.prior(n, generator)  # (n, q)
            eps = torch.randn(n, self.dim, generator=generator, device=self.device, dtype=F64)
            return self._images(self.mean + z @ self.weight.T + temperature * self.noise.sqrt() * eps)

    def condition_on(self, x: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The Gaussian conditional of the hidden unit dimensions given the known ones (unit values of x):
        (mean (B, H), covariance (H, H), hidden indices (H,))."""
        v = self._unit(x)
        mask = self._unit_mask(known)
        vis, hid = mask.nonzero().squeeze(1), (~mask).nonzero().squeeze(1)
        z_mean, z_cov = self.posterior(v, vis)
        w_h = self.weight[hid]  # (H, q)
        mean = self.mean[hid] + z_mean @ w_h.T
        cov = w_h @ z_cov @ w_h.T + torch.diag(self.noise[hid])
        return mean, cov, hid

    def _complete(self, x, known, *, generator=None, temperature=1.0, condition=None, progress=False):
        """Hidden sub-pixels from the exact Gaussian conditional (the conditional mean at temperature 0)."""
        x = x.to(self.device)
        with torch.no_grad():
            v = self._unit(x)  # (B, D)
            mask = self._unit_mask(known)
            vis, hid = mask.nonzero().squeeze(1), (~mask).nonzero().squeeze(1)
            if len(hid):
                z_mean, z_cov = self.posterior(v, vis)  # (B, q), (q, q)
                b, q = z_mean.shape
                chol = torch.linalg.cholesky(z_cov)
                e1 = torch.randn(b, q, generator=generator, device=self.device, dtype=F64)
                e2 = torch.randn(b, len(hid), generator=generator, device=self.device, dtype=F64)
                z = z_mean + temperature * e1 @ chol.T
                v[:, hid] = self.mean[hid] + z @ self.weight[hid].T + temperature * self.noise[hid].sqrt() * e2
            out = self._images(v)
        keep = torch.as_tensor(known, device=self.device).bool().expand_as(out)
        return torch.where(keep, x.to(out.dtype), out)

    # -- the Gaussian marginal (continuous view) ----------------------------------------------------
    def gaussian_log_density(self, v: torch.Tensor) -> torch.Tensor:
        """log N(v; mu, W W^T + Psi) per row of unit values v (B, D), by Woodbury and the determinant lemma."""
        w, psi = self.weight, self.noise
        r = v - self.mean  # (B, D)
        wp = w / psi.unsqueeze(1)  # (D, q)
        m = torch.eye(w.shape[1], dtype=F64, device=w.device) + w.T @ wp
        chol = torch.linalg.cholesky(m)
        b = r @ wp  # (B, q)
        sol = torch.linalg.solve_triangular(chol, b.T, upper=False)  # (q, B) L^-1 b
        quad = (r.square() / psi).sum(1) - sol.square().sum(0)
        log_det = psi.log().sum() + 2 * chol.diagonal().log().sum()
        return -0.5 * (self.dim * LOG_2PI + log_det + quad)


class LinearLikelihood(LikelihoodModel, ImportanceWeighted, LinearFactorModel):
    """``log_prob`` of a :class:`LinearFactorModel`: the ELBO on discrete images, the exact density on
    continuous data (Gaussian prior), none on palette data. Listed before the model class's other bases,
    so its ``log_prob`` and ``log_weights`` come first."""

    likelihood = "bound"  # the class default (discrete images); each instance sets its own
    gaussian_prior: ClassVar[bool] = True
    sample_options = LatentModel.sample_options

    def _set_likelihood(self) -> None:
        # an instance attribute shadowing the class default: what log_prob reports for this data
        self.likelihood = (
            "none" if self.palette else "exact" if self.info.continuous and self.gaussian_prior else "bound"
        )
        nodes, weights = np.polynomial.hermite.hermgauss(int(self.config.quadrature))
        # E_{N(m, s^2)} f = sum_i w_i / sqrt(pi) f(m + sqrt(2) s t_i)
        self._nodes = torch.tensor(nodes * math.sqrt(2), dtype=F64)
        self._log_weights = torch.tensor(np.log(weights / math.sqrt(math.pi)), dtype=F64)

    def _edges(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper bin edges (K,) in unit space; the outer bins reach -inf and +inf."""
        k = self.info.num_values
        centre = torch.arange(k, dtype=F64, device=self.device) / (k - 1)
        lo, hi = centre - 0.5 / (k - 1), centre + 0.5 / (k - 1)
        lo[0], hi[-1] = -math.inf, math.inf
        return lo, hi

    def _bin_log_mass(self, x_flat: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """log P(x_d | m_d) = log[Phi((b - m_d)/s_d) - Phi((a - m_d)/s_d)]: x_flat (B, D) levels, m (..., B, D)."""
        lo, hi = self._edges()
        s = self.noise.sqrt()  # (D,)
        a, b = lo[x_flat], hi[x_flat]  # (B, D)
        return log_normal_mass((a - m) / s, (b - m) / s)

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """The lower bound on log P(x) described in the module docstring, per image (B,)."""
        out = []
        for i in range(0, len(x), CHUNK):
            xc = x[i : i + CHUNK]
            v = self._unit(xc)  # (B, D)
            mean, cov = self.posterior(v)  # (B, q), (q, q)
            proj_mean = self.mean + mean @ self.weight.T  # (B, D) E_q[m_d]
            proj_var = ((self.weight @ cov) * self.weight).sum(1)  # (D,) Var_q[m_d]
            if self.info.continuous:
                sq = (v - proj_mean).square() + proj_var
                recon = (-0.5 * (LOG_2PI + self.noise.log() + sq / self.noise)).sum(1)
            else:
                flat = xc.to(self.device).flatten(1).long()
                nodes = self._nodes.to(self.device).view(-1, 1, 1)  # (n, 1, 1)
                m = proj_mean + nodes * proj_var.sqrt()  # (n, B, D)
                ll = self._bin_log_mass(flat, m)  # (n, B, D)
                recon = (ll * self._log_weights.to(self.device).exp().view(-1, 1, 1)).sum(0).sum(1)  # (B,)
            entropy = 0.5 * torch.logdet(2 * math.pi * math.e * cov)
            out.append(recon + self.expected_log_prior(mean, cov.diagonal()) + entropy)
        return torch.cat(out)

    def log_prob(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        self.check_condition(condition)
        if self.palette:
            raise GenzooError(
                f"{self.name} on palette data has no discrete likelihood (a palette index has no "
                "ordinal bin); train with eval_every=-1 and compare samples instead"
            )
        if self.likelihood == "exact":
            return self.gaussian_log_density(self._unit(x))
        return self.elbo(x)

    def log_weights(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """log p(x | z_i) + log p(z_i) - log q(z_i | x) for z_i ~ q = N(M^-1 b, M^-1): (k, B)."""
        if self.palette:
            raise GenzooError(f"{self.name} on palette data has no discrete likelihood")
        with torch.no_grad():
            v = self._unit(x)
            mean, cov = self.posterior(v)  # (B, q), (q, q)
            chol = torch.linalg.cholesky(cov)
            log_det = 2 * chol.diagonal().log().sum()
            flat = x.to(self.device).flatten(1).long()
            out = []
            per = max(1, (1 << 22) // max(1, len(x) * self.dim))  # draws per chunk: bounds memory only
            for j in range(0, k, per):
                kk = min(per, k - j)
                eps = torch.randn(kk, *mean.shape, generator=generator, device=self.device, dtype=F64)
                z = mean + eps @ chol.T  # (k', B, q)
                m = self.mean + z @ self.weight.T  # (k', B, D)
                if self.info.continuous:
                    lx = (-0.5 * (LOG_2PI + self.noise.log() + (v - m).square() / self.noise)).sum(-1)
                else:
                    lx = self._bin_log_mass(flat, m).sum(-1)  # (k', B)
                log_q = -0.5 * (eps.square().sum(-1) + log_det + z.shape[-1] * LOG_2PI)
                out.append(lx + self.log_prior(z) - log_q)
            return torch.cat(out)
