"""The variational autoencoder (Kingma & Welling 2013, "Auto-Encoding Variational Bayes",
arXiv:1312.6114).

Generative model: z ~ p(z) = N(0, I) (D numbers), x | z ~ p_theta(x | z), one likelihood head of
:mod:`genzoo.nn.decoders` per sub-pixel (Bernoulli, categorical, discretized Gaussian or logistic),
independent given z. Inference model: q_phi(z | x) = N(mu(x), diag sigma(x)^2), the encoder reading
``to_unit(x)``; sigma = softplus(.) + 1e-4.

Training maximises the evidence lower bound per image (eq. 3), estimated with one draw of z and the
KL in closed form (the second SGVB estimator, sec. 2.3, written out for this Gaussian case in sec. 3):

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || N(0, I)) <= log p(x),
    z = mu + sigma * eps, eps ~ N(0, I)                          (reparameterisation, sec. 2.4)
    KL = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)      (closed form, Appendix B)

The loss is -(log p(x | z) - beta_t KL), averaged over the batch, with beta_t = beta * min(1, t / W)
after t training forward passes (a KL warm-up over W = ``kl_warmup_steps`` passes, counted in a
buffer so a resumed run continues the ramp exactly). The logged ``nll_nats`` is always -ELBO with
beta = 1 (a one-draw estimate of an upper bound on the NLL), in the units of the autoregressive
models' exact NLL.

``log_prob(x)`` is the one-sample ELBO (``likelihood = "bound"``). Out of training mode, and with no
generator given, its eps comes from a fixed seed, so evaluation is reproducible.
``log_weights(x, k)`` gives log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x), z_i ~ q, for the
IWAE bound and the importance-sampled log p(x) of Burda, Grosse & Salakhutdinov 2015
(arXiv:1509.00519), see :mod:`genzoo.metrics.importance`.

As a :class:`~genzoo.models.base.LatentModel`: ``encode`` = mu(x), ``decode_unit`` = the head's
mean image, ``decode`` = the head's most likely image (for palette data: the palette colour nearest
the expected RGB, so pictures keep the data's colours), and ``fit_error`` = -log p(x_known | z), so
``complete`` fits the code to the visible pixels under the likelihood (MAP with the N(0, I) prior).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genzoo.data.continuous import from_unit, to_unit, unit_channels
from genzoo.models.base import (
    ImportanceWeighted,
    LatentModel,
    LikelihoodModel,
    ModelOutput,
)
from genzoo.models.registry import register_model
from genzoo.nn.coders import CoderConfig, Decoder, Encoder
from genzoo.nn.decoders import HeadName, make_head
from genzoo.nn.gaussian import gaussian_kl, reparameterize

SIGMA_FLOOR = 1e-4
EVAL_SEED = 0  # eps of log_prob in eval mode when no generator is given
LOG_2PI = math.log(2 * math.pi)


@dataclass
class VAEConfig(CoderConfig):
    decoder: HeadName = "auto"  # bernoulli (K = 2), categorical (palette), logistic (other K), gaussian (continuous)
    beta: float = 1.0  # weight of the KL term in the training loss (the logged NLL always uses 1)
    kl_warmup_steps: int = 0  # beta ramps linearly from 0 over this many training forward passes

    def __post_init__(self):
        super().__post_init__()
        if self.decoder not in ("auto", "bernoulli", "categorical", "gaussian", "logistic"):
            raise ValueError(
                f"decoder must be auto, bernoulli, categorical, gaussian or logistic, got {self.decoder!r}"
            )
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if self.kl_warmup_steps < 0:
            raise ValueError(f"kl_warmup_steps must be >= 0, got {self.kl_warmup_steps}")


@register_model("vae")
class VAE(LatentModel, LikelihoodModel, ImportanceWeighted):
    """Gaussian encoder, N(0, I) prior, a likelihood head over the discrete values."""

    family = "vae"
    paper = "Kingma & Welling 2013, Auto-Encoding Variational Bayes, arXiv:1312.6114"
    likelihood = "bound"
    has_encoder = True
    prior_weight = 1.0  # fit_error is -log p(x_known | z): with |z|^2 / 2 completion is the MAP code
    Config = VAEConfig
    weights_budget = 2**22  # decoder outputs per chunk in log_weights (bounds memory)
    presets = {
        "tiny": {"arch": "mlp", "hidden": (8,), "latent_dim": 2, "batch_size": 8, "lr": 1e-2},
        # The lecture's VAE: a 10-number code for the Pokemon sprites, a softmax over the 167 colours.
        "lecture": {
            "arch": "conv",
            "channels": (32, 64),
            "hidden": (256,),
            "latent_dim": 10,
            "decoder": "categorical",
            "kl_warmup_steps": 500,
            "batch_size": 64,
            "lr": 1e-3,
        },
        # Burda et al. 2015's one-stochastic-layer net: 784-200-200-50, tanh; Adam, batches of 20.
        # (decoder "auto" is their Bernoulli on binarized MNIST.)
        "mnist": {
            "arch": "mlp",
            "hidden": (200, 200),
            "activation": "tanh",
            "latent_dim": 50,
            "decoder": "auto",
            "batch_size": 20,
            "lr": 1e-3,
        },
        # A conv VAE for binarized MNIST (Bernoulli via "auto"), sized for a CPU (~400k weights, narrow
        # full-resolution layers): 28 -> 14 -> 7 -> 3.
        "mnist_conv": {
            "arch": "conv",
            "channels": (16, 32, 64),
            "hidden": (256,),
            "latent_dim": 32,
            "decoder": "auto",
            "kl_warmup_steps": 2000,
            "batch_size": 64,
            "lr": 1e-3,
        },
        # Fashion-MNIST (256 grey levels): discretized logistic per pixel.
        "fashion": {
            "arch": "conv",
            "channels": (16, 32, 64),
            "hidden": (256,),
            "latent_dim": 32,
            "decoder": "logistic",
            "kl_warmup_steps": 2000,
            "batch_size": 64,
            "lr": 1e-3,
        },
    }

    forward_passes: torch.Tensor  # buffer (registered in __init__): training loss calls so far

    def __init__(self, config: VAEConfig, info):
        super().__init__(config, info)
        self.head = make_head(config.decoder, info)
        h, w = info.height, info.width
        self.encoder = Encoder(unit_channels(info), h, w, 2 * config.latent_dim, config)
        self.decoder = Decoder(config.latent_dim, info.channels * self.head.param_channels, h, w, config)
        self.register_buffer("forward_passes", torch.zeros((), dtype=torch.long))  # training loss calls so far

    # -- the two networks ----------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x) = N(mu, diag sigma^2): images (B, C, H, W) -> mu, sigma (B, D)."""
        mu, raw = self.encoder(to_unit(x, self.info).to(self.dtype)).chunk(2, dim=1)  # (B, D) each
        return mu, F.softplus(raw) + SIGMA_FLOOR

    def decoder_params(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, C * P, H, W)

    # -- the bound ------------------------------------------------------------------------------
    def beta_now(self) -> float:
        """beta_t = beta * min(1, t / W) after t training forward passes (beta when W = 0)."""
        w = self.config.kl_warmup_steps
        return self.config.beta if w == 0 else self.config.beta * min(1.0, int(self.forward_passes) / w)

    def elbo_terms(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """One-sample log p(x | z) and the closed-form KL, each (B,)."""
        mu, sigma = self.posterior(x)
        z, _ = reparameterize(mu, sigma, generator)  # (B, D)
        return self.head.log_prob(self.decoder_params(z), x), gaussian_kl(mu, sigma)

    def log_prob(self, x, condition=None, *, generator: torch.Generator | None = None):
        """The ELBO per image (B,), a lower bound on log p(x) in nats (one draw of z per image)."""
        self.check_condition(condition)
        if generator is None and not self.training:
            generator = torch.Generator(device=x.device).manual_seed(EVAL_SEED)
        recon, kl = self.elbo_terms(x, generator)
        return recon - kl

    def loss(self, batch):
        x = batch["x"]
        beta = self.beta_now()
        if self.training:
            with torch.no_grad():
                self.forward_passes += 1
        recon, kl = self.elbo_terms(x)  # (B,) each; eps from the global RNG
        loss = -(recon - beta * kl).mean()
        nll = -(recon - kl).mean().item()
        return ModelOutput(
            loss,
            {
                "nll_nats": nll,
                "bits_per_dim": nll / (self.info.dims * math.log(2)),
                "kl": kl.mean().item(),
                "recon": -recon.mean().item(),
                "beta": beta,
            },
        )

    def log_weights(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x), z_i ~ q(z | x): (k, B).

        Decoded in chunks of draws so that one decoder call holds at most ``weights_budget`` outputs;
        the draws themselves do not depend on the chunk size.
        """
        b, d = len(x), self.latent_dim
        mu, sigma = self.posterior(x)  # (B, D)
        per_draw = b * self.info.channels * self.head.param_channels * self.info.height * self.info.width
        chunk = max(1, self.weights_budget // per_draw)
        out = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            eps = torch.stack(
                [torch.randn((b, d), generator=generator, device=mu.device, dtype=mu.dtype) for _ in range(m)]
            )  # (m, B, D): one call per draw, so chunking never changes them
            z = mu + sigma * eps  # (m, B, D)
            params = self.decoder_params(z.reshape(m * b, d))  # (m*B, C*P, H, W)
            log_px = self.head.log_prob(params, x.repeat(m, *([1] * (x.ndim - 1)))).view(m, b)
            log_pz = -0.5 * (z * z).sum(-1) - 0.5 * d * LOG_2PI  # (m, B)
            log_qz = -0.5 * (eps * eps).sum(-1) - torch.log(sigma).sum(-1) - 0.5 * d * LOG_2PI
            out.append(log_px + log_pz - log_qz)
        return torch.cat(out)  # (k, B)

    # -- the latent-model contract -------------------------------------------------------------
    def encode(self, x, condition=None, *, generator=None):
        """mu(x), the posterior mean (B, D)."""
        self.check_condition(condition)
        return self.posterior(x.to(self.device))[0]

    def decode_unit(self, z, condition=None):
        return self.head.mean_unit(self.decoder_params(z))  # (B, C', H, W)

    def decode(self, z, condition=None):
        params = self.decoder_params(z)
        if self.info.palette is not None:
            # palette data: the palette colour nearest each pixel's expected RGB under the categorical (the
            # most likely of 167 indices is, where the decoder is unsure, the commonest outline grey)
            return from_unit(self.head.mean_unit(params), self.info)  # (B, 1, H, W)
        return self.head.mode(params)  # (B, C, H, W): the most likely image

    def fit_error(self, z, x, known, condition=None):
        return -self.head.log_prob(self.decoder_params(z), x, known)  # (B,)

    def diagnose(self, record):
        kl, step = record.get("kl"), record.get("step", 0)
        if kl is not None and kl < 0.1 and step > self.config.kl_warmup_steps + 500:
            return [
                f"KL(q || p) is {kl:.3g} nats: the posterior has collapsed onto the prior and the decoder "
                "ignores the code (try kl_warmup_steps or a smaller beta)"
            ]
        return []
