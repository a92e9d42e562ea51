"""Clock helpers: UTC everywhere, units in names, ISO 8601 only at the edges.

Inside, a time is an aware ``datetime`` (run records, outcomes) or an integer ``*_ms`` (deadlines,
scores); :func:`parse_time` is the one way text becomes a time.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)?\s*$")
MAX_INTERVAL_S = 10 * 365 * 86400.0
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def now_ms() -> int:
    return int(time.time() * 1000)


def utcnow() -> datetime:
    return datetime.now(UTC)


def from_ms(ms: int | float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def to_ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset; a naive one is taken as UTC) as an aware datetime.

    Raises:
        ValueError: not an ISO 8601 time.
    """
    parsed = datetime.fromisoformat(text.strip())
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """``end - start`` in seconds (never negative), or ``None`` if either is missing."""
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def iso(dt: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, milliseconds kept; ``None`` stays ``None``."""
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_interval_s(text: str | int | float | timedelta) -> float:
    """Seconds in an interval written as ``30s``, ``5m``, ``1h``, ``2d``, ``1w`` or a number.

    Raises:
        ValueError: the text is not such an interval, or it is not positive.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not an interval such as 30s, 5m, 1h, 2d")
    if isinstance(text, timedelta):
        seconds = text.total_seconds()
    elif isinstance(text, int | float):
        seconds = float(text)
    elif isinstance(text, str):
        match = _DURATION.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not an interval such as 30s, 5m, 1h, 2d")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2) or "s"]
    else:
        raise ValueError(f"{text!r} is not an interval such as 30s, 5m, 1h, 2d")
    if not math.isfinite(seconds):
        raise ValueError(f"interval {text!r} must be a finite number of seconds")
    if seconds <= 0:
        raise ValueError(f"interval {text!r} must be positive")
    if seconds > MAX_INTERVAL_S:
        raise ValueError(f"interval {text!r} is longer than 10 years")
    return seconds


def human_duration(seconds: float | None) -> str:
    """A duration as people read it (``250 ms``, ``12.5 s``, ``3.2 min``, ``2.5 h``), or nothing:
    the CLI's tables and the console's pages show the same words."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
