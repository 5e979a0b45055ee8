"""``genzoo serve RUN [RUN ...]``: a local web playground over trained runs.

One page (plain HTML/JS/CSS shipped in ``genzoo/serve/static``, nothing fetched from elsewhere) to
sample, complete a painted-out region, move a latent model's code dimensions and interpolate
between two images, and read the metric table of ``genzoo compare`` for the runs given on the
command line. The interactions follow the user edits of iGAN (Zhu et al. 2016, Generative Visual
Manipulation on the Natural Image Manifold, arXiv:1609.03552): the user changes the constraint
(visible pixels, code values), the model redraws.

* :mod:`genzoo.serve.playground` -- the served runs and every action, checked request fields in,
  JSON-ready results out; bad input is a :class:`~genzoo.serve.fields.RequestError` (a status
  and one line).
* :mod:`genzoo.serve.jobs` -- slow work (sampling, completion) as jobs on a bounded worker pool,
  polled for progress.
* :mod:`genzoo.serve.server` -- the HTTP layer on the standard library's ``ThreadingHTTPServer``.
"""

from genzoo.serve.fields import RequestError
from genzoo.serve.playground import Playground
from genzoo.serve.server import make_server, serve

__all__ = ["Playground", "RequestError", "make_server", "serve"]
