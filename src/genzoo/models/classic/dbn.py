"""The deep belief network: RBMs stacked and trained greedily, one layer at a time.

Hinton, Osindero & Teh 2006, "A Fast Learning Algorithm for Deep Belief Nets", Neural Computation
18(7):1527-1554 (no arXiv). The bound genzoo reports is the variational bound of their sec. 4 /
Salakhutdinov & Murray 2008 ("On the Quantitative Analysis of Deep Belief Networks", ICML) eq. 16.

Layers l = 0 .. L-1 are RBMs (:class:`~genzoo.models.classic.rbm.RBMLayer`); layer l has h_l as its
visible and h_{l+1} as its hidden units (h_0 = v, the image). The generative model is the top RBM
over (h_{L-1}, h_L) and directed sigmoid layers below it:

    p(v, h_1, ..., h_{L-1}) = p_top(h_{L-1}) prod_{l=0}^{L-2} p_l(h_l | h_{l+1}),

with p_l(h_l | h_{l+1}) layer l's p(v | h). The recognition model Q(h_{l+1} | h_l) is layer l's
factorial p(h | v), so for every image (Hinton et al. 2006 eq. 4-5)

    log p(v) >= E_Q[ -F_top(h_{L-1}) - log Z_top + sum_{l=0}^{L-2} log p_l(h_l | h_{l+1})
                     - sum_{l=1}^{L-1} log Q(h_l | h_{l-1}) ],

``log_prob_given_log_z`` estimates the expectation with ``bound_samples`` draws h ~ Q per image (an
unbiased estimate of the bound) given log Z_top, which AIS estimates (:mod:`genzoo.metrics.ais`).

Greedy training inside the generic trainer. ``layer_steps`` gives the number of trainer steps of each
layer, in order: the first ``layer_steps[0]`` steps train layer 0 as an RBM on the images (CD-k or PCD,
the surrogate loss of :mod:`genzoo.models.classic.rbm`), the next ``layer_steps[1]`` train layer 1 on
layer 0's hidden *probabilities* (``propagate="probabilities"``, as in Hinton & Salakhutdinov 2006's
code) or binary samples, with the layers below frozen (they get no gradient), and so on. The number
of updates done is a buffer, so a resumed run continues with the right layer; steps past the sum
keep training the top layer. With ``anneal`` each layer's update is scaled by
max(0, 1 - t_l / layer_steps[l]) (linear decay to zero over its own steps). ``init_layers``
(:meth:`DBN.load_layer`) copies a trained RBM into a layer; a layer with 0 steps is kept as it is.

Sampling: ``gibbs_steps`` Gibbs steps in the top RBM (from draws of its visible biases), then one
down pass through the directed layers (a draw at every layer). Completion alternates an up pass
(h ~ Q, with the known pixels of v clamped), one Gibbs step in the top RBM and a down pass,
``gibbs_steps`` times, clamping the known pixels after each down pass: an approximate sampler of
p(unknown | known), since Q is not the true posterior.
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
from genzoo.models.base import GenerativeModel, ModelOutput, PartitionFunction
from genzoo.models.classic.rbm import RBMLayer, anneal_scale, cd_surrogate, check_gibbs_steps, visible_kind
from genzoo.models.registry import register_model


@dataclass
class DBNConfig:
    hidden: tuple[int, ...] = (500, 2000)  # units of h_1 .. h_L
    layer_steps: tuple[int, ...] = (20000, 20000)  # trainer steps of each layer, in order
    visible: Literal["auto", "bernoulli", "gaussian"] = "auto"  # the image layer, as in the RBM
    sigma: float = 0.1
    cd_k: int = 1
    persistent: bool = False
    chains: int = 100
    anneal: bool = True
    propagate: Literal["probabilities", "samples"] = "probabilities"  # what layer l+1 is trained on
    init_std: float = 0.01
    gibbs_steps: int = 1000
    bound_samples: int = 10  # draws h ~ Q per image in the bound's estimate
    ais_betas: int = 14500
    ais_chains: int = 100

    def __post_init__(self):
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError("hidden must list at least one layer size, each >= 1")
        if len(self.layer_steps) != len(self.hidden) or any(s < 0 for s in self.layer_steps):
            raise ValueError(f"layer_steps needs one count >= 0 per layer ({len(self.hidden)})")
        for key in ("cd_k", "chains", "gibbs_steps", "bound_samples", "ais_betas", "ais_chains"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1")
        if not (self.sigma > 0 and math.isfinite(self.sigma)) or not self.init_std >= 0:
            raise ValueError("sigma must be a finite number > 0 and init_std >= 0")


@register_model("dbn")
class DBN(GenerativeModel, PartitionFunction):
    """Greedy layer-wise RBMs; a top RBM over directed sigmoid layers."""

    family = "boltzmann"
    paper = (
        "Hinton, Osindero & Teh 2006, A Fast Learning Algorithm for Deep Belief Nets (Neural Computation 18:1527-1554)"
    )
    Config = DBNConfig
    test_info = ImageInfo(channels=1, height=4, width=4, num_values=2)
    # sample()/complete(): gibbs_steps (int >= 0; default config.gibbs_steps)
    sample_options: ClassVar[frozenset[str]] = frozenset({"progress", "gibbs_steps"})
    presets = {
        "tiny": {
            "hidden": (6, 5),
            "layer_steps": (1, 1),
            "gibbs_steps": 10,
            "bound_samples": 2,
            "ais_betas": 100,
            "ais_chains": 8,
            "optimizer": "sgd",
            "lr": 0.05,
            "beta1": 0.5,
        },
        # Murray & Salakhutdinov 2009's 500-2000 DBN: PCD-1 for each layer, SGD with momentum
        "mnist": {
            "hidden": (500, 2000),
            "layer_steps": (30000, 30000),
            "persistent": True,
            "optimizer": "sgd",
            "lr": 0.01,
            "beta1": 0.9,
            "weight_decay": 2e-4,
            "batch_size": 100,
            "sample_every": 0,
            "eval_every": -1,
        },
    }

    updates: torch.Tensor  # () updates done, all layers together
    initialised: torch.Tensor  # (L,) each layer's visible biases (and chains) set from its first batch

    def __init__(self, config: DBNConfig, info: ImageInfo):
        super().__init__(config, info)
        sizes = (info.dims, *config.hidden)
        kinds = [visible_kind(config.visible, info)] + ["bernoulli"] * (len(config.hidden) - 1)
        layers = [
            RBMLayer(sizes[i], sizes[i + 1], kinds[i], config.sigma, config.init_std) for i in range(len(config.hidden))
        ]
        self.layers: list[RBMLayer] = nn.ModuleList(layers)  # type: ignore[assignment]  # a list of RBMLayers
        for i, d in enumerate(sizes[:-1]):
            self.register_buffer(f"chains_{i}", torch.zeros(config.chains if config.persistent else 0, d))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("initialised", torch.zeros(len(config.hidden), dtype=torch.bool))

    # -- the layers -----------------------------------------------------------------------------
    @property
    def top(self) -> RBMLayer:
        return self.layers[-1]

    def total_layer_steps(self) -> int:
        return sum(self.config.layer_steps)

    def active_layer(self, t: int) -> tuple[int, int]:
        """(layer, updates of that layer so far) at update ``t``; past the schedule: the top layer."""
        start = 0
        for i, n in enumerate(self.config.layer_steps):
            if t < start + n:
                return i, t - start
            start += n
        last = len(self.layers) - 1
        return last, t - (start - self.config.layer_steps[-1])

    def load_layer(self, index: int, layer: RBMLayer) -> None:
        """Copy a trained RBM into layer ``index`` (greedy training done elsewhere, e.g. an ``rbm`` run)."""
        mine = self.layers[index]
        if mine.weight.shape != layer.weight.shape or mine.kind != layer.kind:
            raise GenzooError(
                f"layer {index} is {mine.kind} {tuple(mine.weight.shape)}; the RBM given is "
                f"{layer.kind} {tuple(layer.weight.shape)}"
            )
        mine.load_state_dict(layer.state_dict())
        self.initialised[index] = True

    def visible(self, x: torch.Tensor) -> torch.Tensor:
        return to_unit(x.to(self.device), self.info).flatten(1).to(self.dtype)  # (B, D)

    def images(self, v: torch.Tensor) -> torch.Tensor:
        y = v.view(len(v), *self.info.shape)
        return y.long() if not self.layers[0].gaussian else from_unit(y, self.info)

    def up(self, v: torch.Tensor, to_layer: int, generator=None, sample: bool = True) -> torch.Tensor:
        """h_{to_layer} from v by the recognition model: draws (``sample``) or probabilities at every layer."""
        h = v
        for layer in self.layers[:to_layer]:
            h = layer.sample_hidden(h, generator) if sample else torch.sigmoid(layer.hidden_input(h))
        return h

    def down(self, h: torch.Tensor, generator=None, temperature: float = 1.0) -> torch.Tensor:
        """A draw of v from h_{L-1} through the directed layers L-2 .. 0."""
        for layer in reversed(self.layers[:-1]):
            h = layer.sample_visible(h, generator, temperature)
        return h

    # -- training ---------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        t = int(self.updates)
        i, t_layer = self.active_layer(t)
        layer = self.layers[i]
        chains = getattr(self, f"chains_{i}")
        with torch.no_grad():
            v = self.up(self.visible(batch["x"]), i, sample=self.config.propagate == "samples")  # (B, D_i)
            if not bool(self.initialised[i]):
                layer.init_from_data(v)
                if self.config.persistent:
                    chains.copy_(layer.random_visible(len(chains)))
                self.initialised[i] = True
            if self.config.persistent:
                negatives = layer.gibbs(chains, self.config.cd_k)
                chains.copy_(negatives)
            else:
                negatives = layer.gibbs(v, self.config.cd_k)
        scale = anneal_scale(t_layer, self.config.layer_steps[i]) if self.config.anneal else 1.0
        if self.training:
            self.updates += 1
        loss = cd_surrogate(layer, v, negatives, scale)
        return ModelOutput(
            loss, {"layer": float(i), "free_energy": layer.free_energy(v).mean().item(), "update_scale": scale}
        )

    # -- PartitionFunction ------------------------------------------------------------------------
    @property
    def likelihood_kind(self) -> str:
        return "bound"

    def partition_layer(self) -> RBMLayer:
        return self.top

    def partition_visible(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        """The top RBM's visible units for images: h_{L-1} probabilities from the recognition model."""
        return self.up(self.visible(x), len(self.layers) - 1, sample=False)

    def log_prob_given_log_z(self, x: torch.Tensor, log_z: float, generator=None) -> torch.Tensor:
        """The variational lower bound on log p(x) (module doc), ``bound_samples`` draws per image (B,)."""
        with torch.no_grad():
            v = self.visible(x)
            total = torch.zeros(len(v), dtype=torch.float64, device=v.device)
            for _ in range(self.config.bound_samples):
                h, term = v, torch.zeros_like(total)
                for layer in self.layers[:-1]:
                    h_next = layer.sample_hidden(h, generator)
                    term += (layer.log_p_visible(h, h_next) - layer.log_q_hidden(h_next, h)).double()
                    h = h_next
                total += term - self.top.free_energy(h).double()
            return total / self.config.bound_samples - log_z

    # -- sampling ---------------------------------------------------------------------------------
    def _sample(self, n, *, generator=None, temperature=1.0, condition=None, progress=False, gibbs_steps=None):
        steps = check_gibbs_steps(self.config.gibbs_steps if gibbs_steps is None else gibbs_steps)
        with torch.no_grad():
            h = self.top.gibbs(self.top.random_visible(n, generator), steps, generator, temperature)
            return self.images(self.down(h, generator, temperature))

    def _complete(self, x, known, *, generator=None, temperature=1.0, condition=None, progress=False, gibbs_steps=None):
        steps = check_gibbs_steps(self.config.gibbs_steps if gibbs_steps is None else gibbs_steps)
        x = x.to(self.device)
        keep = torch.as_tensor(known, device=self.device).bool().expand_as(x)  # (B, C, H, W)
        top = len(self.layers) - 1
        with torch.no_grad():
            shown, mask = self.visible(x), keep.flatten(1)
            v = torch.where(mask, shown, self.layers[0].random_visible(len(x), generator))
            for _ in range(steps):
                h = self.top.gibbs(self.up(v, top, generator), 1, generator, temperature)
                v = torch.where(mask, shown, self.down(h, generator, temperature))
            out = self.images(v)
        return torch.where(keep, x.to(out.dtype), out)
