"""Age-cGAN (Antipov, Baccouche & Dugelay 2017, "Face Aging With Conditional Generative Adversarial
Networks", arXiv:1702.01983): a conditional GAN over faces with the age group as its condition, an encoder
from a face to its latent code, and an identity-preserving optimisation of that code; aging is decoding
the optimised code under another age group.

1. The cGAN (Sec. 3.1, eq. 1): the GAN core's conditional model (:class:`~genzoo.models.gan.cgan.ConditionalGAN`)
   with the six age groups of :mod:`genzoo.data.faces` (0-18, 19-29, 30-39, 40-49, 50-59, 60+) as labels;
   DCGAN's conv nets (``arch = conv``) and the projection discriminator in the CPU presets.
2. The encoder E (Sec. 3.2): a conv net (:class:`~genzoo.nn.translation_nets.ConvEncoder`) trained to
   invert G on generated faces: E minimises E_{z, y} ||z - E(G(z, y))||^2 (the per-dimension mean here), with
   z ~ N(0, I) and y the real batch's labels. The paper trains E after the GAN; here it is a third player
   of every round (``encoder``, after the discriminator and the generator), so it tracks the current G.
3. Latent vector optimisation (Sec. 3.3): starting from z0 = E(x), z* = arg min_z ||FR(x) - FR(G(z, y0))||^2
   for the face's own group y0 (Adam, ``ip_steps`` steps of ``ip_lr``). The paper's FR is a face
   recognition network ("IP-Opt"); without one, FR is the identity map on pixels by default (the paper's
   pixel-wise "PW-Opt"), and :meth:`AgeCGAN.age` takes any differentiable feature map ``features`` instead.
4. Aging: x_target = G(z*, y_target).

:meth:`AgeCGAN.age` (and :meth:`AgeCGAN.translate` with ``condition`` = target groups, the
:class:`~genzoo.models.base.Translates` capability) do steps 3-4; when the source group is not given,
y0 is the group under which G(E(x), y) is closest to x. ``sample`` and ``complete`` are the GAN core's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from genzoo.data.base import ImageInfo
from genzoo.data.continuous import from_unit
from genzoo.errors import GenzooError
from genzoo.models.base import ModelOutput, Translates
from genzoo.models.gan.cgan import CONV, TINY, CGANConfig, ConditionalGAN
from genzoo.models.registry import register_model
from genzoo.nn.translation_nets import ConvEncoder


@dataclass
class AgeCGANConfig(CGANConfig):
    encoder_base: int = 32  # channels of the encoder's first conv (doubling per level)
    ip_steps: int = 100  # optimiser steps of the latent vector optimisation
    ip_lr: float = 0.05  # its Adam step size

    def __post_init__(self):
        super().__post_init__()
        if self.encoder_base < 1 or self.ip_steps < 0 or self.ip_lr <= 0:
            raise ValueError("encoder_base must be >= 1, ip_steps >= 0 and ip_lr > 0")


@register_model("age_cgan")
class AgeCGAN(ConditionalGAN, Translates):
    """cGAN on age groups + encoder + latent optimisation; aging decodes under another group."""

    paper = (
        "Antipov, Baccouche & Dugelay 2017, Face Aging With Conditional Generative Adversarial Networks, "
        "arXiv:1702.01983"
    )
    Config = AgeCGANConfig
    players = ("discriminator", "generator", "encoder")
    player_modules: ClassVar[dict[str, str]] = {
        "discriminator": "discriminator",
        "generator": "generator",
        "encoder": "encoder",
    }
    has_encoder = True
    presets = {
        "tiny": {**TINY, "encoder_base": 4, "ip_steps": 3},
        # CPU-sized faces (utkface:PATH, 64x64 or --size 32): DCGAN nets with projection D, z of 100
        "faces": {**CONV, "base_channels": 32, "encoder_base": 32, "sample_every": 0},
    }
    test_info = ImageInfo(channels=3, height=8, width=8, num_values=256, num_classes=6)

    def __init__(self, config, info):
        super().__init__(config, info)
        self.encoder = ConvEncoder(self.shape[0], self.shape[1:], config.latent_dim, config.encoder_base)

    @property
    def schedule(self) -> dict[str, int]:
        return {"discriminator": self.config.d_steps, "generator": 1, "encoder": 1}

    def player_loss(self, player, batch):
        if player != "encoder":
            return super().player_loss(player, batch)
        y = self.batch_labels(batch)
        assert y is not None  # uses_labels: batch_labels refuses a batch without them
        z = self.prior(len(y))  # (B, D)
        with torch.no_grad():
            fake = self.generate(z, y)  # (B, C, H, W)
        loss = ((self.encoder(fake) - z) ** 2).mean()
        return ModelOutput(loss, {"code_mse": loss.item()})

    def encode(self, x, condition=None, *, generator=None):
        """E(x): the encoder's initial code (B, D) (no optimisation)."""
        with torch.no_grad():
            return self.encoder(self.real_input(x.to(self.device)))

    # -- aging ---------------------------------------------------------------------------------------
    def source_groups(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The group y0 per face (B,) under which G(z, y0) reconstructs x (in [-1, 1]) best."""
        errs = []
        for k in range(self.num_conditions):
            y = torch.full((len(x),), k, dtype=torch.long, device=x.device)
            errs.append(((self.generate(z, y) - x) ** 2).flatten(1).mean(1))
        return torch.stack(errs, 1).argmin(1)

    def optimise_codes(
        self,
        x: torch.Tensor,
        source: torch.Tensor | None = None,
        *,
        features: Callable[[torch.Tensor], torch.Tensor] | None = None,
        steps: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Step 3 for discrete faces x -> (z* (B, D), y0 (B,)). ``features`` maps [0, 1] images to vectors."""
        steps = self.config.ip_steps if steps is None else steps
        was_training = self.training
        self.eval()
        try:
            real = self.real_input(x.to(self.device))  # (B, C, H, W) in [-1, 1]
            with torch.no_grad():
                z0 = self.encoder(real)
                y0 = self.source_groups(real, z0) if source is None else source.to(self.device)
                ref = features((real + 1) / 2) if features is not None else real
            z = z0.clone().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=self.config.ip_lr)
            with torch.enable_grad():
                for _ in range(steps):
                    rec = self.generate(z, y0)
                    got = features((rec + 1) / 2) if features is not None else rec
                    loss = ((got - ref) ** 2).flatten(1).sum(1).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            return z.detach(), y0
        finally:
            self.train(was_training)

    def age(
        self,
        x: torch.Tensor,
        target: torch.Tensor,
        *,
        source: torch.Tensor | None = None,
        features: Callable[[torch.Tensor], torch.Tensor] | None = None,
        steps: int | None = None,
    ) -> torch.Tensor:
        """Faces x (B, C, H, W) aged to the groups ``target`` (B,) -> discrete faces (B, C, H, W)."""
        self.check_condition(target)
        if len(target) != len(x):
            raise GenzooError(f"age: {len(target)} target groups for {len(x)} faces")
        z, _ = self.optimise_codes(x, source, features=features, steps=steps)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = self.generate(z, target.to(self.device))
        finally:
            self.train(was_training)
        return from_unit((out + 1) / 2, self.info)

    def translate(self, x, *, generator=None, condition=None):
        shape = tuple(self.info.shape)
        if not torch.is_tensor(x) or x.dim() != 4 or tuple(x.shape[1:]) != shape or len(x) < 1:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise GenzooError(f"translate: images must have shape (N, {', '.join(map(str, shape))}), got {got}")
        if condition is None:
            raise GenzooError(f"{self.name}: translate needs the target age group per face (condition)")
        return self.age(x, condition)
