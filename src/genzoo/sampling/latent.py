"""Working in a latent model's code space: fitting codes to pixels, paths and grids of codes.

* :func:`fit_codes` -- the one optimisation loop behind completion (fit z to the visible pixels)
  and inversion (fit z to every pixel, for models without an encoder, e.g. GANs):
  ``argmin_z fit_error(z, x, known) + prior_weight * |z|^2 / 2`` by Adam, from prior draws
  taken with the caller's generator (so copies of one image start, and end, in different places;
  the same seed gives the same codes).
* :func:`interpolate` -- straight (``linear``) or great-circle (``slerp``, White 2016,
  arXiv:1609.04468) paths between two codes.
* :func:`traversal_codes` -- the lecture's figure: two code dimensions swept over a range on a
  grid, every other dimension held at a base code.
"""

from __future__ import annotations

import torch

from genzoo.errors import GenzooError


def fit_codes(
    model,
    x: torch.Tensor,
    known: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    condition: torch.Tensor | None = None,
    steps: int | None = None,
    lr: float = 0.05,
    prior_weight: float = 0.0,
    init_scale: float = 1.0,
) -> torch.Tensor:
    """Codes (B, D) that make ``model.decode_unit`` match ``x`` (B, C, H, W) where ``known`` (C, H, W)."""
    steps = model.latent_steps if steps is None else steps
    was_training = model.training
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        z = (init_scale * model.prior(len(x), generator)).detach().requires_grad_(True)  # (B, D)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = model.fit_error(z, x, known, condition) + prior_weight * 0.5 * (z * z).sum(1)  # (B,)
            loss.sum().backward()  # images are independent: the sum's gradient is each image's own
            opt.step()
    finally:
        for p in params:
            p.requires_grad_(True)
        model.train(was_training)
    return z.detach()


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int, kind: str = "linear") -> torch.Tensor:
    """Codes along the path from z0 to z1 (D,) inclusive: (steps, D)."""
    if steps < 2:
        raise GenzooError(f"--steps must be >= 2, got {steps}")
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device).unsqueeze(1)  # (S, 1)
    if kind == "linear":
        return (1 - t) * z0 + t * z1
    if kind == "slerp":
        a, b = z0 / z0.norm().clamp_min(1e-12), z1 / z1.norm().clamp_min(1e-12)
        omega = torch.arccos((a * b).sum().clamp(-1 + 1e-7, 1 - 1e-7))
        if omega.abs() < 1e-4:  # (nearly) parallel: slerp is the straight line
            return (1 - t) * z0 + t * z1
        return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
    raise GenzooError(f"unknown interpolation {kind!r}; valid: linear, slerp")


def traversal_codes(base: torch.Tensor, dims: tuple[int, int], lo: float, hi: float, steps: int) -> torch.Tensor:
    """A (steps * steps, D) grid: row i sets z[dims[0]] and column j sets z[dims[1]] to values in [lo, hi]."""
    d = base.numel()
    bad = [k for k in dims if not 0 <= k < d]
    if bad:
        raise GenzooError(f"--dims {bad[0]}: the code has dimensions 0-{d - 1}")
    if steps < 2:
        raise GenzooError(f"--steps must be >= 2, got {steps}")
    values = torch.linspace(lo, hi, steps, dtype=base.dtype, device=base.device)
    z = base.reshape(1, 1, d).repeat(steps, steps, 1)  # (S, S, D)
    z[:, :, dims[0]] = values.view(-1, 1)
    z[:, :, dims[1]] = values.view(1, -1)
    return z.reshape(-1, d)
