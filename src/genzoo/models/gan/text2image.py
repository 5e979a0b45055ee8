"""Text-to-image GAN (Reed, Akata, Yan, Logeswaran, Schiele & Lee 2016, "Generative Adversarial Text to
Image Synthesis", arXiv:1605.05396): the conditional GAN game with a caption in place of a class label,
a matching-aware discriminator (GAN-CLS) and interpolated text embeddings (GAN-INT).

* Text encoder (:class:`~genzoo.nn.text_nets.TextEncoder`): h = phi(t), a GRU over the caption's word
  embeddings compressed by a LeakyReLU layer to ``embed_dim`` numbers (the paper pre-trains a
  char-CNN-RNN; here the encoder is trained with the GAN, by the discriminator's loss: its weights are
  updated with D's, and G reads h without passing gradients back into it).
* G(z, h) = G'([z, h]) and D(x, h) -- h joined to D's last feature map (``d_condition=concat``, the
  paper's depth concatenation) or projected onto it (``projection``), on the GAN core's MLP or DCGAN nets.
* GAN-CLS (Sec. 4.2, Algorithm 1): D's loss counts a real image with a mismatched caption as a negative
  beside the fakes, L_D = (d(r, w) + d(r, f)) / 2 (:func:`genzoo.losses.matching.matching_aware_loss`);
  the mismatched caption of image i is the caption of image i + 1 of the (shuffled) batch, as the paper
  draws "a random other text". ``matching_aware=false`` gives the plain conditional loss d(r, f).
* GAN-INT (Sec. 4.3, eq. 5): G's loss adds ``int_weight`` times its loss on fakes drawn for
  h_int = beta h_i + (1 - beta) h_{i+1} (``int_beta``, 0.5 in the paper), with fresh noise; 0 turns it off.

Data: ``captions:PATH`` (:mod:`genzoo.data.captions`), whose batches carry ``tokens`` (B, L), one caption
per image; the vocabulary travels in the run's image info. Sampling: ``condition`` is a caption per image,
token ids (n, L) padded with ``<pad>`` (:meth:`Text2Image.text_condition` makes them from text, and
``genzoo sample RUN --text "a dark coat"`` calls it); without one, each sample reads a one-word caption,
the vocabulary's words in turn. Logged beside the GAN core's metrics: ``d_wrong`` (D on real images with
mismatched text) and ``d_fake_int`` (D on the GAN-INT fakes).

Presets: ``tiny`` (the shared suite), ``fashion`` (CPU-sized DCGAN nets for 28x28 grey images, z of 64,
a 128-d text embedding as in the paper), ``fashion_small`` (the same at half the width, for a CPU budget of
minutes), ``cifar`` (32x32 RGB); Adam(2e-4, beta1 0.5) as in the paper.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import nn

from genzoo.data.base import ImageInfo
from genzoo.data.captions import caption_vocabulary, encode_captions
from genzoo.data.tokens import SPECIALS
from genzoo.errors import GenzooError
from genzoo.losses.gan import discriminator_loss, generator_loss
from genzoo.losses.matching import interpolate_embeddings, matching_aware_loss
from genzoo.models.gan.cgan import CGANConfig, ConditionalGAN
from genzoo.models.registry import register_model
from genzoo.nn.text_nets import (
    TextEncoder,
    TextGenerator,
    TextJointDiscriminator,
    TextProjectionDiscriminator,
    caption_lengths,
)


class TextConditioned(abc.ABC):
    """A capability: the model draws images for captions; ``text_condition(texts)`` turns captions into
    its ``condition`` and lists the words it does not know (read as ``<unk>``)."""

    @abc.abstractmethod
    def text_condition(self, texts: list[str]) -> tuple[torch.Tensor, list[str]]:
        """(token ids (n, L), unknown words)."""


@dataclass
class Text2ImageConfig(CGANConfig):
    embed_dim: int = 128  # the compressed text embedding h (G's input beside z; joined to D's features)
    word_dim: int = 64  # word embedding width
    text_hidden: int = 128  # the text encoder's GRU state
    joint_hidden: int = 256  # d_condition=concat: D's hidden layer on [phi(x), h]
    matching_aware: bool = True  # GAN-CLS: real images with mismatched text are negatives
    int_weight: float = 1.0  # GAN-INT: weight of G's loss on interpolated embeddings (0 = off)
    int_beta: float = 0.5  # GAN-INT: h_int = beta h_1 + (1 - beta) h_2

    def __post_init__(self):
        super().__post_init__()
        for key in ("word_dim", "text_hidden", "joint_hidden"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.int_weight < 0:
            raise ValueError(f"int_weight must be >= 0, got {self.int_weight}")
        if not 0 <= self.int_beta <= 1:
            raise ValueError(f"int_beta must be in [0, 1], got {self.int_beta}")


ADAM = {"optim": "adam", "d_lr": 2e-4, "g_lr": 2e-4, "betas": (0.5, 0.999)}
TINY_VOCAB = (*SPECIALS, "a", "dark", "light", "coat", "bag", "small")


@register_model("text2image")
class Text2Image(ConditionalGAN, TextConditioned):
    """G(z, phi(t)) and a matching-aware D(x, phi(t)) with a text encoder phi trained by D's loss."""

    paper = (
        "Reed, Akata, Yan, Logeswaran, Schiele & Lee 2016, Generative Adversarial Text to Image Synthesis, "
        "arXiv:1605.05396"
    )
    Config = Text2ImageConfig
    uses_labels = False  # the condition is the batch's captions, not class labels
    presets = {
        "tiny": {
            "latent_dim": 4,
            "embed_dim": 3,
            "word_dim": 4,
            "text_hidden": 5,
            "joint_hidden": 6,
            "g_hidden": (16,),
            "d_hidden": (16,),
            "batch_size": 8,
            "lr": 1e-3,
        },
        "fashion": {
            "arch": "conv",
            "latent_dim": 64,
            "base_channels": 32,
            "embed_dim": 128,
            "word_dim": 64,
            "text_hidden": 128,
            "d_condition": "projection",
            "batch_size": 64,
            **ADAM,
        },
        # the same nets at half the width: about a third of the CPU time per step (the benchmark's budget)
        "fashion_small": {
            "arch": "conv",
            "latent_dim": 64,
            "base_channels": 16,
            "embed_dim": 128,
            "word_dim": 64,
            "text_hidden": 128,
            "d_condition": "projection",
            "batch_size": 64,
            **ADAM,
        },
        "cifar": {
            "arch": "conv",
            "latent_dim": 100,
            "base_channels": 64,
            "embed_dim": 128,
            "d_condition": "projection",
            "batch_size": 64,
            **ADAM,
        },
    }
    test_info = ImageInfo(channels=1, height=4, width=4, num_values=5, vocab=TINY_VOCAB)

    def __init__(self, config: Text2ImageConfig, info: ImageInfo):
        if len(info.vocab) <= len(SPECIALS) or info.tokens:
            raise GenzooError(
                f"{self.name}: the data has no captions (a vocabulary of words beside images); "
                "train it on captions:PATH data"
            )
        super().__init__(config, info)
        self.vocab = caption_vocabulary(info)
        self.text_encoder = TextEncoder(len(self.vocab), config.word_dim, config.text_hidden, config.embed_dim)

    # -- networks -------------------------------------------------------------------------------------
    def build_generator(self) -> nn.Module:
        return TextGenerator(self.inner_generator(self.config.embed_dim), self.config.embed_dim)

    def build_discriminator(self) -> nn.Module:
        cfg = self.config
        if cfg.d_condition == "projection":
            return TextProjectionDiscriminator(self.inner_discriminator(), cfg.embed_dim)
        return TextJointDiscriminator(self.inner_discriminator(), cfg.embed_dim, cfg.joint_hidden)

    def player_parameters(self, player: str) -> list[nn.Parameter]:
        """D's player owns the text encoder too: it is trained by the matching-aware loss."""
        params = super().player_parameters(player)
        if player == "discriminator":
            params += [p for p in self.text_encoder.parameters() if p.requires_grad]
        return params

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Captions (B, L) -> text embeddings h = phi(t) (B, embed_dim)."""
        return self.text_encoder(tokens.to(self.device))

    # -- the condition: captions ----------------------------------------------------------------------
    def text_condition(self, texts: list[str]) -> tuple[torch.Tensor, list[str]]:
        if not texts:
            raise GenzooError(f"{self.name}: give at least one caption")
        tokens, unknown = encode_captions(list(texts), self.vocab)
        return tokens, unknown

    def check_condition(self, condition) -> None:
        if condition is None:
            return
        v = len(self.vocab)
        if not torch.is_tensor(condition) or condition.dim() != 2 or condition.is_floating_point():
            raise GenzooError(
                f"{self.name}: the condition is a caption per image, token ids (n, L) (genzoo sample --text), "
                "not a class label"
            )
        if condition.numel() and (int(condition.min()) < 0 or int(condition.max()) >= v):
            raise GenzooError(f"{self.name}: a caption holds a token id outside the vocabulary (0-{v - 1})")
        if condition.shape[1] == 0 or bool((caption_lengths(condition) == 0).any()):
            raise GenzooError(f"{self.name}: an empty caption (it must start with a word, not <pad>)")

    def default_condition(self, n: int) -> torch.Tensor:
        """One-word captions: the vocabulary's words in turn (n, 1)."""
        words = len(self.vocab) - len(SPECIALS)
        return (len(SPECIALS) + torch.arange(n) % words).unsqueeze(1)

    def decode_unit(self, z, condition=None):
        self.check_condition(condition)
        if condition is None:
            condition = self.default_condition(len(z))
        y = self.generate(z, condition.to(z.device))
        return y if self.info.continuous else (y + 1) / 2

    def batch_labels(self, batch) -> torch.Tensor:
        """The real batch's captions (B, L), refused by name when the batch has none."""
        tokens = batch.get("tokens")
        if tokens is None:
            raise GenzooError(f"{self.name}: the batch has no captions 'tokens'; train it on captions:PATH data")
        return tokens.to(self.device)

    def generate(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """G(z, phi(t)); G's loss does not reach the text encoder (h is detached)."""
        return self.generator(z, self.embed(condition).detach())  # (B, C', H, W)

    # -- the game -------------------------------------------------------------------------------------
    def discriminator_terms(self, real, y, fake, z, c, batch):
        cfg = self.config
        h = self.embed(y)  # (B, E), with gradients into the text encoder
        out_real, out_fake = self.discriminator(real, h), self.discriminator(fake, h)  # (B,), (B,)
        metrics: dict = {}
        if cfg.matching_aware:
            out_wrong = self.discriminator(real, h.roll(1, dims=0))  # each image with the next one's caption
            loss = matching_aware_loss(cfg.loss, out_real, out_wrong, out_fake)
            metrics["d_wrong"] = self._shown(out_wrong)
        else:
            loss = discriminator_loss(cfg.loss, out_real, out_fake)
        loss = self.with_penalty(loss, lambda x: self.discriminator(x, h), real, fake, metrics)
        return loss, out_real, out_fake, metrics

    def generator_terms(self, fake, z, c, real, y, batch):
        cfg = self.config
        h = self.embed(c).detach()  # (B, E)
        out = self.discriminator(fake, h)  # (B,)
        loss = generator_loss(cfg.loss, out)
        metrics: dict = {}
        if cfg.int_weight > 0 and len(h) > 1:
            h_int = interpolate_embeddings(h, h.roll(1, dims=0), cfg.int_beta)  # (B, E)
            out_int = self.discriminator(self.generator(self.prior(len(h)), h_int), h_int)  # (B,)
            loss = loss + cfg.int_weight * generator_loss(cfg.loss, out_int)
            metrics["d_fake_int"] = self._shown(out_int)
        return loss, out, metrics
