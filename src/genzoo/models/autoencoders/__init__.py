"""Autoencoders and the variational autoencoder: x -> code -> x."""

from genzoo.models.autoencoders import autoencoder, denoising_autoencoder, sparse_autoencoder, vae

__all__ = ["autoencoder", "sparse_autoencoder", "denoising_autoencoder", "vae"]
