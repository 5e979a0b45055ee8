"""The restricted Boltzmann machine, trained by contrastive divergence or persistent CD.

Hinton 2002, "Training Products of Experts by Minimizing Contrastive Divergence", Neural
Computation 14(8):1771-1800 (no arXiv); persistent chains from Tieleman 2008, "Training Restricted
Boltzmann Machines using Approximations to the Likelihood Gradient", ICML; the training recipe
(small random weights, visible biases log(p / (1 - p)) of the data, SGD with momentum and weight
decay) from Hinton 2010, "A Practical Guide to Training RBMs", UTML TR 2010-003.

Visible units v (D of them, the flattened [0, 1] view of an image), hidden units h in {0, 1}^H:

    Bernoulli visible (binary images):  E(v, h) = -b.v - c.h - v^T W h
    Gaussian visible (grey levels, continuous data; sigma fixed by the config):
                                        E(v, h) = |v - b|^2 / (2 sigma^2) - c.h - (v / sigma)^T W h

Summing h out gives the free energy, p(v) = exp(-F(v)) / Z (Hinton 2002, eq. 1):

    F(v) = -b.v - sum_j softplus(c_j + (W^T v)_j)                   (Bernoulli)
    F(v) = |v - b|^2 / (2 sigma^2) - sum_j softplus(c_j + (W^T v / sigma)_j)   (Gaussian)

and the conditionals Gibbs sampling alternates: p(h_j = 1 | v) = sigmoid(c_j + (W^T v / s)_j)
(s = 1 or sigma), p(v_i = 1 | h) = sigmoid(b_i + (W h)_i), or v_i | h ~ N(b_i + sigma (W h)_i, sigma^2).

Training. The log-likelihood gradient is E_data[-dF/dtheta] - E_model[-dF/dtheta]; CD-k replaces the
model expectation with negatives v- reached by k Gibbs steps from the data (Hinton 2002, eq. 5),
PCD with k steps of persistent chains that are never reset (Tieleman 2008). Neither is the gradient
of a loss, so ``loss`` returns the surrogate

    L = mean_b F(v_b) - mean_b F(stop_gradient(v-_b)),

whose gradient is exactly minus the CD/PCD update; the generic trainer's SGD (momentum ``beta1``,
``weight_decay``) then performs Hinton's practical-guide update. ``anneal_updates`` > 0 scales the
update by max(0, 1 - t / anneal_updates) at update t (a linear learning-rate decay to zero). The
persistent chains, the update count and the "initialised" flag are buffers, so a checkpoint holds
them and ``--resume`` continues the same chains. Negatives are drawn from torch's global RNG (saved
in the checkpoint too). The surrogate's value is not a likelihood: the likelihood needs log Z,
estimated by annealed importance sampling (:mod:`genzoo.metrics.ais`, ``genzoo eval``).

Sampling runs ``gibbs_steps`` Gibbs steps from draws of the visible biases alone; completion does the same
with the known pixels clamped after every visible update. ``temperature`` T divides the energy:
T = 0 replaces every draw by its most likely value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.data.base import ImageInfo
from genzoo.data.continuous import from_unit, to_unit
from genzoo.errors import GenzooError
from genzoo.models.base import GenerativeModel, ModelOutput, PartitionFunction
from genzoo.models.registry import register_model

LOGIT_CLIP = 0.01  # data marginals are clipped to [0.01, 0.99] before log(p / (1 - p))


class RBMLayer(nn.Module):
    """The network: weights W (D, H), visible biases b (D,), hidden biases c (H,), and its conditionals.

    Shared by :class:`RBM` and the layers of a DBN; tensors are flat, v (B, D) and h (B, H).
    """

    def __init__(self, visible: int, hidden: int, kind: str = "bernoulli", sigma: float = 1.0, init_std: float = 0.01):
        super().__init__()
        if kind not in ("bernoulli", "gaussian"):
            raise GenzooError(f"visible units must be 'bernoulli' or 'gaussian', got {kind!r}")
        self.kind, self.sigma = kind, float(sigma)
        self.weight = nn.Parameter(torch.randn(visible, hidden) * init_std)  # W (D, H)
        self.visible_bias = nn.Parameter(torch.zeros(visible))  # b (D,)
        self.hidden_bias = nn.Parameter(torch.zeros(hidden))  # c (H,)

    @property
    def gaussian(self) -> bool:
        return self.kind == "gaussian"

    @property
    def scale(self) -> float:
        """s in the interaction term (v / s)^T W h: sigma for Gaussian visibles, 1 for Bernoulli."""
        return self.sigma if self.gaussian else 1.0

    def hidden_input(self, v: torch.Tensor) -> torch.Tensor:
        """c + W^T v / s: (B, D) -> (B, H), the logits of p(h = 1 | v)."""
        return self.hidden_bias + (v / self.scale) @ self.weight

    def visible_input(self, h: torch.Tensor) -> torch.Tensor:
        """b + W h (Bernoulli logits) or b + sigma W h (Gaussian means): (B, H) -> (B, D)."""
        return self.visible_bias + self.scale * (h @ self.weight.T)

    def visible_term(self, v: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The hidden-free part of -F(v): b.v, or -|v - b|^2 / (2 sigma^2); (B,)."""
        b = self.visible_bias if bias is None else bias
        if self.gaussian:
            return -((v - b) ** 2).sum(1) / (2 * self.sigma**2)
        return v @ b

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) (B,), so that p(v) = exp(-F(v)) / Z."""
        return -self.visible_term(v) - F.softplus(self.hidden_input(v)).sum(1)

    def sample_hidden(self, v: torch.Tensor, generator=None, temperature: float = 1.0) -> torch.Tensor:
        return bernoulli(self.hidden_input(v), generator, temperature)

    def sample_visible(self, h: torch.Tensor, generator=None, temperature: float = 1.0) -> torch.Tensor:
        a = self.visible_input(h)
        if self.gaussian:
            if temperature == 0:
                return a
            noise = torch.randn(a.shape, generator=generator, device=a.device, dtype=a.dtype)
            return a + math.sqrt(temperature) * self.sigma * noise
        return bernoulli(a, generator, temperature)

    def log_p_visible(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """log p(v | h) (B,): Bernoulli log-mass, or the Gaussian log-density."""
        a = self.visible_input(h)
        if self.gaussian:
            return (-((v - a) ** 2) / (2 * self.sigma**2) - 0.5 * math.log(2 * math.pi * self.sigma**2)).sum(1)
        return -F.binary_cross_entropy_with_logits(a, v, reduction="none").sum(1)

    def log_q_hidden(self, h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """log p(h | v) (B,) of binary h under the factorial conditional."""
        return -F.binary_cross_entropy_with_logits(self.hidden_input(v), h, reduction="none").sum(1)

    def gibbs(
        self,
        v: torch.Tensor,
        steps: int,
        generator=None,
        temperature: float = 1.0,
        clamp: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``steps`` alternations v -> h -> v; ``clamp=(mask (D,), values (B, D))`` resets the masked
        visibles to their values after every visible update."""
        for _ in range(steps):
            v = self.sample_visible(self.sample_hidden(v, generator, temperature), generator, temperature)
            if clamp is not None:
                v = torch.where(clamp[0], clamp[1], v)
        return v

    def init_from_data(self, v: torch.Tensor) -> None:
        """Visible biases from the data: log(p / (1 - p)) of each unit's mean (Bernoulli), its mean (Gaussian)."""
        with torch.no_grad():
            mean = v.mean(0)
            if self.gaussian:
                self.visible_bias.copy_(mean)
            else:
                p = mean.clamp(LOGIT_CLIP, 1 - LOGIT_CLIP)
                self.visible_bias.copy_((p / (1 - p)).log())

    def random_visible(self, n: int, generator=None) -> torch.Tensor:
        """A starting state for chains (n, D): independent draws from the visible biases alone."""
        b = self.visible_bias.expand(n, -1)
        if self.gaussian:
            return b + self.sigma * torch.randn(b.shape, generator=generator, device=b.device, dtype=b.dtype)
        return bernoulli(b, generator)


