"""Sparse coding: a learned overcomplete dictionary with a sparse (Laplace) prior on the codes.

Olshausen & Field 1996, "Emergence of simple-cell receptive field properties by learning a sparse
code for natural images", Nature 381:607-609 (no arXiv). On whitened patches y (D numbers),

    y = Phi a + e,  e ~ N(0, sigma^2 I),  p(a_j) = exp(-|a_j| / b_j) / (2 b_j)  (Laplace),

with a dictionary Phi of K unit-norm columns ("atoms"). Learning alternates (the paper's eq. 4-5):

* inference -- the code of a patch is the MAP estimate, the LASSO
  a* = argmin_a 1/2 |y - Phi a|^2 + lam |a|_1, solved by ISTA or FISTA (Beck & Teboulle 2009,
  "A fast iterative shrinkage-thresholding algorithm", SIAM J. Imaging Sci. 2(1):183-202):
  a <- soft(a + Phi^T (y - Phi a) / L, lam / L), L = |Phi|_2^2, FISTA adding Nesterov momentum;
* dictionary -- with the running averages G = E[a a^T] and C = E[y a^T] of the codes
  (G <- (1 - g_t) G + g_t G_batch, g_t = t^(-step_power)), one pass of block-coordinate descent on
  E |y - Phi a|^2 over the atoms, each renormalised to unit length (the column constraint that
  keeps lam meaningful): phi_j <- phi_j + (C_j - Phi G_j) / G_jj, phi_j <- phi_j / |phi_j|. An atom
  no code uses (G_jj = 0) restarts at a random patch of the batch.

Patches are whitened by ZCA, y = Z (v - mu), Z = U (L + eps)^(-1/2) U^T, fitted on the first batch
(Olshausen & Field whiten with a 1/f filter; ZCA is its data-fitted counterpart and keeps each
filter local, so the whitened-space atoms are the Gabor-like receptive fields). ``atoms()`` gives the
dictionary as images.

As a generative model (a :class:`~genzoo.models.base.LatentModel` whose code is a): b_j is the
maximum-likelihood Laplace scale of atom j's codes, b_j = E|a_j| (running average), and sigma^2 the
running mean squared residual per dimension; ``sample`` draws a ~ p(a), e ~ N(0, sigma^2 I) (both
times ``temperature``) and returns mu + Z^-1 (Phi a + e). ``encode`` is the FISTA code. Completion is
the MAP code of the known pixels under the model (the weighted LASSO
argmin_a 1/2 |L^-1 (v_K - mu_K - (Z^-1 Phi)_K a)|^2 + sum_j |a_j| / b_j, L L^T = sigma^2 (Z^-1 Z^-T)_KK,
by FISTA), decoded, plus ``temperature`` times noise e mapped to pixels. The marginal likelihood
integral over a has no closed form: the model reports none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from genzoo.data.base import ImageInfo
from genzoo.data.continuous import from_unit, to_unit
from genzoo.errors import GenzooError
from genzoo.models.base import LatentModel, ModelOutput
from genzoo.models.registry import register_model

F64 = torch.float64


@dataclass
class SparseCodingConfig:
    atoms: int = 128  # K, dictionary columns (K > D: overcomplete)
    lam: float = 0.4  # the LASSO weight on |a|_1 (whitened units)
    solver: Literal["fista", "ista"] = "fista"
    iterations: int = 100  # ISTA/FISTA steps per inference
    whiten_eps: float = 0.01  # added to the patch covariance's eigenvalues before ZCA (relative to the largest)
    step_power: float = 0.6  # the running averages' weight t^(-step_power)

    def __post_init__(self):
        if self.atoms < 1:
            raise ValueError("atoms must be >= 1")
        if not self.lam > 0:
            raise ValueError("lam must be > 0")
        if self.iterations < 1:
            raise ValueError("iterations must be >= 1")
        if not self.whiten_eps > 0:
            raise ValueError("whiten_eps must be > 0 (it keeps the whitening invertible)")
        if not 0.5 < self.step_power <= 1:
            raise ValueError("step_power must be in (0.5, 1]")


def soft_threshold(u: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """sign(u) max(|u| - t, 0): the proximal map of t |.|_1."""
    return torch.sign(u) * (u.abs() - t).clamp_min(0)


def lasso_objective(y: torch.Tensor, phi: torch.Tensor, a: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
    """1/2 |y - Phi a|^2 + sum_j lam_j |a_j| per row: y (B, D), phi (D, K), a (B, K) -> (B,)."""
    return 0.5 * (y - a @ phi.T).square().sum(1) + (lam * a.abs()).sum(1)


def ista(
    y: torch.Tensor,
    phi: torch.Tensor,
    lam: torch.Tensor | float,
    iterations: int,
    *,
    fast: bool = True,
    a0: torch.Tensor | None = None,
) -> torch.Tensor:
    """Codes (B, K) minimising :func:`lasso_objective` by ISTA or FISTA (Beck & Teboulle 2009, sec. 3-4).

    Step 1/L with L = |Phi|_2^2, the Lipschitz constant of the smooth part's gradient; ``lam`` is a
    number or one weight per atom (K,). FISTA: a_k = soft(x_k + Phi^T (y - Phi x_k) / L, lam / L),
    t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2, x_{k+1} = a_k + (t_k - 1) / t_{k+1} (a_k - a_{k-1}).
    """
    gram = phi.T @ phi  # (K, K)
    lip = float(torch.linalg.eigvalsh(gram)[-1]) if gram.numel() else 1.0
    lip = max(lip, 1e-12)
    target = y @ phi  # (B, K) Phi^T y
    a = torch.zeros(len(y), phi.shape[1], dtype=y.dtype, device=y.device) if a0 is None else a0.clone()
    x, t = a, 1.0
    for _ in range(iterations):
        new = soft_threshold(x + (target - x @ gram) / lip, lam / lip)
        if fast:
            t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
            x = new + ((t - 1) / t_next) * (new - a)
            t = t_next
        else:
            x = new
        a = new
    return a


@register_model("sparse_coding")
class SparseCoding(LatentModel):
    """Olshausen & Field's sparse coding on whitened patches; ISTA/FISTA inference (no gradients)."""

    family = "sparse coding"
    paper = (
        "Olshausen & Field 1996, Emergence of simple-cell receptive field properties by learning a sparse "
        "code for natural images (Nature 381:607-609; no arXiv)"
    )
    Config = SparseCodingConfig
    gradient_free = True
    has_encoder = True
    test_info: ClassVar[ImageInfo] = ImageInfo(channels=1, height=4, width=4, num_values=5)
    presets = {
        "tiny": {"atoms": 6, "iterations": 10},
        # 8x8 grey CIFAR patches (cifar-patches:PATH): 2x overcomplete, batches of 1,000 patches
        "patches": {
            "atoms": 128,
            "lam": 0.4,
            "iterations": 100,
            "batch_size": 1000,
            "steps": 300,
            "checkpoint_every": 100,
            "sample_every": 100,
            "log_every": 10,
            "eval_every": -1,
        },
    }

    # the dictionary (learned by block-coordinate steps, never by gradients) and buffers, made in __init__
    dictionary: nn.Parameter  # (D, K) phi, unit columns
    mean: torch.Tensor  # (D,) mu
    whiten: torch.Tensor  # (D, D) Z
    dewhiten: torch.Tensor  # (D, D) Z^-1
    code_gram: torch.Tensor  # (K, K) G
    code_cross: torch.Tensor  # (D, K) C
    code_scale: torch.Tensor  # (K,) b_j = E|a_j|
    noise: torch.Tensor  # () sigma^2 per whitened dimension
    steps_done: torch.Tensor  # () long

    def __init__(self, config: SparseCodingConfig, info):
        super().__init__(config, info)
        if info.palette is not None or info.continuous or info.num_values < 2:
            raise GenzooError("sparse_coding models grey or RGB levels (not palette indices or continuous points)")
        d, k = info.dims, config.atoms
        self.dim = d
        g = torch.Generator().manual_seed(0)
        phi = torch.randn(d, k, generator=g, dtype=F64)
        self.dictionary = nn.Parameter(phi / phi.norm(dim=0), requires_grad=False)  # (D, K) unit columns
        self.register_buffer("mean", torch.full((d,), 0.5, dtype=F64))  # (D,) mu
        self.register_buffer("whiten", torch.eye(d, dtype=F64) * math.sqrt(12))  # (D, D) Z
        self.register_buffer("dewhiten", torch.eye(d, dtype=F64) / math.sqrt(12))  # (D, D) Z^-1
        self.register_buffer("code_gram", torch.zeros(k, k, dtype=F64))  # (K, K) G
        self.register_buffer("code_cross", torch.zeros(d, k, dtype=F64))  # (D, K) C
        self.register_buffer("code_scale", torch.ones(k, dtype=F64))  # (K,) b_j = E|a_j|
        self.register_buffer("noise", torch.tensor(1.0, dtype=F64))  # sigma^2 per whitened dimension
        self.register_buffer("steps_done", torch.tensor(0, dtype=torch.long))

    @property
    def latent_dim(self) -> int:
        return int(self.config.atoms)

    # -- views -----------------------------------------------------------------------------------
    def _unit(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.info.shape:
            raise GenzooError(f"sparse_coding was built for images {self.info.shape}, got {tuple(x.shape[1:])}")
        k = self.info.num_values
        if len(x) and (x.min() < 0 or x.max() >= k):
            raise GenzooError(f"sparse_coding: image values must lie in 0-{k - 1}, got {int(x.min())}-{int(x.max())}")
        return to_unit(x.to(self.device), self.info).flatten(1).to(F64)  # (B, D)

    def whitened(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> whitened patches y = Z (v - mu), (B, D)."""
        return (self._unit(x) - self.mean) @ self.whiten.T

    def _pixels(self, y: torch.Tensor) -> torch.Tensor:
        """Whitened (B, D) -> unit values mu + Z^-1 y (B, D)."""
        return self.mean + y @ self.dewhiten.T

    def atoms(self, space: Literal["whitened", "pixel"] = "whitened") -> torch.Tensor:
        """The dictionary as K images (K, C, H, W) of floats: the atoms phi_j, or Z^-1 phi_j in pixel space."""
        phi = self.dictionary if space == "whitened" else self.dewhiten @ self.dictionary  # (D, K)
        return phi.T.reshape(-1, *self.info.shape).float()

    # -- inference -------------------------------------------------------------------------------
    def infer(self, y: torch.Tensor) -> torch.Tensor:
        """Codes (B, K) of whitened patches (B, D) by the configured solver."""
        return ista(y, self.dictionary, self.config.lam, self.config.iterations, fast=self.config.solver == "fista")

    def encode(self, x, condition=None, *, generator=None):
        self.check_condition(condition)
        with torch.no_grad():
            return self.infer(self.whitened(x)).to(torch.get_default_dtype())

    def decode_unit(self, z, condition=None):
        v = self._pixels(z.to(F64) @ self.dictionary.T).clamp(0, 1)
        return v.view(len(z), *self.info.shape).to(z.dtype)

    def prior(self, n, generator=None):
        """a_j ~ Laplace(0, b_j), by inverting the CDF at a uniform draw."""
        u = torch.rand(n, self.latent_dim, generator=generator, device=self.device, dtype=F64) - 0.5
        u = u.clamp(-0.5 + 1e-12, 0.5 - 1e-12)
        return -self.code_scale * torch.sign(u) * torch.log1p(-2 * u.abs())

    # -- learning ----------------------------------------------------------------------------------
    def _fit_whitening(self, v: torch.Tensor) -> None:
        mean = v.mean(0)
        cov = (v - mean).T @ (v - mean) / len(v)  # (D, D)
        lam, vec = torch.linalg.eigh(cov)
        lam = lam.clamp_min(0) + self.config.whiten_eps * float(lam[-1].clamp_min(1e-12))
        self.mean.copy_(mean)
        self.whiten.copy_((vec / lam.sqrt()) @ vec.T)
        self.dewhiten.copy_((vec * lam.sqrt()) @ vec.T)

    @torch.no_grad()
    def update(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        """Codes of the batch by ISTA/FISTA, then one block-coordinate pass over the atoms; the loss is the
        batch's mean LASSO objective before the dictionary step."""
        v = self._unit(batch["x"])  # (B, D)
        first = int(self.steps_done) == 0
        if first:  # whitening from the first batch, atoms at random whitened patches (torch's global RNG)
            self._fit_whitening(v)
        y = (v - self.mean) @ self.whiten.T  # (B, D)
        if first:
            pick = torch.randint(0, len(y), (self.latent_dim,))
            start = y[pick].T + 1e-3 * torch.randn(self.dim, self.latent_dim, dtype=F64, device=y.device)
            self.dictionary.copy_(start / start.norm(dim=0).clamp_min(1e-12))
        a = self.infer(y)  # (B, K)
        objective = lasso_objective(y, self.dictionary, a, self.config.lam).mean()
        residual = y - a @ self.dictionary.T
        t = int(self.steps_done) + 1
        g = t**-self.config.step_power  # 1 at the first step
        self.code_gram.mul_(1 - g).add_(g * a.T @ a / len(a))
        self.code_cross.mul_(1 - g).add_(g * y.T @ a / len(a))
        self.code_scale.mul_(1 - g).add_(g * a.abs().mean(0).clamp_min(1e-6))
        self.noise.mul_(1 - g).add_(g * residual.square().mean())
        phi, gram, cross = self.dictionary.data, self.code_gram, self.code_cross
        for j in range(self.latent_dim):
            if gram[j, j] > 1e-10:
                u = phi[:, j] + (cross[:, j] - phi @ gram[:, j]) / gram[j, j]
            else:  # an unused atom restarts at a random patch
                u = y[int(torch.randint(0, len(y), ()))] + 1e-3 * torch.randn(self.dim, dtype=F64, device=y.device)
            phi[:, j] = u / u.norm().clamp_min(1e-12)
        self.steps_done += 1
        nonzero = float((a != 0).to(F64).mean())
        return ModelOutput(
            objective,
            {"lasso": objective.item(), "active_fraction": nonzero, "residual_var": float(residual.square().mean())},
        )

    # -- sampling and completion -----------------------------------------------------------------------
    def _sample(self, n, *, generator=None, temperature=1.0, condition=None, progress=False):
        with torch.no_grad():
            a = temperature * self.prior(n, generator)  # (n, K)
            e = torch.randn(n, self.dim, generator=generator, device=self.device, dtype=F64)
            y = a @ self.dictionary.T + temperature * self.noise.sqrt() * e
            return self._images(self._pixels(y))

    def _images(self, v: torch.Tensor) -> torch.Tensor:
        return from_unit(v.view(len(v), *self.info.shape), self.info)

    def _complete(self, x, known, *, generator=None, temperature=1.0, condition=None, progress=False):
        """MAP code of the known pixels (the weighted LASSO of the module docstring), decoded, plus noise."""
        x = x.to(self.device)
        with torch.no_grad():
            v = self._unit(x)  # (B, D)
            vis = torch.as_tensor(known, device=self.device).bool().flatten().nonzero().squeeze(1)
            atoms = self.dewhiten @ self.dictionary  # (D, K) pixel-space atoms
            if len(vis):
                cov = self.noise * (self.dewhiten @ self.dewhiten.T)[vis][:, vis]  # (V, V)
                chol = torch.linalg.cholesky(cov + 1e-12 * torch.eye(len(vis), dtype=F64, device=self.device))
                r = torch.linalg.solve_triangular(chol, (v[:, vis] - self.mean[vis]).T, upper=False).T  # (B, V)
                p = torch.linalg.solve_triangular(chol, atoms[vis], upper=False)  # (V, K)
                a = ista(r, p, 1 / self.code_scale, self.config.iterations, fast=True)
            else:
                a = torch.zeros(len(v), self.latent_dim, dtype=F64, device=self.device)
            e = torch.randn(len(v), self.dim, generator=generator, device=self.device, dtype=F64)
            out = self._images(self._pixels(a @ self.dictionary.T + temperature * self.noise.sqrt() * e))
        keep = torch.as_tensor(known, device=self.device).bool().expand_as(out)
        return torch.where(keep, x.to(out.dtype), out)
