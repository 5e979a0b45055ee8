"""Shared layers: masked and causal convolutions with their incremental (cached) forms."""
