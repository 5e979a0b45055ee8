"""Auxiliary classifier GAN (Odena, Olah & Shlens 2017, "Conditional Image Synthesis with Auxiliary
Classifier GANs", arXiv:1610.09585, Sec. 3): the generator is conditional as in the conditional GAN, but
the discriminator does not read the label; it gives a probability distribution over sources P(S | x)
and one over the classes P(C | x) from one body, and the objective has two parts,

    L_S = E log P(S = real | x_real) + E log P(S = fake | x_fake),
    L_C = E log P(C = c | x_real) + E log P(C = c | x_fake).

D maximises L_S + L_C, G maximises L_C - L_S: both players maximise the log-likelihood of the correct
class. Here L_S is any named GAN loss (non-saturating by default for G, as in practice) and
-L_C is :func:`genzoo.losses.conditional.class_nll` on the real and fake batches for D and on the
fakes for G, weighted by ``class_weight`` (1 in the paper). The fakes are drawn for the real batch's
labels. ``fake_class_weight`` scales D's class term on the fakes (1: the paper's L_C); at 0 D's class head
learns from real images only, so G cannot agree with D on class marks of their own that real images lack
(preset ``fashion_real_class``; measured in README). The trained D is a classifier of real images
(``class_logits``), so ``genzoo eval`` reports its test accuracy. Logged beside the GAN metrics:
``class_nll_real`` / ``class_nll_fake`` and ``class_accuracy_real`` / ``class_accuracy_fake``.

Presets: ``cifar`` follows the paper's CIFAR-10 optimiser (Adam, lr 2e-4, beta1 0.5, batches of 100) on
DCGAN's conv nets; ``fashion`` is CPU-sized (base 32); ``mnist`` fully connected.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genzoo.losses.conditional import class_nll
from genzoo.losses.gan import discriminator_loss, generator_loss
from genzoo.models.base import ClassifiesImages
from genzoo.models.gan.cgan import LABELLED_TEST_INFO, PAPER_MNIST, TINY, CGANConfig, ConditionalGAN
from genzoo.models.registry import register_model
from genzoo.nn.conditional_gan_nets import AuxiliaryDiscriminator


@dataclass
class ACGANConfig(CGANConfig):
    class_weight: float = 1.0  # weight of the class log-likelihood in both players' losses
    fake_class_weight: float = 1.0  # share of D's class term taken on the fakes (1: the paper; 0: real only)

    def __post_init__(self):
        super().__post_init__()
        if self.class_weight < 0 or self.fake_class_weight < 0:
            raise ValueError(
                f"class_weight and fake_class_weight must be >= 0, got {self.class_weight}, {self.fake_class_weight}"
            )


CONV = {
    "arch": "conv",
    "latent_dim": 100,
    "embed_dim": 50,
    "base_channels": 32,
    "optim": "adam",
    "d_lr": 2e-4,
    "g_lr": 2e-4,
    "betas": (0.5, 0.999),
    "batch_size": 100,
}


@register_model("acgan")
class ACGAN(ConditionalGAN, ClassifiesImages):
    """Conditional G; D outputs real/fake and the class, both players maximising the class likelihood."""

    paper = "Odena, Olah & Shlens 2017, Conditional Image Synthesis with Auxiliary Classifier GANs, arXiv:1610.09585"
    Config = ACGANConfig
    presets = {
        "tiny": dict(TINY),
        "mnist": dict(PAPER_MNIST),
        "fashion": dict(CONV),
        # the same, D's class head trained on real images only
        "fashion_real_class": {**CONV, "fake_class_weight": 0.0},
        "cifar": {**CONV, "base_channels": 64},
    }
    test_info = LABELLED_TEST_INFO
    discriminator: AuxiliaryDiscriminator

    def build_discriminator(self) -> AuxiliaryDiscriminator:
        return AuxiliaryDiscriminator(self.inner_discriminator(), self.info.num_classes)

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator.both(self.real_input(x.to(self.device)))[1]  # (B, K)

    def discriminator_terms(self, real, y, fake, z, c, batch):
        cfg = self.config
        (out_real, cls_real), (out_fake, cls_fake) = self.discriminator.both(real), self.discriminator.both(fake)
        nll_real, nll_fake = class_nll(cls_real, y), class_nll(cls_fake, c)
        class_term = nll_real + cfg.fake_class_weight * nll_fake
        loss = discriminator_loss(cfg.loss, out_real, out_fake) + cfg.class_weight * class_term
        metrics = {
            "class_nll_real": nll_real.item(),
            "class_nll_fake": nll_fake.item(),
            "class_accuracy_real": (cls_real.argmax(1) == y).float().mean().item(),
        }
        return self.with_penalty(loss, self.discriminator, real, fake, metrics), out_real, out_fake, metrics

    def generator_terms(self, fake, z, c, real, y, batch):
        out, cls = self.discriminator.both(fake)  # (B,), (B, K)
        nll = class_nll(cls, c)
        loss = generator_loss(self.config.loss, out) + self.config.class_weight * nll
        return (
            loss,
            out,
            {"class_nll_fake": nll.item(), "class_accuracy_fake": (cls.argmax(1) == c).float().mean().item()},
        )
