"""PixelRNN as in the lecture's Pokémon-creation exercise: an LSTM over the pixel sequence.

Each sub-pixel, in raster order (channels innermost), is fed as a 1-of-N vector; the LSTM's
output at step t passes through a linear layer and a softmax over the N values to give
p(x_t | x_<t), so log p(x) = sum_t log p(x_t | x_<t) is exact (eq. 1-2 of van den Oord,
Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks", ICML 2016, arXiv:1601.06759).
Step 0 sees a start symbol (index N). The 2-D Row LSTM and Diagonal BiLSTM of that paper are
separate models; this is the lecture's 1-D sequence form ("a 1-layer LSTM with 512 cells").

Sampling carries the LSTM state from pixel to pixel, so each new pixel costs one LSTM step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.models.base import AutoregressiveModel
from genzoo.models.registry import register_model


@dataclass
class PixelRNNConfig:
    hidden: int = 512
    layers: int = 1
    dropout: float = 0.0

    def __post_init__(self):
        if self.hidden < 1 or self.layers < 1:
            raise ValueError("hidden and layers must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")


@register_model("pixelrnn")
class PixelRNN(AutoregressiveModel):
    family = "autoregressive"
    paper = "van den Oord et al. 2016, Pixel Recurrent Neural Networks, arXiv:1601.06759 (lecture's 1-D LSTM form)"
    Config = PixelRNNConfig
    presets = {
        "lecture": {"hidden": 512, "layers": 1, "batch_size": 32, "lr": 1e-3},
        "small": {"hidden": 256, "layers": 1, "batch_size": 32, "lr": 2e-3},
        "quick": {
            "hidden": 128,
            "layers": 1,
            "batch_size": 32,
            "lr": 3e-3,
            "sample_every": 200,
            "checkpoint_every": 200,
        },
        "tiny": {"hidden": 16, "layers": 1, "batch_size": 8, "lr": 1e-2},
    }

    def __init__(self, config: PixelRNNConfig, info):
        super().__init__(config, info)
        k = info.num_values
        self.lstm = nn.LSTM(
            k + 1,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.head = nn.Linear(config.hidden, k)

    def _inputs(self, onehot: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W, K) -> (B, L, K+1) LSTM inputs: start symbol, then x_0 .. x_{L-2}."""
        b, k = onehot.shape[0], onehot.shape[-1]
        seq = onehot.permute(0, 2, 3, 1, 4).reshape(b, -1, k)  # (B, L, K), raster, channel innermost
        seq = F.pad(seq, (0, 1))  # (B, L, K+1); last slot is the start symbol
        start = torch.zeros_like(seq[:, :1])
        start[..., k] = 1.0
        return torch.cat([start, seq[:, :-1]], dim=1)

    def logits(self, onehot, condition=None):
        self.check_condition(condition)
        b = onehot.shape[0]
        out, _ = self.lstm(self._inputs(onehot))  # (B, L, hidden)
        logits = self.head(out)  # (B, L, K)
        c, h, w = self.info.shape
        return logits.view(b, h, w, c, -1).permute(0, 3, 1, 2, 4)  # (B, C, H, W, K)

    def init_cache(self, n, condition=None):
        return None  # LSTM state starts at zero; created lazily in step()

    def step(self, cache, t, canvas, condition=None):
        k = self.info.num_values
        x = torch.zeros(canvas.shape[0], 1, k + 1, device=canvas.device, dtype=self.dtype)  # (n, 1, K+1)
        if t == 0:
            x[:, 0, k] = 1.0
        else:
            prev = canvas.permute(0, 2, 3, 1).reshape(canvas.shape[0], -1)[:, t - 1]  # (n,)
            x[:, 0].scatter_(1, prev.unsqueeze(1), 1.0)
        out, cache = self.lstm(x, cache)  # (n, 1, hidden)
        return self.head(out[:, 0]), cache
