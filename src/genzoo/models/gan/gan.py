"""Generative adversarial nets (Goodfellow, Pouget-Abadie, Mirza, Xu, Warde-Farley, Ozair, Courville &
Bengio 2014, "Generative Adversarial Nets", arXiv:1406.2661) -- the generic two-player model every GAN
in genzoo is, plus the registered ``gan`` (fully connected nets, as in the paper).

The game (eq. 1): min_G max_D E_x log D(x) + E_z log(1 - D(G(z))), z ~ N(0, I). Training follows
Algorithm 1: each round the trainer makes ``d_steps`` (the paper's k) discriminator updates, then one
generator update, each on a fresh batch; this class only says what each player's loss is. Which loss
is a config key (``loss``, the named pieces of :mod:`genzoo.losses.gan`): ``minimax`` uses eq. 1
itself for G, ``non_saturating`` the -log D(G(z)) of Sec. 3, and the Wasserstein, hinge and energy
losses turn this class into WGAN, WGAN-GP, a hinge GAN or EBGAN without a second copy of anything.
Regularisers are options of the same class: weight clipping (``clip``: every discriminator weight is
clamped to [-c, c] after each of its updates), the gradient penalty (``loss=wgan_gp``, ``gp_weight``),
minibatch features in D (``minibatch_features``) and an unrolled discriminator for G's loss
(``unrolled_steps``, Metz et al. 2016, see :meth:`GAN.unrolled_discriminator`).

Pixels. Real images enter D as to_unit(x) * 2 - 1 in [-1, 1]; G ends in tanh and its image in [0, 1]
is (G(z) + 1) / 2 (``decode_unit``), rounded to the data's levels or nearest palette colour by
``decode``. Continuous data (``info.num_values == 0``: the 2-D mixtures) is used as is and G's output
is linear; ``decode`` returns G(z) unchanged. Sampling, completion and inversion (``encode``: GANs
have no encoder, so z is fitted to the image by gradient descent) come from
:class:`~genzoo.models.base.LatentModel`; sampling runs G with batch norm in eval mode.

Metrics, logged per update as ``discriminator/<name>`` and ``generator/<name>``:

* ``d_real``, ``d_fake`` -- mean D output on the real / fake batch: a probability sigmoid(logit) for the
  logistic and hinge losses, the raw critic value for the Wasserstein ones, the mean energy for EBGAN;
* ``wasserstein`` -- E f(x) - E f(G(z)), the critic's distance estimate (Wasserstein losses only);
* ``gp`` -- the gradient penalty before its weight (``wgan_gp`` only);
* generator only: ``g_grad_norm`` -- the mean over the fake batch of ||d l_i / d G(z)_i||, the
  gradient of sample i's own loss term w.r.t. its image (B times the gradient of the batch mean);
  it vanishes when a logistic D rejects the fakes with a saturating G loss; and ``sample_spread`` --
  the mean pairwise distance within the fake batch over the same for the real batch (1 when spread
  alike, 0 when every fake is the same point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn
from torch.func import functional_call

from genzoo.data.continuous import to_unit, unit_channels
from genzoo.errors import GenzooError
from genzoo.losses.gan import (
    LOSSES,
    LossName,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    pulling_away,
)
from genzoo.models.base import AdversarialModel, LatentModel, ModelOutput
from genzoo.models.registry import register_model
from genzoo.nn.gan_nets import (
    ConvAutoencoder,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPAutoencoder,
    MLPDiscriminator,
    MLPGenerator,
    calibrate_batch_norm,
)

D_WINS_PROB = 0.01  # diagnose(): D(G(z)) below this ...
TINY_GRAD = 1e-3  # ... with g_grad_norm below this: the discriminator wins outright
COLLAPSE_SPREAD = 0.1  # diagnose(): sample_spread below this: the samples collapse


@dataclass
class GANConfig:
    latent_dim: int = 100
    loss: LossName = "non_saturating"
    arch: Literal["mlp", "conv"] = "mlp"  # fully connected nets, or DCGAN's convolutional ones
    g_hidden: tuple[int, ...] = (256, 256)  # arch=mlp: G's hidden layer widths
    d_hidden: tuple[int, ...] = (256, 256)  # arch=mlp: D's hidden widths (EBGAN: encoder widths; code = last)
    base_channels: int = 64  # arch=conv: channels of the level next to the image (doubling inwards, up to 8x)
    # arch=conv: normalisation in D after its first layer; auto = batch norm (DCGAN), or layer norm
    # with loss=wgan_gp, whose per-sample gradient penalty batch norm would couple across the batch
    d_norm: Literal["auto", "batch", "layer", "none"] = "auto"
    d_steps: int = 1  # discriminator updates per generator update (k of Algorithm 1)
    clip: float = 0.0  # > 0: clamp every discriminator weight to [-clip, clip] after each D update (WGAN)
    gp_weight: float = 10.0  # lambda of the WGAN-GP penalty (loss=wgan_gp)
    margin: float = 1.0  # EBGAN's margin m, in units of mean squared error per sub-pixel in [-1, 1]
    pt_weight: float = 0.0  # EBGAN's pulling-away term weight in G's loss
    minibatch_features: int = 0  # > 0: minibatch discrimination with this many kernels before D's output
    unrolled_steps: int = 0  # > 0: G's loss through this many differentiable D steps (Metz et al. 2016)
    unrolled_lr: float = 0.01  # step size of the unrolled (plain gradient descent) D steps
    # The players' optimiser. None: the trainer's own setting (optimizer, lr, beta1/beta2) is used;
    # when set (the paper's values in dcgan, wgan, wgan_gp, ebgan), these win over the trainer's keys.
    optim: Literal["adam", "rmsprop", "sgd"] | None = None
    d_lr: float | None = None
    g_lr: float | None = None
    betas: tuple[float, float] | None = None  # Adam's (beta1, beta2); the momentum is beta1 for sgd

    def __post_init__(self):
        self.g_hidden = tuple(int(h) for h in self.g_hidden)
        self.d_hidden = tuple(int(h) for h in self.d_hidden)
        if self.betas is not None:
            self.betas = tuple(float(b) for b in self.betas)
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; valid: {', '.join(LOSSES)}")
        if self.arch not in ("mlp", "conv"):
            raise ValueError(f"arch must be mlp or conv, got {self.arch!r}")
        if self.d_norm not in ("auto", "batch", "layer", "none"):
            raise ValueError(f"d_norm must be auto, batch, layer or none, got {self.d_norm!r}")
        if self.optim not in (None, "adam", "rmsprop", "sgd"):
            raise ValueError(f"optim must be adam, rmsprop, sgd or none, got {self.optim!r}")
        if self.latent_dim < 1 or self.base_channels < 1 or self.d_steps < 1:
            raise ValueError("latent_dim, base_channels and d_steps must be >= 1")
        if not self.g_hidden or not self.d_hidden or min(self.g_hidden + self.d_hidden) < 1:
            raise ValueError("g_hidden and d_hidden need at least one width, each >= 1")
        for key in ("clip", "gp_weight", "pt_weight", "minibatch_features", "unrolled_steps"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.margin <= 0 or self.unrolled_lr <= 0:
            raise ValueError("margin and unrolled_lr must be > 0")
        for key in ("d_lr", "g_lr"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                raise ValueError(f"{key} must be > 0 (or none for the trainer's lr)")
        if self.betas is not None and (len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas)):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.loss == "wgan_gp" and self.arch == "conv" and self.d_norm == "batch":
            raise ValueError(
                "loss=wgan_gp penalises each sample's gradient, which batch norm couples "
                "across the batch: set d_norm=layer or none"
            )
        if self.minibatch_features and self.loss in ("wgan_gp", "ebgan"):
            raise ValueError(
                f"minibatch_features does not combine with loss={self.loss} "
                "(a per-sample penalty / an autoencoder discriminator)"
            )

    @property
    def norm(self) -> str:
        """The discriminator's normalisation with ``auto`` resolved."""
        if self.d_norm != "auto":
            return self.d_norm
        return "layer" if self.loss == "wgan_gp" else "batch"


