"""One exception type for everything a user can get wrong.

The CLI turns a :class:`GenzooError` into a single line on stderr and exit status 2;
anything else is a bug in genzoo and keeps its traceback.
"""


class GenzooError(Exception):
    """A bad option, file, value or checkpoint; the message names what and where."""


def choices_error(kind: str, value: object, valid) -> GenzooError:
    """``unknown model 'x'; valid: a, b, c`` -- the one shape of every 'not one of these' error."""
    listed = ", ".join(sorted(str(v) for v in valid)) or "(none)"
    return GenzooError(f"unknown {kind} {value!r}; valid: {listed}")
