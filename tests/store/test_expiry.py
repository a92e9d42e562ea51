"""Expiry from tags: every form Resoto accepts, malformed values, ctime edge cases, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resoto_tasks.store.expiry import (
    MAX_TAG_LENGTH,
    expires_at,
    expiry_status,
    is_expired,
    parse_duration_s,
    parse_timestamp,
)
from worker import expiry as worker_expiry

CTIME = datetime(2024, 1, 1, tzinfo=UTC)
H = 3600.0
D = 86_400.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2h", 2 * H),
        ("3d", 3 * D),
        ("7d4h", 7 * D + 4 * H),
        ("3d4h3min1s", 3 * D + 4 * H + 3 * 60 + 1),
        ("7 days 4 hours", 7 * D + 4 * H),
        ("1 week", 7 * D),
        ("1.5h", 1.5 * H),
        (".5h", 0.5 * H),
        ("2 h", 2 * H),
        ("1 week, 2 days and 3 hours", 9 * D + 3 * H),
        ("2h,30m", 2 * H + 1800),
        ("2h and 30m", 2 * H + 1800),
        ("+2h", 2 * H),
        ("  2h  ", 2 * H),
        ("0s", 0.0),
        ("1y", 365 * D),
        ("2 years", 730 * D),
        ("1 yr", 365 * D),
        ("1M", 31 * D),
        ("1 mo", 31 * D),
        ("2 months", 62 * D),
        ("1m", 60.0),
        ("1 min", 60.0),
        ("5 minutes", 300.0),
        ("1 minute", 60.0),
        ("1w", 7 * D),
        ("2 weeks", 14 * D),
        ("1 day", D),
        ("1 hour", H),
        ("10s", 10.0),
        ("1 second", 1.0),
        ("30 seconds", 30.0),
        ("PT2H", 2 * H),
        ("P1DT2H", D + 2 * H),
        ("P2W", 14 * D),
        ("P1Y", 365 * D),
        ("P1M", 31 * D),
        ("PT1M", 60.0),
        ("PT1.5H", 1.5 * H),
        ("PT0,5H", 0.5 * H),
        ("P1DT2H3M4S", D + 2 * H + 3 * 60 + 4),
        ("pt2h", 2 * H),
    ],
)
def test_every_duration_form_resoto_accepts_parses_to_its_seconds(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "", " ", "never", "2", "h", "2 fortnights", "3ms", "-2h", "- 2h", "2hand30m", "2h,", "and 2h",
        "2h and", "1.h", "1..5h", "P", "PT", "P1DT", "P1H", "PXD", "2h PT2H", "99999999999999y",
        "1e5h", "2h\n3m", "\uff12h", "2 Hours", "inf h", "nan s", "x" * (MAX_TAG_LENGTH + 1),
        "1h" * 101,
    ],
)  # fmt: skip
def test_malformed_durations_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration_s(text)


def test_the_absolute_tag_gives_an_iso_timestamp_and_needs_no_ctime() -> None:
    tags = {"resoto:expires": "2024-02-01T10:00:00Z"}
    assert expiry_status(tags, None) == (datetime(2024, 2, 1, 10, tzinfo=UTC), False)


def test_a_naive_absolute_timestamp_is_utc_and_an_offset_one_is_converted() -> None:
    assert expires_at({"resoto:expires": "2024-02-01T10:00:00"}, None) == datetime(2024, 2, 1, 10, tzinfo=UTC)
    assert expires_at({"resoto:expires": "2024-02-01T10:00:00+02:00"}, None) == datetime(2024, 2, 1, 8, tzinfo=UTC)
    assert expires_at({"resoto:expires": "2024-02-01"}, None) == datetime(2024, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize("name", ["resoto:expiration", "expiration"])
def test_a_duration_tag_is_added_to_ctime(name: str) -> None:
    assert expiry_status({name: "7d4h"}, CTIME) == (CTIME + timedelta(days=7, hours=4), False)


def test_the_absolute_tag_wins_over_durations() -> None:
    tags = {"resoto:expires": "2030-01-01T00:00:00Z", "resoto:expiration": "2h", "expiration": "1d"}
    assert expires_at(tags, CTIME) == datetime(2030, 1, 1, tzinfo=UTC)


def test_resoto_expiration_wins_over_expiration() -> None:
    assert expires_at({"resoto:expiration": "2h", "expiration": "1d"}, CTIME) == CTIME + timedelta(hours=2)


def test_blank_tags_are_skipped_for_the_next_non_empty_one() -> None:
    tags = {"resoto:expires": "  ", "resoto:expiration": "", "expiration": "1d"}
    assert expiry_status(tags, CTIME) == (CTIME + timedelta(days=1), False)


def test_only_blank_expiry_tags_count_as_malformed() -> None:
    assert expiry_status({"resoto:expires": ""}, CTIME) == (None, True)
    assert expiry_status({"expiration": " "}, CTIME) == (None, True)


def test_no_expiry_tag_means_no_expiry_and_nothing_malformed() -> None:
    assert expiry_status({}, CTIME) == (None, False)
    assert expiry_status({"owner": "me", "Expiration": "2h"}, CTIME) == (None, False)


def test_a_malformed_deciding_tag_never_falls_back_to_a_later_one() -> None:
    # "never" is someone's intent not to expire: an old duration tag must not delete the resource.
    assert expiry_status({"resoto:expires": "never", "expiration": "2h"}, CTIME) == (None, True)
    assert expiry_status({"resoto:expiration": "soon", "expiration": "2h"}, CTIME) == (None, True)


@pytest.mark.parametrize(
    "tags",
    [
        {"resoto:expires": "tomorrow"},
        {"resoto:expires": "2024-13-01T00:00:00Z"},
        {"resoto:expires": "0001-01-01T00:00:00+01:00"},  # before datetime.min in UTC
        {"resoto:expires": "9999-12-31T23:59:59-01:00"},  # after datetime.max in UTC
        {"resoto:expiration": "garbage"},
        {"expiration": "-3d"},
        {"expiration": "99999999999999y"},
        {"expiration": "P"},
        {"resoto:expiration": "x" * 10_000},
    ],
)
def test_malformed_tags_give_no_expiry_and_are_flagged(tags: dict[str, str]) -> None:
    assert expiry_status(tags, CTIME) == (None, True)
    assert expires_at(tags, CTIME) is None


def test_a_duration_without_ctime_gives_no_expiry_but_is_not_malformed() -> None:
    assert expiry_status({"expiration": "2h"}, None) == (None, False)
    assert expiry_status({"expiration": "bogus"}, None) == (None, True)


def test_a_naive_ctime_is_utc_and_an_offset_ctime_is_converted() -> None:
    naive = datetime(2024, 1, 1)
    assert expires_at({"expiration": "2h"}, naive) == datetime(2024, 1, 1, 2, tzinfo=UTC)
    plus_two = datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert expires_at({"expiration": "2h"}, plus_two) == datetime(2024, 1, 1, 2, tzinfo=UTC)


def test_a_duration_running_past_the_end_of_time_is_malformed_not_an_overflow() -> None:
    late = datetime(9999, 12, 31, tzinfo=UTC)
    assert expiry_status({"expiration": "2d"}, late) == (None, True)
    assert expiry_status({"expiration": "0s"}, late) == (late, False)


def test_non_string_tag_values_are_malformed_not_a_crash() -> None:
    assert expiry_status({"resoto:expires": 5}, CTIME) == (None, True)  # type: ignore[dict-item]
    assert expiry_status({"expiration": None}, CTIME) == (None, False)  # type: ignore[dict-item]
    assert expiry_status({"expiration": ["2h"]}, CTIME) == (None, True)  # type: ignore[dict-item]


def test_expired_means_strictly_before_now() -> None:
    now = datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert is_expired(now - timedelta(microseconds=1), now)
    assert not is_expired(now, now)
    assert not is_expired(None, now)


def test_parse_timestamp_raises_value_error_on_garbage() -> None:
    assert parse_timestamp("2024-01-01T00:00:00Z") == datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="not an ISO 8601 timestamp"):
        parse_timestamp("yesterday")


def test_the_worker_module_exposes_the_same_rules() -> None:
    assert worker_expiry.expiry_status is expiry_status
    assert worker_expiry.expires_at({"expiration": "2h"}, CTIME) == CTIME + timedelta(hours=2)


_TAG_NAMES = st.sampled_from(["resoto:expires", "resoto:expiration", "expiration", "owner"])
_TEXT = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="0123456789 .,+-:TPYMWDHSmhdswyoinaekrtuz", max_size=40),
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
    st.builds(lambda n, u: f"{n}{u}", st.integers(min_value=-(10**20), max_value=10**20), st.sampled_from("ywdhmsM")),
)
_CTIME = st.none() | st.datetimes(timezones=st.none() | st.timezones())


@settings(max_examples=500, deadline=None)
@given(tags=st.dictionaries(_TAG_NAMES | st.text(max_size=20), _TEXT, max_size=5), ctime=_CTIME)
def test_no_tag_dictionary_ever_raises(tags: dict[str, str], ctime: datetime | None) -> None:
    found, malformed = expiry_status(tags, ctime)
    assert found is None or found.tzinfo is UTC
    assert not (found is not None and malformed)
    assert expires_at(tags, ctime) == found


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(
        st.tuples(st.integers(min_value=0, max_value=10_000), st.sampled_from(["d", "h", "min", "s", "w"])),
        min_size=1,
        max_size=4,
    ),
    joiner=st.sampled_from(["", " ", ", ", " and "]),
)
def test_generated_sequences_add_up(parts: list[tuple[int, str]], joiner: str) -> None:
    unit_s = {"d": D, "h": H, "min": 60.0, "s": 1.0, "w": 7 * D}
    text = joiner.join(f"{n}{u}" for n, u in parts)
    assert parse_duration_s(text) == pytest.approx(sum(n * unit_s[u] for n, u in parts))
