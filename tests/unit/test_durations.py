"""Durations take the units Prometheus takes (ms, s, m, h, d, w, y), in the model, the schema and the parser."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from pydantic import ValidationError

from incidentops.api.v1alpha1.common import (
    CEL_DURATION_PATTERN,
    DURATION_PATTERN,
    is_cel_duration,
    parse_duration,
)
from incidentops.api.v1alpha1.escalationpolicy import Repeat


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250ms", timedelta(milliseconds=250)),
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(hours=24)),
        ("2w", timedelta(days=14)),
        ("1y", timedelta(days=365)),
        ("1y2w3d4h5m6s7ms", timedelta(days=365 + 14 + 3, hours=4, minutes=5, seconds=6, milliseconds=7)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration_accepts_prometheus_units(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert re.fullmatch(DURATION_PATTERN, text)


@pytest.mark.parametrize("text", ["", "5", "3x", "5 minutes", "1D", "-5m", "1mo", "h", "1.h"])
def test_parse_duration_refuses_other_text_naming_the_units(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid duration .*ms, s, m, h, d \(24h\), w \(7d\) or y \(365d\)"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["293y", "99999999999999y", "2562048h"])
def test_durations_beyond_what_go_and_prometheus_hold_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_duration(text)
    with pytest.raises(ValidationError, match="too long"):
        Repeat.model_validate({"interval": text})


def test_the_longest_duration_is_fine() -> None:
    assert parse_duration("292y").days == 292 * 365


@pytest.mark.parametrize(
    ("text", "cel"),
    [("5m", True), ("1h30m", True), ("1.5h", True), ("250ms", True), ("1d", False), ("1h1d", False), ("2w", False)],
)
def test_cel_durations_are_those_without_days_weeks_or_years(text: str, cel: bool) -> None:
    assert is_cel_duration(text) is cel
    assert (re.fullmatch(CEL_DURATION_PATTERN, text) is not None) is cel
