"""One parser for the instants users type: epoch seconds or ISO 8601 (the REST API's ``start``/``end``, the CLI's
``--start``/``--end``). Callers turn :class:`ValueError` into their own one-line error, naming the parameter."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

_SPACED_OFFSET = re.compile(r" (\d\d(:?\d\d)?)$")  # a '+' of "+01:00" that arrived unencoded as a space


def parse_instant(text: str) -> float:
    """Epoch seconds (``1795430000.5``) or ISO 8601 (a time without a zone is UTC). ``ValueError`` says what is
    wrong, worded to follow the value: ``is neither epoch seconds nor an ISO 8601 time`` or ``is not a finite
    number``."""
    value = text.strip()
    try:
        t = float(value)
    except ValueError:
        try:
            dt = datetime.fromisoformat(_SPACED_OFFSET.sub(r"+\1", value))
        except ValueError:
            raise ValueError("is neither epoch seconds nor an ISO 8601 time") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    if not math.isfinite(t):
        raise ValueError("is not a finite number")
    return t
