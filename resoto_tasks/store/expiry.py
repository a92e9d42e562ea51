"""When a resource expires, from its tags: Resoto's rules, and never an exception.

The rules (Resoto's ``DirectAdjuster`` + ``resotolib.durations``):

1. tag ``resoto:expires``: an absolute ISO 8601 timestamp; a naive one is UTC.
2. else the first non-empty of ``resoto:expiration``, then ``expiration``: a duration added to the
   resource's ``ctime``: ``2h``, ``3d``, ``7d4h``, ``3d4h3min1s``, ``7 days 4 hours``, ``1 week``,
   ``1.5h``, pairs optionally joined by ``,`` or ``and``, or an ISO 8601 period (``PT2H``,
   ``P1DT2H``, ``P2W``). Without a ``ctime`` a duration gives no expiry.

A resource is expired when its expiry is strictly before now.

Why the store owns this and not ``worker/``: the store indexes expiry when a snapshot is written and
keeps the malformed-tag count when a resource is deleted, and the core never imports ``worker/``
(DESIGN §4). ``worker.expiry`` re-exports these names for the actors.

Safety: the tag that decides is the first non-empty one in the order above. When it is malformed the
resource has *no* expiry (and is counted as malformed); we never fall back to a later tag, so a typo
in ``resoto:expires: never`` cannot make an old ``expiration: 2h`` tag delete the resource.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

EXPIRES_TAG = "resoto:expires"
"""An absolute ISO 8601 timestamp."""
EXPIRATION_TAGS = ("resoto:expiration", "expiration")
"""Durations added to ``ctime``, in order of precedence."""

MAX_TAG_LENGTH = 200
"""Longer tag values are malformed without being parsed (keeps regex time linear and tiny)."""

_DAY_S = 86_400.0
# Units as Resoto spells them. Case matters: ``M`` is a month, ``m`` a minute.
_UNIT_S: dict[str, float] = {
    **dict.fromkeys(("years", "year", "yr", "y"), 365 * _DAY_S),
    **dict.fromkeys(("months", "month", "mo", "M"), 31 * _DAY_S),
    **dict.fromkeys(("weeks", "week", "w"), 7 * _DAY_S),
    **dict.fromkeys(("days", "day", "d"), _DAY_S),
    **dict.fromkeys(("hours", "hour", "h"), 3600.0),
    **dict.fromkeys(("minutes", "minute", "min", "m"), 60.0),
    **dict.fromkeys(("seconds", "second", "s"), 1.0),
}
# Longest spellings first so ``min`` wins over ``m`` and ``mo`` over ``m``; a unit may not run
# into a letter (``3ms`` and ``2 fortnights`` are malformed, not ``3m`` + garbage).
_UNIT = "|".join(sorted(_UNIT_S, key=len, reverse=True))
_NUMBER = r"(?:\d+(?:\.\d+)?|\.\d+)"
_PAIR = rf"({_NUMBER})[ \t]*({_UNIT})(?![A-Za-z])"
_SEP = r"(?:[ \t]*,[ \t]*(?:and\b[ \t]*)?|[ \t]+and[ \t]+|[ \t]*)"
# ASCII: ``\d`` would otherwise take any Unicode digit, and float() accepts them.
_HUMAN = re.compile(rf"\+?[ \t]*{_PAIR}(?:{_SEP}{_PAIR})*", re.ASCII)
_HUMAN_PAIR = re.compile(_PAIR, re.ASCII)

_ISO_NUMBER = r"(\d+(?:[.,]\d+)?)"
_ISO_PERIOD = re.compile(
    rf"P(?:{_ISO_NUMBER}Y)?(?:{_ISO_NUMBER}M)?(?:{_ISO_NUMBER}W)?(?:{_ISO_NUMBER}D)?"
    rf"(?:T(?:{_ISO_NUMBER}H)?(?:{_ISO_NUMBER}M)?(?:{_ISO_NUMBER}S)?)?",
    re.IGNORECASE | re.ASCII,
)
_ISO_UNIT_S = (365 * _DAY_S, 31 * _DAY_S, 7 * _DAY_S, _DAY_S, 3600.0, 60.0, 1.0)


class Expiry(NamedTuple):
    """A resource's expiry and whether a tag that should have given one was malformed."""

    expires_at: datetime | None
    """UTC, or ``None`` when the resource does not expire (or its tag was malformed)."""
    malformed: bool
    """The deciding expiry tag was present but could not be understood."""


