"""What the 2-D recurrent PixelRNNs share (van den Oord et al. 2016, arXiv:1601.06759, sec. 3):
the residual-stream sizes and their checks, and the model wrapper around
:class:`genzoo.nn.recurrent.RecurrentPixelNet` (teacher-forced logits and the cached step).
A subclass only says which LSTM layer to stack (``make_layer``).
"""
from __future__ import annotations

from dataclasses import dataclass

from genzoo.data.base import position
from genzoo.models.base import AutoregressiveModel
from genzoo.nn.recurrent import RecurrentPixelNet


@dataclass
class RecurrentConfig:
    hidden: int = 32  # h: units per gate; the residual stream has 2h features (Fig. 5)
    layers: int = 4
    embed: int = 16  # per-channel embedding of the one-hot input
    head: int = 64  # width of the hidden 1x1 output convolution
    first_kernel: int = 7  # the mask-A convolution of the first layer

    def __post_init__(self):
        for key in ("hidden", "layers", "embed", "head"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.first_kernel < 3 or self.first_kernel % 2 == 0:
            raise ValueError(f"first_kernel must be odd and >= 3, got {self.first_kernel}")


class RecurrentPixelModel(AutoregressiveModel):
    """Subclasses define ``make_layer(self)``: one residual LSTM layer, called once per layer."""

    family = "autoregressive"

    def __init__(self, config: RecurrentConfig, info):
        super().__init__(config, info)
        self.net = RecurrentPixelNet(
            self.make_layer, channels=info.channels, num_values=info.num_values, embed=config.embed,
            features=2 * config.hidden, layers=config.layers, head=config.head, first_kernel=config.first_kernel)

    def logits(self, onehot, condition=None):
        self.check_condition(condition)
        return self.net(onehot)  # (B, C, H, W, K)

    def init_cache(self, n, condition=None):
        return self.net.init_cache(n, self.info.height, self.info.width)

    def step(self, cache, t, canvas, condition=None):
        c, h, w = position(t, self.info)
        return self.net.step(cache, canvas, h, w, c), cache
