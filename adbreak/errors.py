"""One error type for everything a user can get wrong.

The CLI prints ``str(error)`` as a single line and exits non-zero; library code raises it with a message that says
what was wrong and, where it helps, what to do.
"""


class AdbreakError(Exception):
    """A user-facing failure: bad input, a missing file, a corrupt model. The message is one line."""

    exit_code = 2

    def __str__(self) -> str:  # keep it to one line whatever the caller passed
        return " ".join(super().__str__().split())
