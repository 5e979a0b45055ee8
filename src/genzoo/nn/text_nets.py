"""Networks of text-conditioned GANs (Reed, Akata, Yan, Logeswaran, Schiele & Lee 2016, "Generative
Adversarial Text to Image Synthesis", arXiv:1605.05396, Sec. 4 and Fig. 2), built around the generators
and discriminators of :mod:`genzoo.nn.gan_nets`.

* :class:`TextEncoder` -- phi(t): word embeddings, a GRU over the caption, its state after the last word,
  then a fully connected layer with LeakyReLU(0.2) compressing it to the embedding fed to both players
  (the paper compresses its char-CNN-RNN embedding the same way, to 128 numbers).
* :class:`TextGenerator` -- G(z, e) = G'([z, e]): the compressed text embedding beside the noise.
* :class:`TextJointDiscriminator` -- D(x, e) = w^T LeakyReLU(A [phi(x), e] + b) + c: the embedding joins
  D's last feature map (flattened), then one hidden layer to the logit -- the paper's depth
  concatenation at the 4x4 map followed by a 1x1 and a 4x4 convolution, written as fully connected layers.
* :class:`TextProjectionDiscriminator` -- D(x, e) = psi(phi(x)) + (W e)^T phi(x): Miyato & Koyama's
  projection (arXiv:1802.05637, eq. 3) with a linear map of the text embedding in place of a class row.
"""

from __future__ import annotations

import torch
from torch import nn

from genzoo.data.tokens import PAD_ID
from genzoo.nn.conditional_gan_nets import InnerDiscriminator


def caption_lengths(tokens: torch.Tensor) -> torch.Tensor:
    """Words per caption (B,): the tokens before the first ``<pad>`` (captions are padded at the end)."""
    return (tokens != PAD_ID).long().cumprod(dim=1).sum(dim=1)


class TextEncoder(nn.Module):
    """Token ids (B, L), padded with ``<pad>`` after the last word -> embeddings (B, out_dim)."""

    def __init__(self, vocab_size: int, word_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.words = nn.Embedding(vocab_size, word_dim, padding_idx=PAD_ID)
        self.rnn = nn.GRU(word_dim, hidden, batch_first=True)
        self.out = nn.Sequential(nn.Linear(hidden, out_dim), nn.LeakyReLU(0.2))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(self.words(tokens))  # (B, L, hidden)
        last = (caption_lengths(tokens) - 1).clamp_min(0)  # (B,) index of each caption's last word
        h = states[torch.arange(len(tokens), device=tokens.device), last]  # (B, hidden)
        return self.out(h)  # (B, out_dim)


class TextGenerator(nn.Module):
    """G(z, e) = net([z, e]); ``e=None`` (batch-norm calibration on prior draws) reads a zero embedding."""

    def __init__(self, net: nn.Module, embed_dim: int):
        super().__init__()
        self.net, self.embed_dim = net, embed_dim

    def forward(self, z: torch.Tensor, e: torch.Tensor | None = None) -> torch.Tensor:
        if e is None:
            e = z.new_zeros(len(z), self.embed_dim)
        return self.net(torch.cat([z, e.to(z.dtype)], dim=1))  # (B, C, H, W)


class TextJointDiscriminator(nn.Module):
    """D(x, e): [phi(x), e] through one LeakyReLU layer of ``hidden`` units to a logit (B,)."""

    def __init__(self, inner: InnerDiscriminator, embed_dim: int, hidden: int):
        super().__init__()
        self.inner = inner
        self.inner.head = nn.Identity()  # replaced by the joint layers
        self.joint = nn.Sequential(
            nn.Linear(inner.feature_dim + embed_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.inner.features(x), e.to(x.dtype)], dim=1)  # (B, F + E)
        return self.joint(h).squeeze(1)  # (B,)


class TextProjectionDiscriminator(nn.Module):
    """D(x, e) = psi(phi(x)) + <W e, phi(x)> (B,)."""

    def __init__(self, inner: InnerDiscriminator, embed_dim: int):
        super().__init__()
        self.inner = inner
        self.project = nn.Linear(embed_dim, inner.feature_dim, bias=False)
        nn.init.normal_(self.project.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        phi = self.inner.features(x)  # (B, F)
        return self.inner.head(phi).squeeze(1) + (self.project(e.to(x.dtype)) * phi).sum(1)  # (B,)
