"""The deterministic autoencoder (Hinton & Salakhutdinov 2006, "Reducing the Dimensionality of Data
with Neural Networks", Science 313:504-507), and the base class of its sparse and denoising variants.

An encoder f maps the image u = to_unit(x) in [0, 1] to a code z = f(u) of D numbers; a decoder g
maps it back, u_hat = g(z) (a sigmoid output in [0, 1]; unbounded for continuous data). Training
minimises the squared reconstruction error per image, averaged over the batch:

    L = E_x ||u - g(f(u))||^2        (sum over the C' H W sub-pixels of the [0, 1] image)

The paper pretrained a deep stack of RBMs and fine-tuned by backpropagation; here the whole network
is trained by backpropagation from a random start (``mlp`` or ``conv`` bodies, :mod:`genzoo.nn.coders`).

Variants change only two hooks: ``corrupt(u)`` (the input the encoder sees while training;
:mod:`genzoo.models.autoencoders.denoising_autoencoder`) and ``penalty(z)`` (a term added to L;
:mod:`genzoo.models.autoencoders.sparse_autoencoder`), plus ``code_activation`` (sigmoid codes for the sparse one).

An autoencoder has no prior of its own. For sampling, the codes are given one after the fact
(ex-post density estimation, Ghosh et al. 2020, "From Variational to Deterministic Autoencoders",
arXiv:1903.12436): a full-covariance Gaussian N(m, S) fitted to the codes of the training
batches (of the clean images, also for the denoising variant). m and S are running statistics kept
in buffers and updated (without gradients) in every training forward pass: the newest batch gets
weight a_t = max(1 / t, ``code_momentum``), so the first 1 / momentum batches are averaged exactly
and later ones form an exponential average that follows the moving encoder. With batch mean m_b
and covariance S_b (divisor B), d = m_b - m:

    m <- m + a d,    S <- (1 - a) S + a S_b + a (1 - a) d d^T     (the two-part mixture's moments)

``prior(n)`` draws z = m + L eps, L L^T = S + jitter I (Cholesky); ``sample`` scales eps by the
temperature. Completion is MAP under x | z ~ N(g(z), s^2 I) and z ~ N(m, S), where s^2 is the
training reconstructions' mean squared error per sub-pixel (a third running statistic, same
weights): it minimises

    sum_known (u - g(z))^2 + s^2 (z - m)^T S^{-1} (z - m)       (2 s^2 times the negative log posterior)

so the pull towards typical codes is as strong as the decoder is inexact; the shared N(0, I) term
is switched off (``prior_weight = 0``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genzoo.data.continuous import to_unit, unit_channels
from genzoo.errors import GenzooError
from genzoo.models.base import LatentModel, ModelOutput, Reconstructing
from genzoo.models.registry import register_model
from genzoo.nn.coders import CoderConfig, Decoder, Encoder

JITTER = 1e-5  # added to the code covariance, times its mean variance, before the Cholesky factor


@dataclass
class AutoencoderConfig(CoderConfig):
    code_momentum: float = 0.01  # weight of the newest batch in the running code mean/covariance

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.code_momentum <= 1:
            raise ValueError(f"code_momentum must be in (0, 1], got {self.code_momentum}")


class AutoencoderBase(LatentModel, Reconstructing):
    """Encoder, decoder, squared-error loss, running code Gaussian; variants override the hooks."""

    family = "autoencoder"
    has_encoder = True
    prior_weight = 0.0  # completion uses the fitted code Gaussian (in fit_error), not N(0, I)

    # buffers (registered in __init__)
    code_count: torch.Tensor
    code_mean: torch.Tensor
    code_cov: torch.Tensor
    recon_mse: torch.Tensor

    def __init__(self, config: AutoencoderConfig, info):
        super().__init__(config, info)
        c, h, w, d = unit_channels(info), info.height, info.width, config.latent_dim
        self.encoder = Encoder(c, h, w, d, config)
        self.decoder = Decoder(d, c, h, w, config)
        self.register_buffer("code_count", torch.zeros((), dtype=torch.long))  # training batches seen
        self.register_buffer("code_mean", torch.zeros(d))  # (D,)
        self.register_buffer("code_cov", torch.eye(d))  # (D, D)
        self.register_buffer("recon_mse", torch.ones(()))  # training squared error per sub-pixel

    # -- hooks for the variants ---------------------------------------------------------------
    def code_activation(self, h: torch.Tensor) -> torch.Tensor:
        return h

    def corrupt(self, u: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The encoder's training input made from the clean image u (B, C', H, W)."""
        return u

    def penalty(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """A term added to the loss for the batch's codes (B, D), and its metrics."""
        return z.new_zeros(()), {}

    # -- networks --------------------------------------------------------------------------------
    def code(self, u: torch.Tensor) -> torch.Tensor:
        return self.code_activation(self.encoder(u))  # (B, D)

    def encode(self, x, condition=None, *, generator=None):
        self.check_condition(condition)
        return self.code(to_unit(x.to(self.device), self.info).to(self.dtype))

    def decode_unit(self, z, condition=None):
        out = self.decoder(z)  # (B, C', H, W)
        return out if self.info.continuous else torch.sigmoid(out)

    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared error per image (B,) in [0, 1] units, from the clean input."""
        u = to_unit(x.to(self.device), self.info).to(self.dtype)  # (B, C', H, W)
        return ((self.decode_unit(self.code(u)) - u) ** 2).flatten(1).mean(1)

    def loss(self, batch):
        u = to_unit(batch["x"], self.info).to(self.dtype)  # (B, C', H, W)
        seen = self.corrupt(u)
        z = self.code(seen)  # (B, D)
        sq = ((self.decode_unit(z) - u) ** 2).flatten(1).sum(1)  # (B,)
        recon = sq.mean()
        pen, metrics = self.penalty(z)
        mse = recon.detach() / u[0].numel()
        if self.training:  # the code Gaussian describes the codes of clean images, which encode() gives
            with torch.no_grad():
                self.track_codes(z if seen is u else self.code(u), mse)
        return ModelOutput(recon + pen, {"recon": recon.item(), "mse": mse.item(), **metrics})

    # -- the ex-post code Gaussian ---------------------------------------------------------------
    @torch.no_grad()
    def track_codes(self, z: torch.Tensor, mse: torch.Tensor | None = None) -> None:
        """Fold a training batch's codes (B, D) (and its reconstruction MSE) into the running statistics."""
        a = max(1.0 / (int(self.code_count) + 1), self.config.code_momentum)
        if mse is not None:
            self.recon_mse.add_(a * (mse - self.recon_mse))
        mb = z.mean(0)  # (D,)
        zc = z - mb
        cb = zc.T @ zc / len(z)  # (D, D)
        d = mb - self.code_mean
        self.code_cov.mul_(1 - a).add_(a * cb + a * (1 - a) * torch.outer(d, d))
        self.code_mean.add_(a * d)
        self.code_count += 1

    def set_code_distribution(self, z: torch.Tensor) -> None:
        """Replace the running estimate by the exact mean and covariance of the codes z (N, D)."""
        with torch.no_grad():
            self.code_mean.copy_(z.mean(0))
            zc = z - z.mean(0)
            self.code_cov.copy_(zc.T @ zc / len(z))

    def _cholesky(self) -> torch.Tensor:
        d = self.latent_dim
        cov = self.code_cov
        jitter = JITTER * cov.diagonal().mean().clamp_min(1e-8)
        chol, info = torch.linalg.cholesky_ex(cov + jitter * torch.eye(d, dtype=cov.dtype, device=cov.device))
        if int(info) != 0:
            raise GenzooError(
                f"{self.name}: the code covariance is not positive definite; the running code statistics are broken"
            )
        return chol  # (D, D) lower triangular

    def prior(self, n, generator=None, temperature: float = 1.0):
        """n codes (n, D) from the Gaussian fitted to the training codes: m + temperature * L eps."""
        eps = torch.randn(n, self.latent_dim, generator=generator, device=self.device, dtype=self.dtype)
        return self.code_mean + temperature * eps @ self._cholesky().T

    def prior_energy(self, z: torch.Tensor) -> torch.Tensor:
        """(z - m)^T S^{-1} (z - m) / 2 per code (B,)."""
        y = torch.linalg.solve_triangular(self._cholesky(), (z - self.code_mean).T, upper=False)  # (D, B)
        return 0.5 * (y * y).sum(0)

    def fit_error(self, z, x, known, condition=None):
        """Squared error on the known sub-pixels + 2 s^2 * the code Gaussian's energy (see the module doc)."""
        return super().fit_error(z, x, known, condition) + 2 * self.recon_mse * self.prior_energy(z)

    def _sample(self, n, *, generator=None, temperature=1.0, condition=None, progress=False):
        with torch.no_grad():
            return self.decode(self.prior(n, generator, temperature))


AUTOENCODER_PRESETS: dict[str, dict] = {
    "tiny": {"arch": "mlp", "hidden": (8,), "latent_dim": 2, "batch_size": 8, "lr": 1e-2},
    # The paper's MNIST encoder widths 1000-500-250-30 (ReLU here, no RBM pretraining).
    "mlp": {"arch": "mlp", "hidden": (1000, 500, 250), "latent_dim": 30, "batch_size": 64, "lr": 1e-3},
    "conv": {"arch": "conv", "channels": (32, 64), "hidden": (256,), "latent_dim": 32, "batch_size": 64, "lr": 1e-3},
    "fashion": {
        "arch": "conv",
        "channels": (16, 32, 64),
        "hidden": (256,),
        "latent_dim": 32,
        "batch_size": 64,
        "lr": 1e-3,
    },
}


@register_model("autoencoder")
class Autoencoder(AutoencoderBase):
    """The plain autoencoder: squared reconstruction error, nothing else."""

    paper = "Hinton & Salakhutdinov 2006, Reducing the Dimensionality of Data with Neural Networks, Science 313:504"
    Config = AutoencoderConfig
    presets = AUTOENCODER_PRESETS