def bernoulli(logits: torch.Tensor, generator=None, temperature: float = 1.0) -> torch.Tensor:
    """Draws of units with p(1) = sigmoid(logits / T); T = 0 gives the most likely value (ties -> 0)."""
    if temperature == 0:
        return (logits > 0).to(logits.dtype)
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    return (u < torch.sigmoid(logits / temperature)).to(logits.dtype)


def cd_surrogate(layer: RBMLayer, v: torch.Tensor, negatives: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """scale * (mean F(v) - mean F(negatives)); its gradient is minus the CD/PCD update (negatives detached)."""
    return scale * (layer.free_energy(v).mean() - layer.free_energy(negatives.detach()).mean())


def anneal_scale(t: int, total: int) -> float:
    """max(0, 1 - t / total), or 1 when ``total`` is 0 (no annealing)."""
    return 1.0 if total <= 0 else max(0.0, 1.0 - t / total)


@dataclass
class RBMConfig:
    hidden: int = 500  # H
    visible: Literal["auto", "bernoulli", "gaussian"] = "auto"  # auto: bernoulli on binary images, else gaussian
    sigma: float = 0.1  # Gaussian visibles: their fixed standard deviation, in [0, 1] units
    cd_k: int = 1  # Gibbs steps per update (CD-k, or PCD-k when persistent)
    persistent: bool = False  # PCD (Tieleman 2008): chains carried over between updates
    chains: int = 100  # persistent chains ("fantasy particles")
    anneal_updates: int = 0  # > 0: the update is scaled by max(0, 1 - t / anneal_updates)
    init_std: float = 0.01  # weights ~ N(0, init_std^2) (Hinton's guide)
    gibbs_steps: int = 1000  # default Gibbs steps of sample() / complete()
    ais_betas: int = 14500  # AIS protocol of genzoo eval: intermediate distributions ...
    ais_chains: int = 100  # ... and independent runs (Salakhutdinov & Murray 2008)

    def __post_init__(self):
        for key in ("hidden", "cd_k", "chains", "gibbs_steps", "ais_betas", "ais_chains"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1")
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ValueError("sigma must be a finite number > 0")
        if not self.init_std >= 0 or self.anneal_updates < 0:
            raise ValueError("init_std and anneal_updates must be >= 0")


def visible_kind(choice: str, info: ImageInfo) -> str:
    """The visible units for ``info``: Bernoulli needs binary images (no palette)."""
    binary = info.num_values == 2 and info.palette is None
    if info.palette is not None:
        raise GenzooError("an RBM takes binary, grey/RGB-level or continuous data, not palette indices")
    if choice == "auto":
        return "bernoulli" if binary else "gaussian"
    if choice == "bernoulli" and not binary:
        raise GenzooError(
            f"visible=bernoulli needs binary images (num_values 2), got num_values "
            f"{info.num_values}; use visible=gaussian"
        )
    return choice


def check_gibbs_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise GenzooError(f"gibbs_steps must be an integer >= 0, got {steps!r}")
    return steps


@register_model("rbm")
class RBM(GenerativeModel, PartitionFunction):
    """A Bernoulli-Bernoulli (or Gaussian-Bernoulli) RBM on the flattened image, CD-k or PCD."""

    family = "boltzmann"
    paper = (
        "Hinton 2002, Training Products of Experts by Minimizing Contrastive Divergence "
        "(Neural Computation 14:1771-1800); PCD: Tieleman 2008 (ICML)"
    )
    Config = RBMConfig
    test_info = ImageInfo(channels=1, height=4, width=4, num_values=2)
    # sample()/complete(): gibbs_steps (int >= 0; default config.gibbs_steps) Gibbs steps from random visibles
    sample_options: ClassVar[frozenset[str]] = frozenset({"progress", "gibbs_steps"})
    presets = {
        "tiny": {
            "hidden": 8,
            "cd_k": 1,
            "gibbs_steps": 20,
            "ais_betas": 200,
            "ais_chains": 16,
            "optimizer": "sgd",
            "lr": 0.05,
            "beta1": 0.5,
        },
        # Salakhutdinov & Murray 2008's CD-1(500) and CD-25(500) rows: SGD with momentum, weight decay
        "mnist_cd1": {
            "hidden": 500,
            "cd_k": 1,
            "optimizer": "sgd",
            "lr": 0.05,
            "beta1": 0.9,
            "weight_decay": 2e-4,
            "batch_size": 100,
            "sample_every": 0,
            "eval_every": -1,
        },
        "mnist_cd25": {
            "hidden": 500,
            "cd_k": 25,
            "optimizer": "sgd",
            "lr": 0.05,
            "beta1": 0.9,
            "weight_decay": 2e-4,
            "batch_size": 100,
            "sample_every": 0,
            "eval_every": -1,
        },
        # PCD-1 with 100 chains (Tieleman 2008); set anneal_updates to the planned number of steps
        "mnist_pcd": {
            "hidden": 500,
            "cd_k": 1,
            "persistent": True,
            "chains": 100,
            "optimizer": "sgd",
            "lr": 0.01,
            "beta1": 0.9,
            "weight_decay": 2e-4,
            "batch_size": 100,
            "sample_every": 0,
            "eval_every": -1,
        },
    }

    chains: torch.Tensor  # (chains, D) persistent negatives; (0, D) for CD
    updates: torch.Tensor  # () updates done
    initialised: torch.Tensor  # () visible biases (and chains) set from the first batch

    def __init__(self, config: RBMConfig, info: ImageInfo):
        super().__init__(config, info)
        kind = visible_kind(config.visible, info)
        self.layer = RBMLayer(info.dims, config.hidden, kind, config.sigma, config.init_std)
        self.register_buffer("chains", torch.zeros(config.chains if config.persistent else 0, info.dims))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    # -- the view of images the units see -----------------------------------------------------
    def visible(self, x: torch.Tensor) -> torch.Tensor:
        """Discrete images (B, C, H, W) -> visible units (B, D) in [0, 1] (raw values for continuous data)."""
        return to_unit(x.to(self.device), self.info).flatten(1).to(self.dtype)

    def images(self, v: torch.Tensor) -> torch.Tensor:
        """Visible units (B, D) -> images (B, C, H, W): binary units as they are, Gaussian ones rounded."""
        y = v.view(len(v), *self.info.shape)
        return y.long() if not self.layer.gaussian else from_unit(y, self.info)

    def free_energy(self, x: torch.Tensor) -> torch.Tensor:
        """F(v) of images (B, C, H, W) -> (B,); log p(x) = -F(v) - log Z."""
        return self.layer.free_energy(self.visible(x))

    # -- training -----------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        v = self.visible(batch["x"])  # (B, D)
        with torch.no_grad():
            if not bool(self.initialised):
                self.layer.init_from_data(v)
                if self.config.persistent:
                    self.chains.copy_(self.layer.random_visible(len(self.chains)))
                self.initialised.fill_(True)
            if self.config.persistent:
                negatives = self.layer.gibbs(self.chains, self.config.cd_k)
                self.chains.copy_(negatives)
            else:
                negatives = self.layer.gibbs(v, self.config.cd_k)
            recon = self.layer.visible_input(torch.sigmoid(self.layer.hidden_input(v)))
            recon = torch.sigmoid(recon) if not self.layer.gaussian else recon
            recon_err = ((recon - v) ** 2).sum(1).mean()
        scale = anneal_scale(int(self.updates), self.config.anneal_updates)
        if self.training:
            self.updates += 1
        loss = cd_surrogate(self.layer, v, negatives, scale)
        f_data = self.layer.free_energy(v).mean().item()
        return ModelOutput(
            loss, {"free_energy": f_data, "reconstruction_sq_error": recon_err.item(), "update_scale": scale}
        )

    # -- PartitionFunction --------------------------------------------------------------------
    def partition_layer(self) -> RBMLayer:
        return self.layer

    def partition_visible(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        return self.visible(x)

    def log_prob_given_log_z(self, x: torch.Tensor, log_z: float, generator=None) -> torch.Tensor:
        """log p(x) = -F(v) - log Z (B,); a density of the [0, 1] view for Gaussian visibles."""
        with torch.no_grad():
            return -self.free_energy(x).double() - log_z

    @property
    def likelihood_kind(self) -> str:
        return "density" if self.layer.gaussian else "estimate"

    # -- sampling -----------------------------------------------------------------------------
    def _sample(self, n, *, generator=None, temperature=1.0, condition=None, progress=False, gibbs_steps=None):
        steps = check_gibbs_steps(self.config.gibbs_steps if gibbs_steps is None else gibbs_steps)
        with torch.no_grad():
            v = self.layer.random_visible(n, generator)
            v = self.layer.gibbs(v, steps, generator, temperature)
            return self.images(v)

    def _complete(self, x, known, *, generator=None, temperature=1.0, condition=None, progress=False, gibbs_steps=None):
        steps = check_gibbs_steps(self.config.gibbs_steps if gibbs_steps is None else gibbs_steps)
        x = x.to(self.device)
        keep = torch.as_tensor(known, device=self.device).bool().expand_as(x)  # (B, C, H, W)
        with torch.no_grad():
            shown = self.visible(x)  # (B, D)
            mask = keep.flatten(1)
            v = torch.where(mask, shown, self.layer.random_visible(len(x), generator))
            v = self.layer.gibbs(v, steps, generator, temperature, clamp=(mask, shown))
            out = self.images(v)
        return torch.where(keep, x.to(out.dtype), out)
