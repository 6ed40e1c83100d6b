"""Byte counts and durations as people write them."""

from __future__ import annotations

import pytest

from arsenale.errors import InvalidInput
from arsenale.units import human_size, parse_duration


def test_durations_in_every_spelling() -> None:
    spelled = {"500ms": 0.5, "30s": 30, "30 sec": 30, "10m": 600, "15min": 900, "1h": 3600, "1D": 86400,
               "1.5": 1.5, 90: 90, 0.25: 0.25}
    assert {k: parse_duration(k, field="window") for k in spelled} == spelled


@pytest.mark.parametrize("bad", ["soon", "-1s", "5 days", "", "1h30m", 0, -3, float("nan"), float("inf"), True, None])
def test_bad_durations_name_the_field(bad: object) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_duration(bad, field="interval")
    assert err.value.field == "interval"


def test_sizes() -> None:
    assert (human_size(1536), human_size(12), human_size(None, "?")) == ("1.5 KiB", "12 B", "?")


def test_durations_round_trip_through_their_spelling() -> None:
    from arsenale.units import format_duration, parse_duration

    assert parse_duration("2w", field="w") == 14 * 86400
    for text in ("90s", "10m", "90m", "1h", "7d", "14d"):
        assert format_duration(parse_duration(text, field="d")) == text
    assert format_duration(1.5) == "1.5s"


def test_spans_for_people() -> None:
    from arsenale.units import human_duration

    spans = {0.25: "250 ms", 42: "42 s", 59.9: "59.9 s", 60: "1m 00s", 5400: "1h 30m", 84960: "23h 36m",
             86400: "1d 0h", 183600: "2d 3h", -3600: "-1h 00m"}
    assert {s: human_duration(s) for s in spans} == spans
    assert (human_duration(None), human_duration(float("nan"), "n/a")) == ("—", "n/a")
