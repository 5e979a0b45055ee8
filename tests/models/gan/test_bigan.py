"""BiGAN / ALI: the discriminator judges (x, E(x)) against (G(z), z), the encoder is trained with the
generator (it receives gradient, D's player does not hold it), and ``encode`` is E."""
import torch

from conftest import random_dataset, tiny_model


def test_discriminator_sees_data_with_codes_and_fakes_with_their_noise():
    model = tiny_model("bigan")
    model.eval()  # no dropout or batch-norm updates between the recorded call and the recomputation
    batch = {"x": random_dataset(model.info).images("train", list(range(6)))}
    seen = []
    forward = model.discriminator.forward
    model.discriminator.forward = lambda x, z: (seen.append((x.detach(), z.detach())), forward(x, z))[1]
    torch.manual_seed(7)
    model.player_loss("discriminator", batch)
    torch.manual_seed(7)
    z = model.prior(6)
    real = model.real_input(batch["x"])
    (x1, c1), (x2, c2) = seen
    assert torch.equal(x1, real) and torch.allclose(c1, model.encoder(real))
    assert torch.allclose(x2, model.generator(z)) and torch.equal(c2, z)


def test_encoder_plays_with_the_generator_and_receives_gradient():
    for name in ("bigan", "ali"):
        model = tiny_model(name)
        enc = set(map(id, model.encoder.parameters()))
        assert enc <= set(map(id, model.player_parameters("generator")))
        assert not enc & set(map(id, model.player_parameters("discriminator")))
        batch = {"x": random_dataset(model.info).images("train", list(range(6)))}
        model.zero_grad()
        model.player_loss("generator", batch).loss.backward()
        grads = [p.grad for p in model.encoder.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, name


def test_encode_is_the_encoder_and_ali_encodes_by_its_mean():
    model = tiny_model("bigan")
    x = random_dataset(model.info).images("test")
    assert model.has_encoder
    assert torch.allclose(model.encode(x), model.encoder(model.real_input(x)))
    ali = tiny_model("ali")
    real = ali.real_input(x)
    mean = ali.encoder(real)[:, :ali.latent_dim]
    assert torch.allclose(ali.encode(x), mean) and torch.equal(ali.encode(x), ali.encode(x))
    assert not torch.allclose(ali.encoder_code(real, sample=True), mean)  # training draws from q(z | x)
