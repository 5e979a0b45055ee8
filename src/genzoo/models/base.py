"""The contracts every genzoo model meets.

* :class:`GenerativeModel` -- built from ``(config, info)``; ``sample(n, ...)`` and
  ``complete(x, known, ...)`` with the same argument names in every family.
* :class:`LikelihoodModel` -- the loss is an exact (``likelihood = "exact"``) or bounded
  (``"bound"``) negative log-likelihood in nats; ``log_prob(x)`` gives it per image.
* :class:`LatentModel` -- images from a code, x = decode(z): autoencoders, VAEs, GANs. They
  share sampling from the prior, completion and inversion by fitting z to the visible pixels
  (:mod:`genzoo.sampling.latent`), traversal and interpolation.
* :class:`AdversarialModel` -- several players, one loss each; the trainer owns the
  optimiser steps and runs ``schedule[player]`` updates of each player per round (the k:1
  schedule of Goodfellow et al. 2014, Algorithm 1).

A model that is not fitted by gradients (a Gaussian mixture by EM) sets ``gradient_free``
and gives ``update(batch)``; the trainer then calls it instead of an optimiser step.

A likelihood model is the one-player case (player ``"model"``), so the trainer has a
single loop for every family.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.data.base import position
from genzoo.data.continuous import from_unit, to_unit, unit_channels
from genzoo.errors import GenzooError
from genzoo.sampling.autoregressive import sample_raster
from genzoo.sampling.latent import fit_codes


@dataclass
class ModelOutput:
    """A loss to minimise plus named scalar metrics for logs (nats, bits/dim, D(x), ...)."""

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


class TrainableModel(nn.Module):
    """Anything the trainer trains: built from ``(config, info)``, one loss per player.

    Generative models (:class:`GenerativeModel`) are one kind; feature networks such as the
    classifier (:mod:`genzoo.models.classifier`) are another: trained and evaluated, never sampled.
    """

    name: ClassVar[str] = "?"
    family: ClassVar[str] = "?"
    paper: ClassVar[str] = ""
    Config: ClassVar[type]
    presets: ClassVar[dict[str, dict]] = {}
    players: ClassVar[tuple[str, ...]] = ("model",)
    gradient_free: ClassVar[bool] = False  # True: the trainer calls update(batch), no optimiser
    can_sample: ClassVar[bool] = False  # True for generative models (sample / complete)
    # True: trains on data whose training labels are partly hidden (``--labels-per-class``)
    takes_partial_labels: ClassVar[bool] = False
    # False while the trainer runs a round whose record is not logged: a loss then may skip the numbers it
    # only computes for the log (diagnostics that cost extra passes, .item() syncs); the loss itself is the same
    log_metrics: bool = True

    def __init__(self, config, info):
        super().__init__()
        self.config = config
        self.info = info

    # -- training -------------------------------------------------------------------------
    @property
    def schedule(self) -> dict[str, int]:
        """Updates per round for each player, in order (k discriminator steps, then 1)."""
        return {p: 1 for p in self.players}

    def player_parameters(self, player: str) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def player_loss(self, player: str, batch: dict[str, torch.Tensor]) -> ModelOutput:
        return self.loss(batch)

    def after_update(self, player: str) -> None:
        """Hook run after each optimiser step of ``player`` (e.g. WGAN weight clipping)."""

    def optimizer_overrides(self, player: str) -> dict:
        """Optimiser settings of ``player`` that differ from the trainer's (e.g. a GAN's two learning rates)."""
        return {}

    def lr_scale(self, step: int, total: int) -> float:
        """Factor on every player's learning rate for round ``step`` (0-based) of ``total`` (e.g. CycleGAN's
        linear decay); 1.0 keeps the optimisers' own rates."""
        return 1.0

    def loss(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        raise NotImplementedError(f"{type(self).__name__} must define loss() or player_loss()")

    def update(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        """One closed-form fitting step (e.g. EM) for ``gradient_free`` models; ``loss`` is for the log."""
        raise NotImplementedError(f"{type(self).__name__} sets gradient_free but has no update()")

    def diagnose(self, record: dict[str, float]) -> list[str]:
        """Warnings about a logged training record (e.g. a GAN's discriminator winning outright)."""
        return []

    @property
    def conditional(self) -> bool:
        """True when the model is built to take a class label (``config.conditional``)."""
        return bool(getattr(self.config, "conditional", False))

    def default_condition(self, n: int) -> torch.Tensor | None:
        """Labels for ``n`` samples when none are asked for: every class in turn (None if unconditional)."""
        return torch.arange(n) % self.info.num_classes if self.conditional else None

    def check_condition(self, condition) -> None:
        if condition is not None and not self.conditional:
            raise GenzooError(f"model {self.name!r} is unconditional; it takes no condition")
        if condition is not None:
            k = self.info.num_classes
            bad: torch.Tensor | list[int] = (
                condition[(condition < 0) | (condition >= k)] if torch.is_tensor(condition) else []
            )
            if len(bad):
                raise GenzooError(f"condition {int(bad[0])} out of range: the data has classes 0-{k - 1}")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


MAX_SAMPLE_VALUES = 2**27  # sub-pixels one sample()/complete() call may produce: 1 GiB of int64 canvas


class GenerativeModel(TrainableModel):
    """A model that draws images: ``sample(n, ...)`` and ``complete(x, known, ...)`` with the same
    argument names in every family.

    The public methods check their arguments once (``n`` and the size of the request, a finite
    ``temperature`` >= 0, the condition, the images' shape, and that every extra option is one the
    model declares in ``sample_options``) and then call ``_sample`` / ``_complete``, which the
    families implement. An option a model does not take is a one-line error, never ignored.
    """

    can_sample: ClassVar[bool] = True
    # extra keyword options of sample()/complete() beyond n, generator, temperature and condition
    sample_options: ClassVar[frozenset[str]] = frozenset({"progress"})

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        condition: torch.Tensor | None = None,
        **options: Any,
    ) -> torch.Tensor:
        """``n`` new images ``(n, C, H, W)`` of discrete values (2-D points for continuous data)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise GenzooError(f"the number of samples must be an integer >= 1, got {n!r}")
        self._check_request(n, temperature, condition, options)
        return self._sample(n, generator=generator, temperature=float(temperature), condition=condition, **options)

    def complete(
        self,
        x: torch.Tensor,
        known: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        condition: torch.Tensor | None = None,
        **options: Any,
    ) -> torch.Tensor:
        """Fill the sub-pixels where ``known`` (C, H, W) or (N, C, H, W) is False, keeping ``x`` where it is True."""
        shape = tuple(self.info.shape)
        if x.dim() != 4 or tuple(x.shape[1:]) != shape or len(x) < 1:
            raise GenzooError(
                f"complete: images must have shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}"
            )
        if tuple(known.shape[-3:]) != shape or known.dim() not in (3, 4):
            raise GenzooError(f"complete: the known mask must have shape {shape}, got {tuple(known.shape)}")
        self._check_request(len(x), temperature, condition, options)
        return self._complete(
            x, known, generator=generator, temperature=float(temperature), condition=condition, **options
        )

    def _check_request(self, n: int, temperature: float, condition: torch.Tensor | None, options: dict) -> None:
        unknown = sorted(set(options) - self.sample_options)
        if unknown:
            takes = ", ".join(sorted(self.sample_options)) or "none"
            raise GenzooError(
                f"model {self.name!r} does not take the sampling option {unknown[0]!r} (its options: {takes})"
            )
        if n * self.info.dims > MAX_SAMPLE_VALUES:
            raise GenzooError(
                f"{n} samples of {self.info.dims} values exceed the limit of {MAX_SAMPLE_VALUES:,} "
                f"values per request (at most {MAX_SAMPLE_VALUES // self.info.dims:,} samples)"
            )
        if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
            raise GenzooError(f"temperature must be a finite number >= 0, got {temperature}")
        self.check_condition(condition)
        if condition is not None and torch.is_tensor(condition) and len(condition) != n:
            raise GenzooError(f"condition has {len(condition)} entries for {n} images")

    def _sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None,
        temperature: float,
        condition: torch.Tensor | None,
        **options: Any,
    ) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define _sample()")

    def _complete(
        self,
        x: torch.Tensor,
        known: torch.Tensor,
        *,
        generator: torch.Generator | None,
        temperature: float,
        condition: torch.Tensor | None,
        **options: Any,
    ) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define _complete()")


class ImportanceWeighted(abc.ABC):
    """A capability: ``log_weights(x, k)`` gives log p(x, z_i) - log q(z_i | x) for k draws z_i ~ q(z | x),
    (B, k), so ``genzoo eval`` reports the IWAE bound and an importance-sampled NLL (VAEs)."""

    @abc.abstractmethod
    def log_weights(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, k) log importance weights."""


class Reconstructing(abc.ABC):
    """A capability: ``reconstruction_error(x)`` per image (B,), mean squared error in [0, 1] units
    (autoencoders), reported by ``genzoo eval``."""

    @abc.abstractmethod
    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) mean squared error in [0, 1] units."""


class ClassifiesImages(abc.ABC):
    """A capability: ``class_logits(x)`` gives class logits (B, K) for discrete images (B, C, H, W), so
    ``genzoo eval`` reports the model's own test accuracy (ACGAN's and the semi-supervised GAN's
    discriminators)."""

    @abc.abstractmethod
    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K) class logits."""