@register_model("gan")
class GAN(AdversarialModel, LatentModel):
    """The two-player model: a generator, a discriminator and a named loss; fully connected by default."""

    family = "gan"
    paper = (
        "Goodfellow, Pouget-Abadie, Mirza, Xu, Warde-Farley, Ozair, Courville & Bengio 2014, "
        "Generative Adversarial Nets, arXiv:1406.2661"
    )
    Config: ClassVar[type[GANConfig]] = GANConfig
    players: ClassVar[tuple[str, ...]] = ("discriminator", "generator")
    player_modules: ClassVar[dict[str, str]] = {"discriminator": "discriminator", "generator": "generator"}
    presets = {
        "tiny": {"latent_dim": 4, "g_hidden": (16,), "d_hidden": (16,), "batch_size": 8, "lr": 1e-3},
        # The 2-D mixtures (after Metz et al. 2016, Appendix A): 256-d z, 128-unit layers (two in G,
        # two LeakyReLU ones in D), Adam(1e-4, beta1 = 0.5), batches of 512, one D update per G update.
        "ring": {
            "latent_dim": 256,
            "g_hidden": (128, 128),
            "d_hidden": (128, 128),
            "loss": "non_saturating",
            "optim": "adam",
            "d_lr": 1e-4,
            "g_lr": 1e-4,
            "betas": (0.5, 0.999),
            "batch_size": 512,
        },
        "grid": {
            "latent_dim": 256,
            "g_hidden": (128, 128),
            "d_hidden": (128, 128),
            "loss": "non_saturating",
            "optim": "adam",
            "d_lr": 1e-4,
            "g_lr": 1e-4,
            "betas": (0.5, 0.999),
            "batch_size": 512,
        },
        # Fully connected nets on 28x28 images, in the spirit of the paper's MNIST model.
        "mnist": {
            "latent_dim": 100,
            "g_hidden": (256, 512),
            "d_hidden": (512, 256),
            "optim": "adam",
            "d_lr": 2e-4,
            "g_lr": 2e-4,
            "betas": (0.5, 0.999),
            "batch_size": 64,
        },
    }

    def __init__(self, config: GANConfig, info):
        super().__init__(config, info)
        self.shape = (unit_channels(info), info.height, info.width)  # what G draws and D reads
        try:
            self.generator = self.build_generator()
            self.discriminator = self.build_discriminator()
        except GenzooError as e:
            raise GenzooError(f"{self.name}: {e}") from None
        # G's batch norm starts from the statistics of its real input distribution, the prior (drawn
        # from a fixed private seed: building a model consumes no more global randomness than its init).
        z = torch.randn(256, config.latent_dim, generator=torch.Generator().manual_seed(0))  # (256, D)
        calibrate_batch_norm(self.generator, z)

    # -- networks -------------------------------------------------------------------------------------
    @property
    def squash(self) -> bool:
        """G ends in tanh for images in [-1, 1]; it is linear for continuous data."""
        return not self.info.continuous

    def build_generator(self) -> nn.Module:
        cfg = self.config
        if cfg.arch == "conv":
            return DCGANGenerator(cfg.latent_dim, self.shape, cfg.base_channels, tanh=self.squash)
        return MLPGenerator(cfg.latent_dim, self.shape, cfg.g_hidden, tanh=self.squash)

    def build_discriminator(self) -> nn.Module:
        """One output per image (B,): a logit, a critic value, or (loss=ebgan) an autoencoder's energy."""
        cfg = self.config
        if cfg.loss == "ebgan":
            if cfg.arch == "conv":
                return ConvAutoencoder(self.shape, cfg.base_channels, cfg.norm)
            return MLPAutoencoder(self.shape, cfg.d_hidden)
        if cfg.arch == "conv":
            return DCGANDiscriminator(self.shape, cfg.base_channels, cfg.norm, cfg.minibatch_features)
        return MLPDiscriminator(self.shape, cfg.d_hidden, cfg.minibatch_features)

    # -- pixels ---------------------------------------------------------------------------------------
    def real_input(self, x: torch.Tensor) -> torch.Tensor:
        """Data (B, C, H, W) -> what D reads: [-1, 1] floats for images, the values for continuous data."""
        if self.info.continuous:
            return x.to(self.dtype)
        return to_unit(x, self.info).to(self.dtype) * 2 - 1  # (B, C', H, W)

    def decode_unit(self, z, condition=None):
        self.check_condition(condition)
        y = self.generator(z)  # (B, C', H, W)
        return y if self.info.continuous else (y + 1) / 2

    def _sample(self, n, *, generator=None, temperature=1.0, condition=None, progress=False):
        was_training = self.training
        self.eval()  # batch norm from its running statistics: a sample does not depend on its batch
        try:
            return super()._sample(n, generator=generator, temperature=temperature, condition=condition)
        finally:
            self.train(was_training)

    # -- training -------------------------------------------------------------------------------------
    @property
    def schedule(self) -> dict[str, int]:
        return {"discriminator": self.config.d_steps, "generator": 1}

    def optimizer_overrides(self, player: str) -> dict:
        cfg = self.config
        out: dict = {}
        if cfg.optim is not None:
            out["optimizer"] = cfg.optim
        lr = cfg.d_lr if player == "discriminator" else cfg.g_lr
        if lr is not None:
            out["lr"] = lr
        if cfg.betas is not None:
            out["beta1"], out["beta2"] = cfg.betas
        return out

    def after_update(self, player: str) -> None:
        if player == "discriminator" and self.config.clip > 0:
            with torch.no_grad():
                for p in self.discriminator.parameters():
                    p.clamp_(-self.config.clip, self.config.clip)

    @property
    def gan_loss(self):
        return LOSSES[self.config.loss]

    def discriminate(self, x: torch.Tensor, params: dict | None = None, **kwargs):
        """D(x) (B,) with its own weights, or with ``params`` (names -> tensors) in their place."""
        if params is None:
            return self.discriminator(x, **kwargs)
        return functional_call(self.discriminator, params, (x,), kwargs)

    def discriminator_objective(self, real: torch.Tensor, fake: torch.Tensor, params: dict | None = None):
        """D's loss on a real and a fake batch (both in D's input space) -> (loss, d(real), d(fake), gp)."""
        cfg = self.config
        out_real, out_fake = self.discriminate(real, params), self.discriminate(fake, params)  # (B,), (B,)
        loss = discriminator_loss(cfg.loss, out_real, out_fake, margin=cfg.margin)
        gp = None
        if self.gan_loss.penalty:
            gp = gradient_penalty(lambda x: self.discriminate(x, params), real, fake).penalty
            loss = loss + cfg.gp_weight * gp
        return loss, out_real, out_fake, gp

    def generator_objective(self, fake: torch.Tensor, params: dict | None = None):
        """G's loss for a fake batch under D (or D with ``params``) -> (loss, d(fake))."""
        cfg = self.config
        if cfg.loss == "ebgan":
            energy, code = self.discriminate(fake, params, return_code=True)  # (B,), (B, K)
            loss = generator_loss(cfg.loss, energy)
            if cfg.pt_weight > 0:
                loss = loss + cfg.pt_weight * pulling_away(code)
            return loss, energy
        out = self.discriminate(fake, params)  # (B,)
        return generator_loss(cfg.loss, out), out

    def unrolled_discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> dict:
        """D's weights after ``unrolled_steps`` gradient steps on (real, fake), as a function of ``fake``.

        Metz et al. 2016 (arXiv:1611.02163, Sec. 2): theta_D^{k+1} = theta_D^k - eta dL_D(theta_G,
        theta_D^k)/d theta_D^k, built with ``create_graph=True`` so that G's loss
        L_G(theta_G, theta_D^K) is differentiated through all K steps (theta_G reaches theta_D^K through
        ``fake``). The same real and fake batches serve every step. D's own weights are not changed:
        the steps act on a detached copy (and a copy of its batch-norm statistics); the trainer then
        updates D normally.
        """
        params = {n: p.detach().requires_grad_(True) for n, p in self.discriminator.named_parameters()}
        buffers = {n: b.clone() for n, b in self.discriminator.named_buffers()}
        names = list(params)
        for _ in range(self.config.unrolled_steps):
            loss = self.discriminator_objective(real, fake, {**params, **buffers})[0]
            grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=True)
            params = {n: params[n] - self.config.unrolled_lr * g for n, g in zip(names, grads)}
        return {**params, **buffers}

    def player_loss(self, player, batch):
        real = self.real_input(batch["x"])  # (B, C', H, W)
        z = self.prior(len(real))  # (B, D): the global RNG, which the trainer seeds and checkpoints
        if player == "discriminator":
            with torch.no_grad():
                fake = self.generator(z)  # (B, C', H, W)
            loss, out_real, out_fake, gp = self.discriminator_objective(real, fake)
            if not self.log_metrics:  # a round the trainer does not log
                return ModelOutput(loss)
            metrics = {"d_real": self._shown(out_real), "d_fake": self._shown(out_fake)}
            if self.gan_loss.output == "critic":
                metrics["wasserstein"] = (out_real.mean() - out_fake.mean()).item()
            if gp is not None:
                metrics["gp"] = gp.item()
            return ModelOutput(loss, metrics)
        if player != "generator":
            raise GenzooError(f"{self.name} has players discriminator and generator, not {player!r}")
        fake = self.generator(z)  # (B, C', H, W)
        params = self.unrolled_discriminator(real, fake) if self.config.unrolled_steps else None
        loss, out_fake = self.generator_objective(fake, params)
        if not self.log_metrics:  # a round the trainer does not log: no extra gradient, no pairwise distances
            return ModelOutput(loss)
        (grad,) = torch.autograd.grad(loss, fake, retain_graph=True)  # (B, C', H, W)
        metrics = {
            "d_fake": self._shown(out_fake),
            "g_grad_norm": (grad.flatten(1).norm(dim=1).mean() * len(fake)).item(),
            "sample_spread": sample_spread(fake.detach(), real),
        }
        return ModelOutput(loss, metrics)

    def _shown(self, out: torch.Tensor) -> float:
        """Mean D output as logged: a probability for logits, else the raw value."""
        return (torch.sigmoid(out) if self.gan_loss.output == "logit" else out).mean().item()

    def diagnose(self, record):
        """Warnings about a logged record:

        * "discriminator wins outright" when D(G(z)) < 0.01 (``d_fake`` as a probability, so only for
          the logistic and hinge losses) while ``g_grad_norm`` < 1e-3: the generator gets no signal;
        * "samples collapse" when ``sample_spread`` < 0.1: fakes lie within a tenth of the real
          batch's mean pairwise distance of each other.
        """
        out = []
        d_fake = record.get("discriminator/d_fake", record.get("generator/d_fake"))
        grad = record.get("generator/g_grad_norm")
        if (
            self.gan_loss.output == "logit"
            and d_fake is not None
            and grad is not None
            and d_fake < D_WINS_PROB
            and grad < TINY_GRAD
        ):
            out.append(
                f"discriminator wins outright: D(G(z)) < {D_WINS_PROB} and the generator's gradient norm "
                f"< {TINY_GRAD}; try loss=non_saturating, fewer d_steps or a lower d_lr"
            )
        spread = record.get("generator/sample_spread")
        if spread is not None and spread < COLLAPSE_SPREAD:
            out.append(
                f"samples collapse (or have not spread out yet): the fakes are spread less than "
                f"{COLLAPSE_SPREAD} times as much as the real batch (generator/sample_spread); "
                "try minibatch_features, unrolled_steps or another loss"
            )
        return out


def sample_spread(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Mean pairwise Euclidean distance within ``fake`` over the same within ``real`` (NaN below 2 each)."""
    if len(fake) < 2 or len(real) < 2:
        return math.nan
    d_fake = torch.pdist(fake.flatten(1).double()).mean()
    d_real = torch.pdist(real.detach().flatten(1).double()).mean()
    return (d_fake / d_real.clamp_min(1e-12)).item()
