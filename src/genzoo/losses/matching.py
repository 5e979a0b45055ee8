"""The matching-aware discriminator loss of GAN-CLS and the interpolated embeddings of GAN-INT (Reed,
Akata, Yan, Logeswaran, Schiele & Lee 2016, "Generative Adversarial Text to Image Synthesis",
arXiv:1605.05396, Sec. 4.2-4.3 and Algorithm 1).

GAN-CLS. D scores three kinds of (image, text) pairs: s_r = D(x, h) a real image with its own text,
s_w = D(x, h_hat) a real image with mismatched text, s_f = D(x_hat, h) a fake with the text it was drawn
for. Algorithm 1's D objective, log(s_r) + (log(1 - s_w) + log(1 - s_f)) / 2, is, as a loss to minimise
with logits r, w, f (one per image, means over the batch),

    L_D = E softplus(-r) + (E softplus(w) + E softplus(f)) / 2
        = (d(r, w) + d(r, f)) / 2,   d the plain discriminator loss of :mod:`genzoo.losses.gan`,

and the second form applies to any named loss whose D loss is a real term plus a fake term (logistic,
hinge, Wasserstein, least squares): both kinds of negative count half.

GAN-INT (eq. 5). G is also trained on embeddings between two captions' embeddings,
h_int = beta h_1 + (1 - beta) h_2 (beta = 0.5 in the paper), for which no real image exists, so only
G's loss uses them: E log(1 - D(G(z, h_int), h_int)), here the named generator loss of the pair.
"""

from __future__ import annotations

import torch

from genzoo.losses.gan import discriminator_loss


def matching_aware_loss(
    name: str, real: torch.Tensor, wrong: torch.Tensor, fake: torch.Tensor, *, margin: float = 1.0
) -> torch.Tensor:
    """GAN-CLS's D loss from D's outputs on (real, matching text), (real, mismatched text), (fake, text)."""
    return 0.5 * (
        discriminator_loss(name, real, wrong, margin=margin) + discriminator_loss(name, real, fake, margin=margin)
    )


def interpolate_embeddings(h1: torch.Tensor, h2: torch.Tensor, beta: float) -> torch.Tensor:
    """GAN-INT's beta h1 + (1 - beta) h2 (B, E)."""
    return beta * h1 + (1.0 - beta) * h2
