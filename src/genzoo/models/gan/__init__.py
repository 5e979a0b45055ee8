"""Generative adversarial networks: one GAN core, each paper a config and its presets."""

from genzoo.models.gan import (
    acgan,
    age_cgan,
    ali,
    bigan,
    cgan,
    cyclegan,
    dcgan,
    ebgan,
    gan,
    infogan,
    lapgan,
    pix2pix,
    ssgan,
    text2image,
    unrolled_gan,
    wgan,
)

__all__ = [
    "gan",
    "dcgan",
    "wgan",
    "ebgan",
    "unrolled_gan",
    "cgan",
    "acgan",
    "infogan",
    "ssgan",
    "bigan",
    "ali",
    "lapgan",
    "text2image",
    "pix2pix",
    "cyclegan",
    "age_cgan",
]
