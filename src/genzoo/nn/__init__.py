"""Shared layers: one module per kind of layer, each used by every model that needs it.

* :mod:`genzoo.nn.masked` -- the causal mask (:func:`~genzoo.nn.masked.causal_mask`), the masked and causal
  convolutions, the per-channel input embedding and the cached (incremental) convolution. They serve the
  PixelCNN, the Gated PixelCNN and the gates of the Row LSTM / Diagonal BiLSTM alike.
* :mod:`genzoo.nn.shifted` -- PixelCNN++'s down- and down-right-shifted convolutions.
* :mod:`genzoo.nn.recurrent` -- the LSTM cell and the skew of the Diagonal BiLSTM.
* :mod:`genzoo.nn.logistic_mixture`, :mod:`genzoo.nn.gaussian`, :mod:`genzoo.nn.decoders` -- likelihoods of
  discrete values: the discretized logistic mixture, the log-mass of a Gaussian bin, the heads p(x | z).
* :mod:`genzoo.nn.mlp`, :mod:`genzoo.nn.coders`, :mod:`genzoo.nn.gan_nets` -- fully connected stacks, the
  encoder/decoder bodies, the GAN networks.

Cached sampling. The raster-order loop (:mod:`genzoo.sampling.autoregressive`) asks a model for
``init_cache(n, condition)`` and then ``step(cache, t, canvas, condition)`` per sub-pixel. Every
masked-convolution model (PixelCNN, Gated PixelCNN, Row LSTM, Diagonal BiLSTM, the multi-scale PixelRNN's
two networks) fills its cache by one scheme: the embedding of sub-pixel t-1 is written into a full-size
input buffer (:meth:`~genzoo.nn.masked.ChannelEmbedding.write_previous`), and every convolution is an
:class:`~genzoo.nn.masked.IncrementalConv` that computes one position (or one row, or one channel group)
from the buffers of its inputs. What stays model-specific, and why:

* which intermediate maps a model keeps, and when it may compute them: the Gated PixelCNN's vertical stack
  sees the whole current row, so its row r is computed once row r is complete; the Diagonal BiLSTM's
  backward direction runs right to left over a finished row. These follow from each network's wiring.
* recurrent state: the LSTM layers keep hidden and cell states per position (and the 1-D PixelRNN its
  ``nn.LSTM`` state); a convolution has nothing like it.
* PixelCNN++ (:mod:`genzoo.models.autoregressive.pixelcnn_pp`) conditions on whole pixels and has stride-2
  and transposed layers, so a layer's output at one position is not ready at one sub-pixel step: it keeps
  every layer's output and plans, from each layer's footprint (the ``ready`` maps of
  :mod:`genzoo.nn.shifted`), which box of positions becomes computable after each pixel. Masked
  convolutions have a fixed one-position footprint and need no plan.
"""
