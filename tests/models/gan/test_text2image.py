"""text2image (Reed et al. 2016): GAN-CLS's matching-aware loss, GAN-INT's interpolation, the text condition."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import random_dataset, run_cli, tiny_model
from genzoo.data.tokens import PAD_ID, UNK_ID
from genzoo.errors import GenzooError
from genzoo.losses.matching import interpolate_embeddings, matching_aware_loss

R = torch.tensor([1.5, -0.3, 0.2, 2.0])
W = torch.tensor([0.4, -1.2, 0.9, 0.0])
G = torch.tensor([-2.0, 0.7, -0.1, 1.1])


def test_matching_aware_loss_equals_its_formula_on_fixed_logits():
    # Algorithm 1: L_D = -[log s_r + (log(1 - s_w) + log(1 - s_f)) / 2], s = sigmoid(logit), batch means
    s_r, s_w, s_f = torch.sigmoid(R), torch.sigmoid(W), torch.sigmoid(G)
    expected = -(torch.log(s_r) + (torch.log(1 - s_w) + torch.log(1 - s_f)) / 2).mean()
    for name in ("non_saturating", "minimax"):
        assert matching_aware_loss(name, R, W, G).item() == pytest.approx(expected.item(), rel=1e-6)
    hinge = F.relu(1 - R).mean() + (F.relu(1 + W).mean() + F.relu(1 + G).mean()) / 2
    assert matching_aware_loss("hinge", R, W, G).item() == pytest.approx(hinge.item(), rel=1e-6)


def test_gan_int_mixes_embeddings_as_specified():
    h1, h2 = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, -2.0]])
    assert torch.allclose(interpolate_embeddings(h1, h2, 0.25), 0.25 * h1 + 0.75 * h2)
    assert torch.equal(interpolate_embeddings(h1, h2, 1.0), h1)


def model_and_batch(**config):
    model = tiny_model("text2image")
    for k, v in config.items():
        setattr(model.config, k, v)
    data = random_dataset(model.info)
    torch.manual_seed(1)
    return model, data.batch("train", list(range(6)))


def test_the_generators_second_pass_reads_the_interpolated_embeddings():
    model, batch = model_and_batch(int_beta=0.3)
    seen = []
    model.generator.register_forward_hook(lambda m, args, out: seen.append(args[1].detach().clone()))
    model.player_loss("generator", batch)
    h = model.embed(batch["tokens"]).detach()
    assert len(seen) == 2
    assert torch.allclose(seen[0], h)  # GAN-CLS fakes: each caption's own embedding
    assert torch.allclose(seen[1], 0.3 * h + 0.7 * h.roll(1, dims=0), atol=1e-6)  # GAN-INT: beta h_i + (1-beta) h_{i+1}
    model, batch = model_and_batch(int_weight=0.0)
    seen.clear()
    model.generator.register_forward_hook(lambda m, args, out: seen.append(args[1]))
    assert "d_fake_int" not in model.player_loss("generator", batch).metrics and len(seen) == 1


def test_discriminator_loss_counts_mismatched_text_as_negative():
    model, batch = model_and_batch()
    outputs = []
    model.discriminator.register_forward_hook(lambda m, args, out: outputs.append(out.detach()))
    torch.manual_seed(2)
    out = model.player_loss("discriminator", batch)
    real, fake, wrong = outputs[-3:]  # D(x, h), D(G(z), h), D(x, h_{i+1}) in that order
    assert out.loss.item() == pytest.approx(matching_aware_loss("non_saturating", real, wrong, fake).item(), rel=1e-5)
    assert out.metrics["d_wrong"] == pytest.approx(torch.sigmoid(wrong).mean().item(), rel=1e-5)
    model, batch = model_and_batch(matching_aware=False)
    outputs.clear()
    model.discriminator.register_forward_hook(lambda m, args, out: outputs.append(out.detach()))
    out = model.player_loss("discriminator", batch)
    real, fake = outputs[-2:]
    expected = F.softplus(-real).mean() + F.softplus(fake).mean()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5) and "d_wrong" not in out.metrics


def test_gradients_reach_the_text_encoder_from_the_discriminators_loss_only():
    model, batch = model_and_batch()
    assert set(map(id, model.text_encoder.parameters())) <= set(map(id, model.player_parameters("discriminator")))
    assert not set(map(id, model.text_encoder.parameters())) & set(map(id, model.player_parameters("generator")))
    model.player_loss("discriminator", batch).loss.backward()
    grads = [p.grad for p in model.text_encoder.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    model.zero_grad(set_to_none=True)
    model.player_loss("generator", batch).loss.backward()
    assert all(p.grad is None for p in model.text_encoder.parameters())  # G reads h detached


def test_the_caption_changes_the_image_and_the_same_caption_does_not():
    model, _ = model_and_batch()
    model.eval()
    z = torch.randn(2, model.latent_dim, generator=torch.Generator().manual_seed(0))
    a, _ = model.text_condition(["a dark coat", "a dark coat"])
    b, _ = model.text_condition(["a light bag", "a light bag"])
    with torch.no_grad():
        xa, xb = model.decode_unit(z, a), model.decode_unit(z, b)
    assert not torch.allclose(xa, xb)
    assert torch.equal(xa, model.decode_unit(z, a).detach())


def test_text_condition_notes_unknown_words_and_check_refuses_bad_conditions():
    model, _ = model_and_batch()
    tokens, unknown = model.text_condition(["a dark red truck", "coat"])
    assert unknown == ["red", "truck"]
    assert tokens[0].tolist() == [model.vocab.id("a"), model.vocab.id("dark"), UNK_ID, UNK_ID]
    assert tokens[1].tolist() == [model.vocab.id("coat"), PAD_ID, PAD_ID, PAD_ID]
    with pytest.raises(GenzooError, match="empty"):
        model.text_condition([" "])
    with pytest.raises(GenzooError, match="not a class label"):
        model.sample(2, condition=torch.tensor([0, 1]))
    with pytest.raises(GenzooError, match="outside the vocabulary"):
        model.sample(1, condition=torch.tensor([[len(model.vocab)]]))
    with pytest.raises(GenzooError, match="empty caption"):
        model.sample(1, condition=torch.tensor([[PAD_ID, 4]]))
    x = model.sample(3, condition=tokens[[0, 1, 0]])
    assert x.shape == (3, *model.info.shape)


def test_the_model_needs_captioned_data():
    from genzoo.data import ImageInfo
    from genzoo.models.registry import available_models, make_config

    cls = available_models()["text2image"]
    with pytest.raises(GenzooError, match="no captions"):
        cls(make_config(cls.Config, {}), ImageInfo(channels=1, height=4, width=4, num_values=5))
    model, batch = model_and_batch()
    with pytest.raises(GenzooError, match="no captions 'tokens'"):
        model.player_loss("discriminator", {"x": batch["x"]})


def test_cli_sample_with_text(tmp_path, capsys):
    root = tmp_path / "set"
    root.mkdir()
    lines = []
    for i in range(12):
        Image.fromarray(np.full((4, 4), 20 * i, np.uint8)).save(root / f"{i}.png")
        lines.append(f"{i}.png\ta {'dark' if i < 6 else 'light'} coat")
    (root / "captions.txt").write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    train = ["train", "text2image", "--data", f"captions:{root}", "--out", run, "--preset", "tiny", "--steps", "2"]
    code, _, err = run_cli(capsys, *train, "--set", "sample_every=0", "--quiet")
    assert code == 0, err
    code, _, err = run_cli(capsys, "sample", run, "-o", tmp_path / "s.png", "-n", "4", "--text", "a dark red truck")
    assert code == 0, err
    assert "read as <unk>: 'red', 'truck'" in err and (tmp_path / "s.png").exists()
    code, _, err = run_cli(capsys, "sample", run, "-o", tmp_path / "t.png", "--text", "")
    assert code == 2 and err.count("\n") == 1 and "empty caption" in err
    code, _, err = run_cli(capsys, "sample", run, "-o", tmp_path / "t.png", "--text", "coat", "--condition", "1")
    assert code == 2 and "give one of them" in err
    code, _, err = run_cli(capsys, "sample", run, "-o", tmp_path / "t.png", "--condition", "1")
    assert code == 2 and "not a class label" in err
