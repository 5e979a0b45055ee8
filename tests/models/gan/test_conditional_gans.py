"""The label- and code-using GANs: conditioning reaches the outputs and the label embeddings, ACGAN's loss
against its formula on fixed logits, the InfoGAN bound below H(c) and Q recovering the code, and the
one-line refusals (unlabelled data, hidden labels, a condition out of range)."""
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import random_dataset, run_cli
from genzoo.data import ImageInfo
from genzoo.errors import GenzooError
from genzoo.losses.conditional import categorical_mi_bound, class_nll, gaussian_code_log_likelihood
from genzoo.models.registry import get_model_class, make_config

LABELLED = ImageInfo(channels=1, height=4, width=4, num_values=5, num_classes=3)


def build(name: str, info=LABELLED, seed: int = 0, **overrides):
    cls = get_model_class(name)
    preset = {k: v for k, v in cls.presets["tiny"].items() if k not in ("batch_size", "lr")}
    torch.manual_seed(seed)
    return cls(make_config(cls.Config, {**preset, **overrides}), info)


@pytest.mark.parametrize("overrides", [{}, {"d_condition": "projection"},
                                       {"arch": "conv", "base_channels": 4},
                                       {"arch": "conv", "base_channels": 4, "d_condition": "projection"}])
def test_cgan_label_changes_both_players_and_gradients_reach_the_embeddings(overrides):
    model = build("cgan", **overrides)
    model.eval()
    z = torch.randn(6, model.latent_dim)
    y0, y1 = torch.zeros(6, dtype=torch.long), torch.ones(6, dtype=torch.long)
    assert not torch.allclose(model.generator(z, y0), model.generator(z, y1))
    x = model.real_input(random_dataset(LABELLED).images("train", list(range(6))))
    assert not torch.allclose(model.discriminator(x, y0), model.discriminator(x, y1))
    model.train()
    batch = {"x": random_dataset(LABELLED).images("train", list(range(6))), "y": torch.tensor([0, 1, 2, 0, 1, 2])}
    for player, embed in (("generator", model.generator.embed), ("discriminator", model.discriminator.embed)):
        model.zero_grad()
        model.player_loss(player, batch).loss.backward()
        assert embed.weight.grad is not None and embed.weight.grad.abs().sum() > 0, player


def test_conditional_models_refuse_unlabelled_data_and_hidden_labels():
    unlabelled = ImageInfo(channels=1, height=4, width=4, num_values=5)
    for name in ("cgan", "acgan"):
        with pytest.raises(GenzooError, match="no class labels") as e:
            build(name, info=unlabelled)
        assert "\n" not in str(e.value)
    model = build("cgan")
    x = random_dataset(LABELLED).images("train", [0, 1])
    with pytest.raises(GenzooError, match="no class labels 'y'"):
        model.player_loss("discriminator", {"x": x})
    with pytest.raises(GenzooError, match="hidden"):
        model.player_loss("discriminator", {"x": x, "y": torch.tensor([0, -1]),
                                            "labelled": torch.tensor([True, False])})
    with pytest.raises(GenzooError, match="condition 3 out of range"):
        model.sample(2, condition=torch.tensor([0, 3]))
    infogan = build("infogan", info=unlabelled)  # InfoGAN needs no labels; its condition is its category
    assert infogan.sample(2, condition=torch.tensor([2, 1])).shape == (2, 1, 4, 4)
    with pytest.raises(GenzooError, match="categorical code takes 0-2"):
        infogan.sample(1, condition=torch.tensor([3]))


def test_acgan_losses_equal_their_formulas_on_fixed_logits():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    y = torch.tensor([0, 2])
    manual = -(math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-1))) + math.log(1 / 3)) / 2
    assert class_nll(logits, y).item() == pytest.approx(manual, rel=1e-6)

    model = build("acgan")
    adv_r, adv_f = torch.tensor([0.0, math.log(3)]), torch.tensor([math.log(3), 0.0])
    cls_r, cls_f = logits, logits.flip(0)
    c = torch.tensor([1, 1])
    outs = iter([(adv_r, cls_r), (adv_f, cls_f)])
    model.discriminator.both = lambda x: next(outs)
    loss, *_ = model.discriminator_terms(None, y, None, None, c, {})
    log = math.log
    l_s = -(log(0.5) + log(0.75)) / 2 - (log(0.25) + log(0.5)) / 2  # -L_S from sigmoid 0.5/0.75 and 0.75/0.5
    l_c = F.cross_entropy(cls_r, y).item() + F.cross_entropy(cls_f, c).item()  # -L_C on real and fake
    assert loss.item() == pytest.approx(l_s + l_c, rel=1e-6)
    model.discriminator.both = lambda x: (adv_f, cls_f)
    g_loss, *_ = model.generator_terms(None, None, c, None, y, {})
    assert g_loss.item() == pytest.approx(-(log(0.75) + log(0.5)) / 2 + F.cross_entropy(cls_f, c).item(), rel=1e-6)


