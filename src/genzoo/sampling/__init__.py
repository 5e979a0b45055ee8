"""Sampling, completion and masks shared by every family."""

from genzoo.sampling.masks import MASKS, make_mask

__all__ = ["MASKS", "make_mask"]
