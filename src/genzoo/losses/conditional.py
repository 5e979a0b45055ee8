"""The extra loss terms of the label- and code-using GANs, each a small function on fixed outputs.

* ACGAN (Odena, Olah & Shlens 2017, arXiv:1610.09585, Sec. 3): the class log-likelihood
  L_C = E log P(C = c | x_real) + E log P(C = c | x_fake); D maximises L_S + L_C, G maximises
  L_C - L_S. As losses: :func:`class_nll` is -E log softmax(l)_c, added to each player's GAN loss
  (D: on real and fake images; G: on its fakes).
* Semi-supervised GAN (Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen 2016, arXiv:1606.03498,
  Sec. 5): a K-class discriminator with logits l_1..l_K and the (K+1)-th "fake" logit fixed at 0, so
  D(x) = Z(x) / (Z(x) + 1), Z(x) = sum_k exp(l_k(x)): the probability "real" is sigmoid of the
  *free logit* logsumexp(l) (:func:`free_logit`). D's loss (:func:`ssgan_discriminator_loss`) is
  L_supervised + L_unsupervised = -E_lab log p(y | x, y < K+1) - E_x log D(x) - E_z log(1 - D(G(z))),
  and G matches features (Sec. 3.1, :func:`feature_matching`): ||E f(x) - E f(G(z))||_2^2.
* InfoGAN (Chen, Duan, Houthooft, Schulman, Sutskever & Abbeel 2016, arXiv:1606.03657, eq. 4-6): the
  variational lower bound L_I(G, Q) = E_{c ~ P(c), x ~ G(z, c)} log Q(c | x) + H(c) <= I(c; G(z, c)).
  :func:`categorical_mi_bound` is the term of a uniform categorical code (H = log K; the bound is at most
  log K because log Q <= 0); :func:`gaussian_code_log_likelihood` is E log Q(c | x) of continuous codes
  under a factored Gaussian Q with unit variance (their H(c) is a constant the loss does not need; for
  densities the bound need not stay below it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def class_nll(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-E log softmax(logits)_y: logits (B, K), labels (B,) -> scalar (nats)."""
    return F.cross_entropy(logits, y)


def free_logit(logits: torch.Tensor) -> torch.Tensor:
    """logsumexp_k l_k (B,): sigmoid of it is Z / (Z + 1) with Z = sum_k exp(l_k)."""
    return torch.logsumexp(logits, dim=1)


def ssgan_discriminator_loss(
    logits_real: torch.Tensor,
    logits_fake: torch.Tensor,
    logits_labelled: torch.Tensor | None = None,
    y_labelled: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, supervised, unsupervised) with
    unsupervised = E softplus(-lse(l(x))) + E softplus(lse(l(G(z)))) = -E log D(x) - E log(1 - D(G(z))),
    supervised = -E log softmax(l(x_lab))_y (0 without labelled images)."""
    unsup = F.softplus(-free_logit(logits_real)).mean() + F.softplus(free_logit(logits_fake)).mean()
    if logits_labelled is None or len(logits_labelled) == 0:
        sup = logits_real.sum() * 0
    elif y_labelled is None:
        raise ValueError("ssgan_discriminator_loss: logits_labelled given without y_labelled")
    else:
        sup = class_nll(logits_labelled, y_labelled)
    return sup + unsup, sup, unsup


def feature_matching(f_real: torch.Tensor, f_fake: torch.Tensor) -> torch.Tensor:
    """||E f(x) - E f(G(z))||_2^2 over the batch: features (B, F) each -> scalar."""
    return ((f_real.mean(0) - f_fake.mean(0)) ** 2).sum()


def categorical_mi_bound(q_logits: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """log K + E log Q(c | x) for a uniform code over K values: q_logits (B, K), c (B,) -> scalar <= log K."""
    k = q_logits.shape[1]
    return math.log(k) - F.cross_entropy(q_logits, c)


def gaussian_code_log_likelihood(mean: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """E sum_l log N(c_l; mean_l, 1): Q's fit to continuous codes, means and codes (B, L) -> scalar."""
    return (-0.5 * (c - mean) ** 2 - 0.5 * math.log(2 * math.pi)).sum(1).mean()
