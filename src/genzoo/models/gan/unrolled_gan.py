"""Unrolled GAN (Metz, Poole, Pfau & Sohl-Dickstein 2016, "Unrolled Generative Adversarial Networks",
arXiv:1611.02163, Sec. 2): the generator's loss is taken against the discriminator as it will be after
K more of its own updates, differentiated through those updates.

With L_D(theta_G, theta_D) the discriminator's loss, the unrolled weights are

    theta_D^0 = theta_D,    theta_D^{k+1} = theta_D^k - eta dL_D(theta_G, theta_D^k) / d theta_D^k,

and the generator minimises f_K(theta_G, theta_D) = L_G(theta_G, theta_D^K(theta_G, theta_D)), whose
gradient includes the term through d theta_D^K / d theta_G: the generator sees how the discriminator
would react to its move, which discourages hopping from mode to mode. The discriminator itself is
updated normally, with its plain loss. K = ``unrolled_steps`` (the paper compares 0, 1, 5 and 10 on the
2-D ring; 5 here, about five extra D forward-backward passes per G update), eta = ``unrolled_lr``.

The unrolled steps are plain gradient descent on copies of D's weights
(:meth:`genzoo.models.gan.gan.GAN.unrolled_discriminator`, via ``torch.func.functional_call`` and
``create_graph=True``), where the paper unrolls its Adam optimiser; every step reuses the update's
real and fake batches. ``unrolled_steps`` is an option of every GAN in genzoo; this model registers it
with the paper's 2-D setting (Appendix A): z of 256 dimensions, 128-unit ReLU layers (two in G; genzoo's
D has two LeakyReLU layers of 128), Adam with lr 1e-4 and beta1 = 0.5, batches of 512.
"""

from __future__ import annotations

from dataclasses import dataclass

from genzoo.models.gan.gan import GAN, GANConfig
from genzoo.models.registry import register_model


@dataclass
class UnrolledGANConfig(GANConfig):
    latent_dim: int = 256
    g_hidden: tuple[int, ...] = (128, 128)
    d_hidden: tuple[int, ...] = (128, 128)
    unrolled_steps: int = 5


TOY = {"optim": "adam", "d_lr": 1e-4, "g_lr": 1e-4, "betas": (0.5, 0.999), "batch_size": 512}


@register_model("unrolled_gan")
class UnrolledGAN(GAN):
    """GAN whose generator loss looks ahead through ``unrolled_steps`` differentiable D updates."""

    paper = "Metz, Poole, Pfau & Sohl-Dickstein 2016, Unrolled Generative Adversarial Networks, arXiv:1611.02163"
    Config = UnrolledGANConfig
    presets = {
        "tiny": {"latent_dim": 4, "g_hidden": (16,), "d_hidden": (16,), "unrolled_steps": 2, "batch_size": 8},
        "ring": dict(TOY),
        "grid": dict(TOY),
    }
