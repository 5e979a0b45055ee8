"""Sparse coding: ISTA/FISTA against an independent LASSO solver, the soft threshold as a proximal
map, dictionary learning (unit atoms, falling objective, recovery of a planted dictionary), and the
cifar-patches loader."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from genzoo.data import ImageInfo, load_dataset
from genzoo.errors import GenzooError
from genzoo.models.classic.sparse_coding import SparseCoding, ista, lasso_objective, soft_threshold
from genzoo.models.registry import make_config


def coordinate_descent(y, phi, lam, sweeps=3000):
    """The LASSO by cyclic coordinate descent (Friedman et al. 2007), one signal at a time, in numpy."""
    y, phi = y.numpy(), phi.numpy()
    lam = np.broadcast_to(np.asarray(lam, dtype=float), (phi.shape[1],))
    out = np.zeros((len(y), phi.shape[1]))
    norms = (phi * phi).sum(0)
    for b in range(len(y)):
        a = np.zeros(phi.shape[1])
        r = y[b].copy()
        for _ in range(sweeps):
            moved = 0.0
            for j in range(phi.shape[1]):
                rho = phi[:, j] @ r + norms[j] * a[j]
                new = np.sign(rho) * max(abs(rho) - lam[j], 0.0) / norms[j]
                r += phi[:, j] * (a[j] - new)
                moved = max(moved, abs(a[j] - new))
                a[j] = new
            if moved < 1e-14:
                break
        out[b] = a
    return torch.from_numpy(out)


@pytest.mark.parametrize("fast,iterations", [(True, 3000), (False, 10000)])
def test_ista_and_fista_reach_the_lasso_optimum(fast, iterations):
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(10, 20, generator=g, dtype=torch.float64)
    phi = phi / phi.norm(dim=0)
    y = torch.randn(4, 10, generator=g, dtype=torch.float64)
    lam = torch.linspace(0.05, 0.3, 20, dtype=torch.float64)  # one weight per atom, as completion uses
    a = ista(y, phi, lam, iterations, fast=fast)
    ref = coordinate_descent(y, phi, lam)
    assert torch.allclose(lasso_objective(y, phi, a, lam), lasso_objective(y, phi, ref, lam), rtol=1e-7)
    assert torch.allclose(a, ref, atol=1e-4)
    assert (a == 0).any(), "an l1 solution at this weight has exact zeros"


def test_fista_is_faster_than_ista():
    g = torch.Generator().manual_seed(1)
    phi = torch.randn(16, 48, generator=g, dtype=torch.float64)
    phi = phi / phi.norm(dim=0)
    y = torch.randn(8, 16, generator=g, dtype=torch.float64)
    best = lasso_objective(y, phi, ista(y, phi, 0.1, 5000), 0.1)
    gap = {fast: (lasso_objective(y, phi, ista(y, phi, 0.1, 50, fast=fast), 0.1) - best).sum().item()
           for fast in (True, False)}
    assert gap[True] < 0.2 * gap[False]


def test_soft_threshold_is_the_proximal_map_of_the_l1_norm():
    u = torch.linspace(-2, 2, 41, dtype=torch.float64)
    grid = torch.linspace(-3, 3, 60001, dtype=torch.float64)
    brute = grid[(0.5 * (grid.view(1, -1) - u.view(-1, 1)) ** 2 + 0.7 * grid.abs()).argmin(1)]
    assert torch.allclose(soft_threshold(u, 0.7), brute, atol=1e-4)


def planted_patches(n=4000, seed=0):
    """8x8 images: sums of two of 12 random unit 'atoms' with Laplace weights, quantised to 256 levels."""
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(64, 12, generator=g, dtype=torch.float64)
    atoms = atoms / atoms.norm(dim=0)
    codes = torch.zeros(n, 12, dtype=torch.float64)
    pick = torch.stack([torch.randperm(12, generator=g)[:2] for _ in range(n)])
    u = torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5
    codes.scatter_(1, pick, -torch.sign(u) * torch.log1p(-2 * u.abs()))
    v = (0.5 + 0.06 * codes @ atoms.T).clamp(0, 1)
    x = (v * 255).round().long().view(n, 1, 8, 8)
    return atoms, x


def test_dictionary_learning_keeps_unit_atoms_lowers_the_objective_and_recovers_planted_atoms():
    atoms, x = planted_patches()
    info = ImageInfo(channels=1, height=8, width=8, num_values=256)
    torch.manual_seed(0)
    model = SparseCoding(make_config(SparseCoding.Config, {"atoms": 16, "lam": 0.3, "iterations": 50}), info)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        out = model.update({"x": x[torch.randint(0, len(x), (500,), generator=g)]})
        losses.append(out.loss.item())
    assert torch.allclose(model.dictionary.norm(dim=0), torch.ones(16, dtype=torch.float64))
    assert np.mean(losses[-10:]) < 0.75 * np.mean(losses[:3])
    learned = model.dewhiten @ model.dictionary  # pixel-space atoms, (64, 16)
    cos = (atoms.T @ learned).abs() / learned.norm(dim=0)  # (12, 16)
    assert (cos.max(1).values > 0.9).sum() >= 10, cos.max(1).values
    codes = model.encode(x[:200])
    assert (codes == 0).float().mean() > 0.5  # sparse


def _jpeg(value: int) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def test_cifar_patches_loader(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                (tmp_path / split / cls / f"{i}.jpg").write_bytes(_jpeg(i))
    data = load_dataset(f"cifar-patches:{tmp_path}", size=5)
    assert data.info.shape == (1, 5, 5) and data.info.num_values == 256 and data.labels is None
    assert data.size("train") == 6 * 4 and data.size("test") == 4 * 4
    again = load_dataset(f"cifar-patches:{tmp_path}", size=5)
    assert torch.equal(data.x, again.x)  # fixed positions
    with pytest.raises(GenzooError, match="size=40 out of range"):
        load_dataset(f"cifar-patches:{tmp_path}", size=40)
    with pytest.raises(GenzooError, match="only --size"):
        load_dataset(f"cifar-patches:{tmp_path}", colors=4)
