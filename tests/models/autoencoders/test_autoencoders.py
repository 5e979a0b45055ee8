"""Autoencoder, sparse autoencoder, denoising autoencoder: the penalty and the corruptions on fixed
numbers, the running code Gaussian used for sampling, and that training beats the mean image."""
import math

import numpy as np
import pytest
import torch

from genzoo.data import ImageDataset, ImageInfo, every_tenth_split
from genzoo.data.continuous import to_unit
from genzoo.models.autoencoders.autoencoder import JITTER, Autoencoder, AutoencoderConfig
from genzoo.models.autoencoders.denoising_autoencoder import DenoisingAutoencoder, DenoisingAutoencoderConfig
from genzoo.models.autoencoders.sparse_autoencoder import SparseAutoencoder, SparseAutoencoderConfig
from genzoo.training.config import TrainConfig
from genzoo.training.trainer import Trainer

GREY = ImageInfo(1, 4, 4, 256)


def test_sparse_penalty_is_beta_times_the_summed_bernoulli_kl():
    cfg = SparseAutoencoderConfig(arch="mlp", hidden=(8,), latent_dim=3, rho=0.1, beta=2.5)
    model = SparseAutoencoder(cfg, GREY)
    z = torch.tensor([[0.2, 0.9, 0.05], [0.4, 0.7, 0.01], [0.3, 0.95, 0.03]], dtype=torch.float64)
    rho_hat = z.numpy().mean(0)
    rho = 0.1
    expect = 2.5 * np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    assert model.penalty(z)[0].item() == pytest.approx(expect, rel=1e-12)
    assert model.penalty(torch.full((4, 3), 0.1, dtype=torch.float64))[0].item() == pytest.approx(0.0, abs=1e-15)
    # the loss is the squared error plus that penalty on the batch's (sigmoid) codes
    x = torch.randint(0, 256, (5, 1, 4, 4))
    u = to_unit(x, GREY)
    codes = model.code(u)
    assert ((codes > 0) & (codes < 1)).all()
    recon = ((model.decode_unit(codes) - u) ** 2).flatten(1).sum(1).mean()
    assert torch.allclose(model.loss({"x": x}).loss, recon + model.penalty(codes)[0])


def test_masking_noise_zeroes_about_p_of_the_inputs_and_keeps_the_rest():
    cfg = DenoisingAutoencoderConfig(arch="mlp", hidden=(8,), latent_dim=2, noise="mask", mask_prob=0.3)
    model = DenoisingAutoencoder(cfg, GREY)
    u = torch.rand(500, 1, 4, 4) * 0.9 + 0.1  # no zeros to begin with
    out = model.corrupt(u, torch.Generator().manual_seed(0))
    zeroed = (out == 0).double().mean().item()
    n = u.numel()
    assert abs(zeroed - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)
    kept = out != 0
    assert torch.equal(out[kept], u[kept])


def test_gaussian_noise_has_the_asked_standard_deviation():
    cfg = DenoisingAutoencoderConfig(arch="mlp", hidden=(8,), latent_dim=2, noise="gaussian", noise_std=0.2)
    model = DenoisingAutoencoder(cfg, GREY)
    u = torch.rand(2000, 1, 4, 4, dtype=torch.float64)
    noise = model.corrupt(u, torch.Generator().manual_seed(0)) - u
    n = noise.numel()
    assert abs(noise.mean().item()) < 4 * 0.2 / math.sqrt(n)
    assert abs(noise.std().item() - 0.2) < 4 * 0.2 / math.sqrt(2 * n)  # sd of a sample sd ~ sigma / sqrt(2n)


def test_denoising_corrupts_only_the_training_input():
    torch.manual_seed(0)
    model = DenoisingAutoencoder(DenoisingAutoencoderConfig(arch="mlp", hidden=(8,), latent_dim=2, mask_prob=0.5),
                                 GREY)
    x = torch.randint(0, 256, (6, 1, 4, 4))
    u = to_unit(x, GREY)
    clean = ((model.decode_unit(model.encode(x)) - u) ** 2).flatten(1).mean(1)
    assert torch.equal(model.reconstruction_error(x), clean)
    losses = {round(model.loss({"x": x}).loss.item(), 6) for _ in range(3)}
    assert len(losses) == 3  # a fresh corruption every training pass
    with torch.no_grad():  # the sampling Gaussian follows the codes of the clean images
        assert torch.allclose(model.code_mean, model.encode(x).mean(0), atol=1e-6)


