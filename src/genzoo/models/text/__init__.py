"""Text models over token sequences (``text:``, ``tang:``, ``ptb:`` data; :mod:`genzoo.data.text`).

* ``char_rnn`` -- an LSTM/GRU language model over characters or words (exact log-likelihood).
* ``sentence_vae`` -- Bowman et al.'s variational autoencoder of sentences (an ELBO; homotopies).
"""

from genzoo.models.text import char_rnn, sentence_vae

__all__ = ["char_rnn", "sentence_vae"]