class PartitionFunction(abc.ABC):
    """A capability: a likelihood that needs the partition function Z of an RBM (RBMs, DBNs), estimated
    by annealed importance sampling (:mod:`genzoo.metrics.ais`) and reported by ``genzoo eval``.

    ``partition_layer()`` is the RBM whose log Z is needed (an ``RBMLayer``: weights (D, H), biases,
    conditionals); ``partition_visible(x)`` maps images to that RBM's visible units (B, D), whose mean
    sets the AIS base distribution; ``log_prob_given_log_z(x, log_z)`` is log p(x) (B,) given log Z.
    ``likelihood_kind``: "estimate" (log p itself), "bound" (a lower bound, e.g. a DBN's variational
    bound) or "density" (real-valued visibles: a log-density, not comparable with bits/dim).
    """

    @property
    def likelihood_kind(self) -> str:
        return "estimate"

    @abc.abstractmethod
    def partition_layer(self):
        """The RBM whose log Z is needed."""

    @abc.abstractmethod
    def partition_visible(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, D) visible units of that RBM."""

    @abc.abstractmethod
    def log_prob_given_log_z(
        self, x: torch.Tensor, log_z: float, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B,) log p(x) given log Z."""


class Translates(abc.ABC):
    """A capability: ``translate(x)`` maps images of the input domain (N, C, H, W) to images of the output
    domain of the same shape (pix2pix, CycleGAN; face aging under a target ``condition``), so
    ``genzoo translate`` shows input | output | target. ``sample(n, inputs=x)`` is the same translation
    through the shared sampling entry point."""

    @abc.abstractmethod
    def translate(
        self, x: torch.Tensor, *, generator: torch.Generator | None = None, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(N, C, H, W) discrete images -> (N, C, H, W) discrete images of the output domain."""


class LikelihoodModel(GenerativeModel):
    # "exact"; "bound" (an ELBO); "approximate" (e.g. a full-covariance mixture's density x bin volume);
    # "none" (this instance has no likelihood of the discrete data, e.g. a mixture over palette colours).
    # A class default that an instance may replace when its kind depends on the data (a mixture's does).
    likelihood: str = "exact"

    def log_prob(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) in nats, one value per image ``(B,)`` (a lower bound when ``likelihood == 'bound'``)."""
        raise NotImplementedError

    def loss(self, batch):
        nll = -self.log_prob(batch["x"], batch.get("y") if self.conditional else None)  # (B,)
        loss = nll.mean()
        if not self.log_metrics:
            return ModelOutput(loss)
        bpd = loss.detach() / (self.info.dims * math.log(2))
        return ModelOutput(loss, {"nll_nats": loss.item(), "bits_per_dim": bpd.item()})


class AutoregressiveModel(LikelihoodModel):
    """p(x) = prod_t p(x_t | x_<t) over sub-pixels in raster order, channel innermost.

    A subclass gives ``logits(onehot)``: teacher-forced logits for every sub-pixel at once,
    where the output at t may depend only on inputs before t. It may also give the cached
    ``init_cache``/``step`` pair, which computes position t incrementally; the shared loop
    in :mod:`genzoo.sampling.autoregressive` uses either and draws identical samples.

    Each p(x_t | x_<t) is a distribution over the K levels of a sub-pixel, so the data must be
    discrete with K >= 2; other data is refused when the model is built (nothing is written).
    """

    def __init__(self, config, info):
        if info.num_values < 2:
            what = "continuous (2-D points)" if info.continuous else f"of {info.num_values} value per sub-pixel"
            raise GenzooError(
                f"model {self.name!r}: autoregressive models need discrete data with at least 2 "
                f"values per sub-pixel (a distribution over its levels); this data is {what}: "
                "for continuous data train gmm, vae or gan"
            )
        super().__init__(config, info)

    def logits(self, onehot: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """``onehot`` (B, C, H, W, K) float -> logits (B, C, H, W, K)."""
        raise NotImplementedError

    def log_prob(self, x, condition=None):
        onehot = F.one_hot(x, self.info.num_values).to(self.dtype)  # (B, C, H, W, K)
        logp = F.log_softmax(self.logits(onehot, condition), dim=-1)
        return logp.gather(-1, x.unsqueeze(-1)).squeeze(-1).flatten(1).sum(1)  # (B,)

    def init_cache(self, n: int, condition: torch.Tensor | None = None):
        """State for incremental sampling; ``None`` means "no cache: recompute"."""
        return None

    def step(self, cache, t: int, canvas: torch.Tensor, condition: torch.Tensor | None = None):
        """Logits (n, K) of sub-pixel ``t`` given ``canvas`` filled before t; returns (logits, cache)."""
        c, h, w = position(t, self.info)
        onehot = F.one_hot(canvas, self.info.num_values).to(self.dtype)
        return self.logits(onehot, condition)[:, c, h, w], cache

    sample_options: ClassVar[frozenset[str]] = frozenset({"naive", "progress", "precision"})

    def _sample(
        self,
        n,
        *,
        generator=None,
        temperature=1.0,
        condition=None,
        naive=False,
        progress=False,
        precision=None,
    ):
        return sample_raster(
            self,
            n,
            generator=generator,
            temperature=temperature,
            condition=condition,
            naive=naive,
            progress=progress,
            precision=precision,
        )

    def _complete(
        self,
        x,
        known,
        *,
        generator=None,
        temperature=1.0,
        condition=None,
        naive=False,
        progress=False,
        precision=None,
    ):
        return sample_raster(
            self,
            len(x),
            known_values=x,
            known=known,
            generator=generator,
            temperature=temperature,
            condition=condition,
            naive=naive,
            progress=progress,
            precision=precision,
        )


class LatentModel(GenerativeModel):
    """x = decode(z) with a code z of ``latent_dim`` numbers and a prior p(z) = N(0, I).

    Subclasses give ``decode_unit(z)`` (the decoder's mean image in [0, 1], differentiable) and,
    when they have an encoder, ``encode(x)``. Everything else is shared:

    * ``sample``: z = temperature * eps, eps ~ prior, then ``decode`` (the decoder's most likely image);
    * ``fit_error(z, x, known)``: how badly decode(z) explains the known sub-pixels of x, per image
      (squared error in [0, 1] by default; likelihood models use -log p(x_known | z));
    * ``complete``: start from prior draws (one per copy, so copies differ), minimise
      ``fit_error + prior_weight * |z|^2 / 2`` over z, decode, keep the known pixels;
    * ``encode`` for models without an encoder (GANs): the same fit with every pixel known.
    """

    has_encoder: ClassVar[bool] = False
    latent_steps: ClassVar[int] = 200  # optimiser steps for completion / inversion
    # Weight of |z|^2 / 2 (the N(0, I) prior) in completion. With fit_error = -log p(x_known | z)
    # (VAEs) 1.0 makes completion a MAP fit; with the default squared error in [0, 1] units the
    # scale is arbitrary, and a small weight only keeps z in the prior's typical region.
    prior_weight: ClassVar[float] = 0.01

    @property
    def latent_dim(self) -> int:
        return int(self.config.latent_dim)

    def prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes (n, latent_dim) from p(z); N(0, I) unless a subclass knows better."""
        return torch.randn(n, self.latent_dim, generator=generator, device=self.device, dtype=self.dtype)

    def decode_unit(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (B, D) -> the decoder's mean image, floats in [0, 1] (B, unit_channels, H, W)."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (B, D) -> discrete images (B, C, H, W): the decoder's most likely image."""

        return from_unit(self.decode_unit(z, condition), self.info)

    def encode(
        self, x: torch.Tensor, condition: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Images (B, C, H, W) -> codes (B, D). Without an encoder: fit z to all pixels."""

        known = torch.ones(self.info.shape, dtype=torch.bool, device=x.device)
        return fit_codes(self, x, known, generator=generator, condition=condition)

    def fit_error(
        self, z: torch.Tensor, x: torch.Tensor, known: torch.Tensor, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-image misfit (B,) of decode(z) to ``x`` on the ``known`` (C, H, W) sub-pixels."""

        target = to_unit(x, self.info)  # (B, C', H, W)
        mask = known.to(target.device)
        if unit_channels(self.info) != self.info.channels:  # palette: one index -> three colour channels
            mask = mask[:1].expand(unit_channels(self.info), -1, -1)
        err = (self.decode_unit(z, condition) - target) ** 2 * mask  # (B, C', H, W)
        return err.flatten(1).sum(1)

    def _sample(self, n, *, generator=None, temperature=1.0, condition=None, progress=False):
        with torch.no_grad():
            z = temperature * self.prior(n, generator)
            return self.decode(z, _to(condition, self.device))

    def _complete(self, x, known, *, generator=None, temperature=1.0, condition=None, progress=False):
        x = x.to(self.device)
        known = known.to(self.device)
        cond = _to(condition, self.device)
        z = fit_codes(
            self,
            x,
            known,
            generator=generator,
            condition=cond,
            prior_weight=self.prior_weight,
            init_scale=temperature if temperature > 0 else 1.0,
        )
        with torch.no_grad():
            out = self.decode(z, cond)
        return torch.where(known.expand_as(out), x.to(out.dtype), out)


def _to(t: torch.Tensor | None, device) -> torch.Tensor | None:
    return None if t is None else t.to(device)


class AdversarialModel(GenerativeModel):
    """Several players, one loss each (``player_loss``); subclasses set ``players``."""

    players: ClassVar[tuple[str, ...]] = ("discriminator", "generator")
    player_modules: ClassVar[dict[str, str]] = {}

    def player_parameters(self, player):
        attr = self.player_modules.get(player, player)
        return [p for p in getattr(self, attr).parameters() if p.requires_grad]

    def player_loss(self, player, batch):
        raise NotImplementedError