def test_acgan_without_the_fake_class_term_trains_d_classes_on_real_images_only():
    model = build("acgan", fake_class_weight=0.0)
    adv, cls_r, cls_f = torch.zeros(2), torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]]), torch.randn(2, 3)
    outs = iter([(adv, cls_r), (adv, cls_f)])
    model.discriminator.both = lambda x: next(outs)
    y, c = torch.tensor([0, 2]), torch.tensor([1, 1])
    loss, *_ = model.discriminator_terms(None, y, None, None, c, {})
    assert loss.item() == pytest.approx(2 * math.log(2) + F.cross_entropy(cls_r, y).item(), rel=1e-6)
    with pytest.raises(GenzooError, match="fake_class_weight=-1.0"):
        build("acgan", fake_class_weight=-1.0)


def test_acgan_discriminator_classifies_real_images():
    model = build("acgan")
    x = random_dataset(LABELLED).images("test")
    assert model.class_logits(x).shape == (len(x), 3)


def test_infogan_bound_is_at_most_the_code_entropy():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        q, c = 3 * torch.randn(16, 10, generator=g), torch.randint(10, (16,), generator=g)
        assert categorical_mi_bound(q, c).item() <= math.log(10) + 1e-9
    sure = 50 * F.one_hot(c, 10).float()  # Q certain and right: the bound reaches H(c) = log K
    assert categorical_mi_bound(sure, c).item() == pytest.approx(math.log(10), abs=1e-6)
    assert categorical_mi_bound(torch.zeros(16, 10), c).item() == pytest.approx(0.0, abs=1e-6)  # Q uniform
    mean, codes = torch.zeros(4, 2), torch.zeros(4, 2)
    assert gaussian_code_log_likelihood(mean, codes).item() == pytest.approx(-math.log(2 * math.pi), rel=1e-6)


def test_infogan_continuous_weight_scales_only_the_continuous_term():
    q, z, c = torch.randn(8, 3 + 1), torch.rand(8, 4) * 2 - 1, torch.randint(3, (8,))
    cat = categorical_mi_bound(q[:, :3], c).item()
    cont = gaussian_code_log_likelihood(q[:, 3:], z[:, :1]).item()
    for w in (0.0, 0.1, 1.0):
        bound, _ = build("infogan", continuous_weight=w).information(q, z, c)
        assert bound.item() == pytest.approx(cat + w * cont, rel=1e-6)


def test_infogan_q_recovers_the_code_of_a_fixed_generator():
    info = ImageInfo(channels=1, height=4, width=4, num_values=5)
    model = build("infogan", info=info, categories=4, continuous_codes=1, d_hidden=(32,), q_hidden=16)
    assert model.prior(500)[:, 0].abs().max() <= 1  # the continuous code is uniform on [-1, 1]
    for p in model.generator.parameters():
        p.requires_grad_(False)
    with torch.no_grad():  # a fixed generator that draws each category clearly apart
        model.generator.net.net[0].weight[:, -4:] *= 40
    opt = torch.optim.Adam(model.player_parameters("discriminator"), lr=3e-2)
    torch.manual_seed(1)
    for _ in range(40):
        z, c = model.prior(32), model.fake_condition(None, 32)
        fake = model.generate(z, c)
        bound, metrics = model.information(model.discriminator.both(fake)[1], z, c)
        opt.zero_grad()
        (-bound).backward()
        opt.step()
    z, c = model.prior(256), model.fake_condition(None, 256)
    _, metrics = model.information(model.discriminator.both(model.generate(z, c))[1], z, c)
    assert metrics["code_accuracy"] > 0.95
    assert metrics["mi_bound_categorical"] > 0.9 * math.log(4)


def test_infogan_codes_are_its_condition_and_first_dims():
    model = build("infogan", info=ImageInfo(channels=1, height=4, width=4, num_values=5))
    model.eval()
    z = model.prior(3, torch.Generator().manual_seed(0))
    a = model.decode_unit(z, torch.tensor([0, 0, 0]))
    assert not torch.allclose(a, model.decode_unit(z, torch.tensor([1, 1, 1])))
    z2 = z.clone()
    z2[:, 0] = -z2[:, 0]  # the continuous code moves the image
    assert not torch.allclose(a, model.decode_unit(z2, torch.tensor([0, 0, 0])))


def test_cli_conditional_sample_and_refusals(capsys, tmp_path, idx_folder):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "cgan", "--out", run, "--data", f"idx:{idx_folder}", "--preset",
                           "tiny", "--steps", "1", "--quiet")
    assert code == 0, err
    code, _, err = run_cli(capsys, "sample", run, "--out", tmp_path / "s.png", "-n", "4", "--condition", "3")
    assert code == 0 and (tmp_path / "s.png").exists()
    code, _, err = run_cli(capsys, "sample", run, "--out", tmp_path / "bad.png", "-n", "4", "--condition", "10")
    assert code == 2 and "out of range" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad.png").exists()
