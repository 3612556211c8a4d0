"""The project's one duration grammar (breakerpanel.durations); its readers' use of it is in
test_duration_readers.py (they need extras)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breakerpanel.durations import UNITS, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("1.5", 1.5),
        ("250ms", 0.25),
        ("30s", 30),
        ("5m", 300),
        ("1.5h", 5400),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1d2h3m4s5ms", 93784.005),
        (" 60s ", 60),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "5 minutes", "-3", "1x", "5 m", "30m1h", "1m1m", "1.5.2s", "1w"])
def test_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["5", "1.5h", "250ms"])
def test_prometheus_grammar_is_whole_parts_with_units(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text, whole=True, units=("d", "h", "m", "s"))


@given(st.lists(st.integers(min_value=0, max_value=999), min_size=1, max_size=len(UNITS)))
def test_parts_largest_first_sum_up(numbers: list[int]) -> None:
    units = list(UNITS)[: len(numbers)]
    text = "".join(f"{n}{u}" for n, u in zip(numbers, units, strict=True))
    expected = sum(n * UNITS[u] for n, u in zip(numbers, units, strict=True))
    assert parse_duration(text) == pytest.approx(expected)
    assert parse_duration(text, whole=True) == pytest.approx(expected)
