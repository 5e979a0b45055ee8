"""Losses and regularisers chosen by name (GAN losses: :mod:`genzoo.losses.gan`)."""

from genzoo.losses.gan import (
    LOSSES,
    GANLoss,
    GradientPenalty,
    LossName,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    pulling_away,
)

__all__ = [
    "LOSSES",
    "GANLoss",
    "GradientPenalty",
    "LossName",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "pulling_away",
]