NO_EXPIRY = Expiry(None, False)
MALFORMED = Expiry(None, True)


def parse_duration_s(text: str) -> float:
    """Seconds in a Resoto duration (``7d4h``, ``7 days, 4 hours``, ``1.5h``, ``PT2H``, ``P2W``).

    Raises:
        ValueError: the text is not such a duration, is negative, or is too long.
    """
    seconds = _duration_s(text)
    if seconds is None:
        raise ValueError(f"{text[:40]!r} is not a duration such as 2h, 7d4h, 7 days 4 hours or PT2H")
    return seconds


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp in UTC; a naive one is taken as UTC.

    Raises:
        ValueError: the text is not an ISO 8601 timestamp, or it is outside datetime's range in UTC.
    """
    found = _timestamp(text)
    if found is None:
        raise ValueError(f"{text[:40]!r} is not an ISO 8601 timestamp")
    return found


def expiry_status(tags: Mapping[str, str], ctime: datetime | None) -> Expiry:
    """The expiry the tags give (UTC) and whether the deciding tag was malformed; never raises."""
    try:
        return _expiry(tags, ctime)
    except Exception:  # a tag may never crash a collect; it is counted as malformed instead
        return MALFORMED


def expires_at(tags: Mapping[str, str], ctime: datetime | None) -> datetime | None:
    """The expiry the tags give (UTC), or ``None`` (no expiry tag, no ctime, or malformed); never raises."""
    return expiry_status(tags, ctime).expires_at


def is_expired(expires: datetime | None, now: datetime) -> bool:
    """Expired means strictly before ``now`` (Resoto: ``/metadata.expires < @NOW@``)."""
    return expires is not None and expires < now


def _expiry(tags: Mapping[str, str], ctime: datetime | None) -> Expiry:
    blank = False
    absolute = tags.get(EXPIRES_TAG)
    if absolute is not None:
        if not isinstance(absolute, str):
            return MALFORMED
        if absolute.strip():
            found = _timestamp(absolute)
            return Expiry(found, False) if found is not None else MALFORMED
        blank = True
    for name in EXPIRATION_TAGS:
        relative = tags.get(name)
        if relative is None:
            continue
        if not isinstance(relative, str):
            return MALFORMED
        if not relative.strip():
            blank = True
            continue
        seconds = _duration_s(relative)
        if seconds is None:
            return MALFORMED
        if ctime is None:
            return NO_EXPIRY
        try:
            return Expiry(_utc(ctime) + timedelta(seconds=seconds), False)
        except (OverflowError, ValueError):
            return MALFORMED
    # An expiry tag that is there but blank, with nothing else to go by, is someone's mistake.
    return MALFORMED if blank else NO_EXPIRY


@functools.lru_cache(maxsize=4096)
def _duration_s(text: str) -> float | None:
    """Cached because a cloud repeats a handful of values (``2h``) across many resources."""
    if not isinstance(text, str) or len(text) > MAX_TAG_LENGTH:
        return None
    stripped = text.strip()
    if stripped[:1] in ("P", "p"):
        return _iso_period_s(stripped)
    if _HUMAN.fullmatch(stripped) is None:
        return None
    seconds = sum(float(number) * _UNIT_S[unit] for number, unit in _HUMAN_PAIR.findall(stripped))
    return _finite(seconds)


def _iso_period_s(text: str) -> float | None:
    match = _ISO_PERIOD.fullmatch(text)
    if match is None or not any(match.groups()) or text.upper().endswith("T"):
        return None
    seconds = sum(
        float(value.replace(",", ".")) * unit_s
        for value, unit_s in zip(match.groups(), _ISO_UNIT_S, strict=True)
        if value is not None
    )
    return _finite(seconds)


def _finite(seconds: float) -> float | None:
    # timedelta holds up to 999,999,999 days; beyond that (or inf) the tag is malformed.
    if not math.isfinite(seconds) or seconds < 0 or seconds >= 999_999_999 * _DAY_S:
        return None
    return seconds


@functools.lru_cache(maxsize=4096)
def _timestamp(text: str) -> datetime | None:
    if not isinstance(text, str) or len(text) > MAX_TAG_LENGTH:
        return None
    try:
        return _utc(datetime.fromisoformat(text.strip()))
    except (ValueError, OverflowError):
        return None


def _utc(moment: datetime) -> datetime:
    """Naive means UTC (Resoto's rule for tags and ctime alike)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
