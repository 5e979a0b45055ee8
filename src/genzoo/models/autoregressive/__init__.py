"""Autoregressive models: p(x) = prod_t p(x_t | x_<t) over sub-pixels in raster order."""

from genzoo.models.autoregressive import (
    diagonal_bilstm,
    gated_pixelcnn,
    multiscale_pixelrnn,
    pixelcnn,
    pixelcnn_pp,
    pixelrnn,
    row_lstm,
)

__all__ = [
    "pixelrnn",
    "pixelcnn",
    "gated_pixelcnn",
    "pixelcnn_pp",
    "row_lstm",
    "diagonal_bilstm",
    "multiscale_pixelrnn",
]
