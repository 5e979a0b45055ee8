"""Networks of the label- and code-using GANs, built around the generators and discriminators of
:mod:`genzoo.nn.gan_nets` (the networks, not the games).

* :class:`LabelledGenerator` -- G(z, y) = G'([z, e(y)]): a learned label embedding e (Mirza & Osindero
  2014, arXiv:1411.1784) or, with ``embed_dim=0``, the one-hot vector of y (InfoGAN's categorical code).
* :class:`ConcatDiscriminator` -- D(x, y) = D'([x, e(y)]): the embedding concatenated to the flattened
  image (MLP nets) or broadcast as extra input channels (conv nets), as in Mirza & Osindero.
* :class:`ProjectionDiscriminator` -- Miyato & Koyama 2018 (arXiv:1802.05637, eq. 3):
  D(x, y) = psi(phi(x)) + e(y)^T phi(x), the inner product of a class embedding with D's features.
* :class:`AuxiliaryDiscriminator` -- one adversarial output plus a second head on D's features
  (ACGAN's class logits, InfoGAN's Q network).
* :class:`ClassLogitDiscriminator` -- K class logits on D's features; its adversarial output is the
  free logit log sum_k exp(l_k) (Salimans et al. 2016, arXiv:1606.03498, Sec. 5).
* :class:`JointDiscriminator`, :class:`Encoder` -- BiGAN/ALI's D(x, z) and E(x) (Donahue et al. 2016,
  arXiv:1605.09782; Dumoulin et al. 2016, arXiv:1606.00704).

Every inner discriminator is an :class:`~genzoo.nn.gan_nets.MLPDiscriminator` or
:class:`~genzoo.nn.gan_nets.DCGANDiscriminator`: ``features(x)`` (B, F) and ``head`` (F -> 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.nn.gan_nets import DCGANDiscriminator, MLPDiscriminator
from genzoo.nn.mlp import mlp

# The unconditional discriminator inside each conditional one: ``features(x)`` (B, F), ``head`` (F -> 1).
InnerDiscriminator = MLPDiscriminator | DCGANDiscriminator


def classes_in_turn(n: int, num_classes: int, device=None) -> torch.Tensor:
    """Labels 0, 1, ..., K-1, 0, 1, ... (n,): the condition when none is given."""
    return torch.arange(n, device=device) % num_classes


class LabelledGenerator(nn.Module):
    """G(z, y) = net([z, e(y)]) with ``net`` taking ``latent_dim + embed_dim`` (or ``+ K`` one-hot) inputs.

    ``y=None`` draws the classes in turn (used when batch norm is calibrated on prior draws).
    """

    def __init__(self, net: nn.Module, num_classes: int, embed_dim: int):
        super().__init__()
        self.net, self.num_classes = net, num_classes
        self.embed = nn.Embedding(num_classes, embed_dim) if embed_dim > 0 else None

    def label_input(self, y: torch.Tensor, dtype) -> torch.Tensor:
        if self.embed is None:
            return F.one_hot(y, self.num_classes).to(dtype)  # (B, K)
        return self.embed(y).to(dtype)  # (B, E)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            y = classes_in_turn(len(z), self.num_classes, z.device)
        return self.net(torch.cat([z, self.label_input(y, z.dtype)], dim=1))  # (B, C, H, W)


class ConcatDiscriminator(nn.Module):
    """D(x, y) = inner([x, e(y)]): for conv nets ``inner`` reads C + E channels (e(y) repeated over
    the image), for MLP nets its input is the flattened image followed by e(y), shaped (D + E, 1, 1)."""

    def __init__(self, inner: InnerDiscriminator, num_classes: int, embed_dim: int, spatial: bool):
        super().__init__()
        self.inner, self.spatial = inner, spatial
        self.embed = nn.Embedding(num_classes, embed_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = self.embed(y).to(x.dtype)  # (B, E)
        if self.spatial:
            maps = e[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])  # (B, E, H, W)
            return self.inner(torch.cat([x, maps], dim=1))  # (B,)
        return self.inner(torch.cat([x.flatten(1), e], dim=1)[:, :, None, None])  # (B,)


class ProjectionDiscriminator(nn.Module):
    """D(x, y) = psi(phi(x)) + <e(y), phi(x)> (Miyato & Koyama 2018, eq. 3), phi = inner.features."""

    def __init__(self, inner: InnerDiscriminator, num_classes: int):
        super().__init__()
        self.inner = inner
        self.embed = nn.Embedding(num_classes, inner.feature_dim)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        phi = self.inner.features(x)  # (B, F)
        return self.inner.head(phi).squeeze(1) + (self.embed(y) * phi).sum(1)  # (B,)


class AuxiliaryDiscriminator(nn.Module):
    """``inner`` plus a head on its features: ``both(x)`` -> (adversarial output (B,), aux (B, outputs)).

    ``hidden`` > 0 puts one LeakyReLU layer of that width in the auxiliary head (InfoGAN's Q).
    """

    def __init__(self, inner: InnerDiscriminator, outputs: int, hidden: int = 0):
        super().__init__()
        self.inner = inner
        sizes = [inner.feature_dim, *([hidden] if hidden else []), outputs]
        self.aux = nn.Sequential(*mlp(sizes, lambda: nn.LeakyReLU(0.2), last_activation=False))

    def both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        phi = self.inner.features(x)  # (B, F)
        return self.inner.head(phi).squeeze(1), self.aux(phi)  # (B,), (B, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.both(x)[0]


class ClassLogitDiscriminator(nn.Module):
    """K class logits l(x) on ``inner``'s features; ``forward`` is the free logit log sum_k exp(l_k)
    (so sigmoid(forward(x)) = Z / (Z + 1), Z = sum_k exp(l_k)). ``inner``'s own head is not used."""

    def __init__(self, inner: InnerDiscriminator, num_classes: int):
        super().__init__()
        self.inner = inner
        self.inner.head = nn.Identity()  # replaced by the K-way layer
        self.classes = nn.Linear(inner.feature_dim, num_classes)

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        phi = self.inner.features(x)  # (B, F)
        return self.classes(phi), phi  # (B, K), (B, F)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self.logits_and_features(x)[0], dim=1)  # (B,)


class Encoder(nn.Module):
    """E(x): ``inner``'s features, then a linear map to the code (B, latent_dim)."""

    def __init__(self, inner: InnerDiscriminator, latent_dim: int):
        super().__init__()
        self.inner = inner
        self.inner.head = nn.Identity()
        self.out = nn.Linear(inner.feature_dim, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.inner.features(x))  # (B, latent_dim)


class JointDiscriminator(nn.Module):
    """D(x, z): image features phi(x) (``inner``) and a code path psi(z) (LeakyReLU layers) joined by
    LeakyReLU layers to one logit, as in BiGAN's and ALI's discriminators (D_x, D_z, D_xz)."""

    def __init__(
        self,
        inner: InnerDiscriminator,
        latent_dim: int,
        z_hidden: tuple[int, ...],
        joint_hidden: tuple[int, ...],
        dropout: float = 0.0,
    ):
        super().__init__()
        self.inner = inner
        self.inner.head = nn.Identity()
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.z_path = nn.Sequential(*mlp([latent_dim, *z_hidden], act))
        joint = [inner.feature_dim + z_hidden[-1], *joint_hidden]
        layers: list[nn.Module] = []
        for a, b in zip(joint[:-1], joint[1:]):
            layers += [nn.Dropout(dropout), nn.Linear(a, b), act()]
        layers += [nn.Dropout(dropout), nn.Linear(joint[-1], 1)]
        self.joint = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.inner.features(x), self.z_path(z)], dim=1)  # (B, F + Hz)
        return self.joint(h).squeeze(1)  # (B,)


def uniform_entropy(dims: int, low: float = -1.0, high: float = 1.0) -> float:
    """Differential entropy of U(low, high)^dims in nats."""
    return dims * math.log(high - low)