def test_running_code_statistics_are_exact_for_the_first_batches_and_frozen_in_eval():
    torch.manual_seed(0)
    model = Autoencoder(AutoencoderConfig(arch="mlp", hidden=(8,), latent_dim=3, code_momentum=0.01), GREY)
    model = model.double()
    batches = [torch.randint(0, 256, (7, 1, 4, 4)) for _ in range(3)]
    mses = [model.loss({"x": x}).metrics["mse"] for x in batches]  # no optimiser step: one fixed encoder
    assert model.recon_mse.item() == pytest.approx(sum(mses) / 3, rel=1e-9)
    with torch.no_grad():
        z = torch.cat([model.encode(x) for x in batches])  # (21, 3)
    zc = z - z.mean(0)
    assert torch.allclose(model.code_mean, z.mean(0), atol=1e-12)
    assert torch.allclose(model.code_cov, zc.T @ zc / len(z), atol=1e-12)
    assert int(model.code_count) == 3
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    model.loss({"x": batches[0]})
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_samples_come_from_the_fitted_code_gaussian():
    model = Autoencoder(AutoencoderConfig(arch="mlp", hidden=(8,), latent_dim=2), GREY).double()
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64)
    a = torch.tensor([[2.0, 0.0], [1.5, 0.5]], dtype=torch.float64)
    z = torch.randn(5000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) @ a.T + mean
    model.set_code_distribution(z)
    draws = model.prior(40000, torch.Generator().manual_seed(1))
    assert torch.allclose(draws.mean(0), model.code_mean, atol=4 * 2.1 / math.sqrt(40000))
    assert torch.allclose(torch.cov(draws.T), model.code_cov, rtol=0.05)
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    assert torch.equal(model.prior(3, g1), model.prior(3, g2))
    cold = model.sample(2, generator=torch.Generator().manual_seed(0), temperature=0.0)
    with torch.no_grad():
        assert torch.equal(cold, model.decode(model.code_mean.expand(2, -1)))
    # completion's prior term is the Gaussian's energy (z - m)^T S^-1 (z - m) / 2 (S with its jitter)
    q = torch.tensor([[0.0, 0.0], [3.0, 1.0]], dtype=torch.float64)
    d = q - model.code_mean
    s = model.code_cov + JITTER * model.code_cov.diagonal().mean() * torch.eye(2, dtype=torch.float64)
    expect = 0.5 * (d @ torch.linalg.inv(s) * d).sum(1)
    assert torch.allclose(model.prior_energy(q), expect, rtol=1e-10)
    # and completion's misfit is the known pixels' squared error + 2 s^2 * energy (MAP, s^2 = training MSE)
    model.recon_mse.fill_(0.03)
    x = torch.randint(0, 256, (2, 1, 4, 4))
    known = torch.zeros(1, 4, 4, dtype=torch.bool)
    known[:, :2] = True
    sq = ((model.decode_unit(q) - to_unit(x, GREY).double()) ** 2)[:, :, :2].flatten(1).sum(1)
    assert torch.allclose(model.fit_error(q, x, known), sq + 0.06 * expect, rtol=1e-9)


def _blobs(n: int = 600, size: int = 8, seed: int = 0) -> ImageDataset:
    """A bright Gaussian blob at a random place: images on a 2-D manifold."""
    g = torch.Generator().manual_seed(seed)
    centre = 1.5 + 4 * torch.rand(n, 2, generator=g)  # (N, 2)
    r = torch.arange(size, dtype=torch.float32)
    d2 = (r.view(1, -1, 1) - centre[:, 0].view(-1, 1, 1)) ** 2 + (r.view(1, 1, -1) - centre[:, 1].view(-1, 1, 1)) ** 2
    x = (255 * torch.exp(-d2 / (2 * 1.3 ** 2))).round().to(torch.uint8).unsqueeze(1)  # (N, 1, H, W)
    return ImageDataset(spec="blobs", x=x, info=ImageInfo(1, size, size, 256), splits=every_tenth_split(n))


@pytest.mark.parametrize("cls,cfg", [
    (Autoencoder, AutoencoderConfig(arch="mlp", hidden=(64,), latent_dim=4)),
    (SparseAutoencoder, SparseAutoencoderConfig(arch="mlp", hidden=(64,), latent_dim=8, beta=0.1)),
    (DenoisingAutoencoder, DenoisingAutoencoderConfig(arch="mlp", hidden=(64,), latent_dim=4, mask_prob=0.2)),
])
def test_a_trained_autoencoder_reconstructs_held_out_images_better_than_the_mean_image(cls, cfg, tmp_path):
    data = _blobs()
    torch.manual_seed(0)
    model = cls(cfg, data.info)
    train_cfg = TrainConfig(steps=300, batch_size=32, lr=3e-3, sample_every=0, eval_every=-1, log_every=100)
    Trainer(model, data, train_cfg, tmp_path, model_name=cls.name, quiet=True).fit()
    model.eval()
    test = to_unit(data.images("test"), data.info)
    baseline = ((test - to_unit(data.images("train"), data.info).mean(0)) ** 2).flatten(1).mean(1)
    with torch.no_grad():
        err = model.reconstruction_error(data.images("test"))
    assert err.mean() < baseline.mean()
