"""ALI, adversarially learned inference (Dumoulin, Belghazi, Poole, Mastropietro, Lamb, Arjovsky &
Courville 2016, "Adversarially Learned Inference", arXiv:1606.00704): BiGAN's game (eq. 1-2: D tells
the joint q(x, z) = q(x) q(z | x) from p(x, z) = p(z) p(x | z)) with a *stochastic* encoder,
q(z | x) = N(mu(x), sigma(x)^2), sampled by reparameterisation (Sec. 2.3) so the generator player's
gradient flows through the draw, and dropout in the discriminator (0.2, Appendix A). Everything else is
:class:`~genzoo.models.gan.bigan.BiGAN`; ``encode`` gives the mean mu(x).
"""

from __future__ import annotations

from dataclasses import dataclass

from genzoo.models.gan.bigan import BiGAN, BiGANConfig
from genzoo.models.registry import register_model


@dataclass
class ALIConfig(BiGANConfig):
    stochastic_encoder: bool = True
    d_dropout: float = 0.2


@register_model("ali")
class ALI(BiGAN):
    """BiGAN with a Gaussian encoder q(z | x) (reparameterised draws) and dropout in D."""

    paper = (
        "Dumoulin, Belghazi, Poole, Mastropietro, Lamb, Arjovsky & Courville 2016, Adversarially Learned "
        "Inference, arXiv:1606.00704"
    )
    Config = ALIConfig
    # The paper's optimiser (Adam, lr 1e-4, beta1 0.5, batches of 100); BiGAN's nets otherwise.
    presets = {
        k: {**v, **({} if k == "tiny" else {"d_lr": 1e-4, "g_lr": 1e-4, "batch_size": 100})}
        for k, v in BiGAN.presets.items()
    }
