"""Each reader of a duration uses the project's one grammar (breakerpanel.durations): breakers.yaml
(extra config), the alert rules' Prometheus durations (extra config), the demo's command line."""

from __future__ import annotations

import argparse

import pytest

from breakerpanel.config import parse_duration as config_duration
from breakerpanel.exporter.rules_config import duration_seconds
from demo.cli import _duration as cli_duration


def test_every_reader_uses_the_one_grammar() -> None:
    assert config_duration("1h30m") == duration_seconds("1h30m") == cli_duration("1h30m") == 5400
    with pytest.raises(ValueError, match="expected seconds or a duration"):
        config_duration("soon")
    with pytest.raises(ValueError, match="not a duration like"):
        duration_seconds("1.5h")
    for bad in ("0", "soon"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli_duration(bad)
