"""Semi-supervised GAN (Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen 2016, "Improved Techniques
for Training GANs", arXiv:1606.03498, Sec. 5): the discriminator is a K-class classifier whose output
also tells real from generated, trained on a few labelled images plus all the unlabelled ones.

D gives K logits l_1(x) .. l_K(x); generated images are the (K+1)-th class, whose logit is fixed at 0
(the *free-logit* trick: the softmax over K+1 classes has one redundant logit). Then

    p(y = k | x, real) = softmax(l(x))_k,   D(x) = 1 - p(y = K+1 | x) = Z(x) / (Z(x) + 1),  Z = sum_k exp l_k,

so the probability "real" is sigmoid(logsumexp_k l_k). D minimises (:mod:`genzoo.losses.conditional`)

    L = L_supervised + w L_unsupervised,
    L_supervised   = -E_{(x, y) labelled} log p(y | x, real),
    L_unsupervised = -E_x log D(x) - E_z log(1 - D(G(z)))       (w = ``gan_weight``, 1 in the paper),

and G, unconditional, matches features (Sec. 3.1; ``feature_matching``): it minimises
||E f(x) - E f(G(z))||^2 with f D's last hidden layer (or, with ``feature_matching=false``, the
non-saturating -E log D(G(z))). ``gan_weight=0`` trains the same D on the labelled images alone: the
supervised baseline of the paper's tables.

Data: a labelled data set with most training labels hidden by ``--labels-per-class N`` (drawn with the
run's seed and recorded; :mod:`genzoo.data.labels`); every batch brings labelled companions drawn from
the N x K labelled images, so the supervised term sees labels in every update. Fully labelled data
works too (every image is then labelled). The trained D classifies images (``class_logits``): ``genzoo
eval`` reports its test accuracy. Logged: ``d_real``/``d_fake`` (D(x) as a probability),
``supervised``, ``unsupervised``, ``labelled_accuracy``.

Presets: ``mnist`` is the paper's MNIST model without its weight normalisation and input noise
(D: 1000-500-250-250-250 units; G: 500-500; z of 100; Adam lr 3e-3, beta1 0.5, batches of 100);
``fashion`` is CPU-sized (D 500-250-250); ``tiny`` for tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from genzoo.errors import GenzooError
from genzoo.losses.conditional import feature_matching, ssgan_discriminator_loss
from genzoo.losses.gan import generator_loss
from genzoo.models.base import ClassifiesImages, ModelOutput
from genzoo.models.gan.cgan import LABELLED_TEST_INFO
from genzoo.models.gan.gan import GAN, GANConfig, sample_spread
from genzoo.models.registry import register_model
from genzoo.nn.conditional_gan_nets import ClassLogitDiscriminator, InnerDiscriminator
from genzoo.nn.gan_nets import DCGANDiscriminator, MLPDiscriminator


@dataclass
class SSGANConfig(GANConfig):
    gan_weight: float = 1.0  # w: weight of the unsupervised (real vs fake) term in D's loss; 0 = supervised only
    feature_matching: bool = True  # G matches D's last-hidden-layer means (else the non-saturating loss)

    def __post_init__(self):
        super().__post_init__()
        if self.gan_weight < 0:
            raise ValueError(f"gan_weight must be >= 0, got {self.gan_weight}")
        if self.loss != "non_saturating" or self.unrolled_steps or self.minibatch_features or self.clip:
            raise ValueError(
                "ssgan's discriminator loss is the free-logit logistic loss: loss=non_saturating, "
                "without unrolling, minibatch features or clipping"
            )


PAPER_MNIST = {
    "latent_dim": 100,
    "g_hidden": (500, 500),
    "d_hidden": (1000, 500, 250, 250, 250),
    "optim": "adam",
    "d_lr": 3e-3,
    "g_lr": 3e-3,
    "betas": (0.5, 0.999),
    "batch_size": 100,
}


@register_model("ssgan")
class SSGAN(GAN, ClassifiesImages):
    """A K-class discriminator (real = the free logit) and a feature-matching generator."""

    paper = (
        "Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen 2016, Improved Techniques for Training GANs, "
        "arXiv:1606.03498"
    )
    Config = SSGANConfig
    takes_partial_labels: ClassVar[bool] = True
    presets = {
        "tiny": {"latent_dim": 4, "g_hidden": (16,), "d_hidden": (16,), "batch_size": 8, "lr": 1e-3},
        "mnist": dict(PAPER_MNIST),
        "fashion": {**PAPER_MNIST, "d_hidden": (500, 250, 250), "d_lr": 1e-3, "g_lr": 1e-3},
    }
    test_info = LABELLED_TEST_INFO
    discriminator: ClassLogitDiscriminator

    def __init__(self, config, info):
        if info.num_classes < 2:
            raise GenzooError(
                f"ssgan: the data has no class labels (num_classes = {info.num_classes}); its "
                "discriminator is a classifier: train it on labelled data, e.g. with --labels-per-class"
            )
        super().__init__(config, info)

    def build_discriminator(self) -> ClassLogitDiscriminator:
        cfg = self.config
        inner: InnerDiscriminator
        if cfg.arch == "conv":
            inner = DCGANDiscriminator(self.shape, cfg.base_channels, cfg.norm)
        else:
            inner = MLPDiscriminator(self.shape, cfg.d_hidden)
        return ClassLogitDiscriminator(inner, self.info.num_classes)

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator.logits_and_features(self.real_input(x.to(self.device)))[0]  # (B, K)

    def labelled_batch(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The labelled images of a batch: its companions when labels are partly hidden, else the batch."""
        if "x_labelled" in batch:
            return batch["x_labelled"], batch["y_labelled"].to(self.device)
        if "y" in batch and "labelled" not in batch:
            return batch["x"], batch["y"].to(self.device)
        raise GenzooError(
            "ssgan: the batch has no labelled images; train it on labelled data (all labels, or --labels-per-class N)"
        )

    def player_loss(self, player, batch):
        real = self.real_input(batch["x"])  # (B, C', H, W)
        z = self.prior(len(real))  # (B, D)
        disc = self.discriminator
        if player == "discriminator":
            x_lab, y_lab = self.labelled_batch(batch)
            with torch.no_grad():
                fake = self.generator(z)  # (B, C', H, W)
            l_real, l_fake = disc.logits_and_features(real)[0], disc.logits_and_features(fake)[0]  # (B, K) each
            l_lab = disc.logits_and_features(self.real_input(x_lab))[0]  # (B_l, K)
            _, sup, unsup = ssgan_discriminator_loss(l_real, l_fake, l_lab, y_lab)
            loss = sup + self.config.gan_weight * unsup
            metrics = {
                "d_real": self._shown(torch.logsumexp(l_real, 1)),
                "d_fake": self._shown(torch.logsumexp(l_fake, 1)),
                "supervised": sup.item(),
                "unsupervised": unsup.item(),
                "labelled_accuracy": (l_lab.argmax(1) == y_lab).float().mean().item(),
            }
            return ModelOutput(loss, metrics)
        if player != "generator":
            raise GenzooError(f"{self.name} has players discriminator and generator, not {player!r}")
        fake = self.generator(z)  # (B, C', H, W)
        l_fake, f_fake = disc.logits_and_features(fake)
        if self.config.feature_matching:
            with torch.no_grad():
                f_real = disc.logits_and_features(real)[1]  # (B, F)
            loss = feature_matching(f_real, f_fake)
        else:
            loss = generator_loss("non_saturating", torch.logsumexp(l_fake, 1))
        (grad,) = torch.autograd.grad(loss, fake, retain_graph=True)  # (B, C', H, W)
        metrics = {
            "d_fake": self._shown(torch.logsumexp(l_fake, 1)),
            "g_grad_norm": (grad.flatten(1).norm(dim=1).mean() * len(fake)).item(),
            "sample_spread": sample_spread(fake.detach(), real),
        }
        return ModelOutput(loss, metrics)
