"""The Alertmanager configuration that goes with the rules: one route to the incident bot, and the
inhibit rules that keep a root cause's consequences quiet, generated from the same source as the
rules (the label names of :mod:`breakerpanel.exporter.semconv`) and the breakers of a ``breakers.yaml``.

What is inhibited, and why only this: the incident bot attaches every breaker a root cause touched
to its incident, so the alerts it needs for that (a breaker open, a feature degraded or failing
its users) must reach it. Inhibition silences what says nothing more while the root cause fires:

- while a service is open, the trip forecasts, stuck probes and flapping of its endpoints and of
  the features that require it (they are the service's trouble, seen from below);
- while a person holds a breaker open by hand (forced_open), its own rejections and those of the
  endpoints and features below a service so held (the change is announced; its effect is
  intended). Disabled and metrics-only breakers reject nothing, and silence nothing.

Endpoints share ``circuit_breaker_service`` with their service, so one rule with ``equal`` covers
every service. A feature carries the services it requires in ``circuit_breaker_requires`` (a
list), which ``equal`` cannot match: one rule per service of ``breakers.yaml`` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.rules_config import AlertmanagerRoute

__all__ = ["INTAKE_PATH", "alertmanager_config", "inhibit_rules", "render_alertmanager"]

#: The bot's webhook endpoint (incident_bot.app.INTAKE_PATH).
INTAKE_PATH = "/v1/alertmanager"

_LEVEL = sc.CIRCUIT_BREAKER_LEVEL_LABEL
_SERVICE = sc.CIRCUIT_BREAKER_SERVICE_LABEL
_REQUIRES = sc.CIRCUIT_BREAKER_REQUIRES_LABEL
_LEVELS = sc.CircuitBreakerLevelValues
#: What a service's trouble makes redundant below it.
_CONSEQUENCES = ("CircuitBreakerTripPredicted", "CircuitBreakerHalfOpenStuck", "CircuitBreakerFlapping")
#: What a manual state makes intended below it.
_INTENDED = ("CircuitBreakerRejectingTraffic", "CircuitBreakerTripPredicted", "CircuitBreakerHalfOpenStuck")
#: A breaker a person holds open (disabled and metrics-only breakers reject nothing).
_FORCED_OPEN = (
    'alertname="CircuitBreakerManualState"',
    f'{sc.CIRCUIT_BREAKER_STATE_LABEL}="{sc.CircuitBreakerStateValues.FORCED_OPEN}"',
)


@dataclass(frozen=True)
class Receiver:
    """Where the bot listens and where Alertmanager finds its bearer token."""

    url: str = "http://incident-bot:8700" + INTAKE_PATH
    token_file: str = "/run/secrets/webhook_token"


def _names(alerts: Iterable[str]) -> str:
    return f'alertname=~"{"|".join(alerts)}"'


def _requires(service: str) -> str:
    """A matcher for features whose required services include ``service``."""
    return f'{_REQUIRES}=~"(.+,)?{re.escape(service)}(,.+)?"'


def inhibit_rules(services: Iterable[str]) -> list[dict[str, Any]]:
    """The inhibit rules for the breakers of one application; ``services``: its service breakers."""
    rules: list[dict[str, Any]] = [
        {
            "source_matchers": ['alertname="CircuitBreakerOpen"', f'{_LEVEL}="{_LEVELS.SERVICE}"'],
            "target_matchers": [_names(_CONSEQUENCES), f'{_LEVEL}="{_LEVELS.ENDPOINT}"'],
            "equal": ["job", _SERVICE],
        },
        {
            "source_matchers": [*_FORCED_OPEN, f'{_LEVEL}="{_LEVELS.SERVICE}"'],
            "target_matchers": [_names(_INTENDED), f'{_LEVEL}="{_LEVELS.ENDPOINT}"'],
            "equal": ["job", _SERVICE],
        },
        {  # any breaker held open by hand: its own rejections are intended too
            "source_matchers": list(_FORCED_OPEN),
            "target_matchers": [_names(_INTENDED)],
            "equal": ["job", sc.CIRCUIT_BREAKER_NAME_LABEL],
        },
    ]
    for service in sorted(set(services)):
        rules.append(
            {
                "source_matchers": [
                    'alertname="CircuitBreakerOpen"',
                    f'{_LEVEL}="{_LEVELS.SERVICE}"',
                    f'{sc.CIRCUIT_BREAKER_NAME_LABEL}="{service}"',
                ],
                "target_matchers": [_names(_CONSEQUENCES), f'{_LEVEL}="{_LEVELS.FEATURE}"', _requires(service)],
                "equal": ["job"],
            }
        )
        rules.append(
            {
                "source_matchers": [
                    *_FORCED_OPEN,
                    f'{_LEVEL}="{_LEVELS.SERVICE}"',
                    f'{sc.CIRCUIT_BREAKER_NAME_LABEL}="{service}"',
                ],
                "target_matchers": [_names(_INTENDED), f'{_LEVEL}="{_LEVELS.FEATURE}"', _requires(service)],
                "equal": ["job"],
            }
        )
    return rules


def alertmanager_config(
    route: AlertmanagerRoute, services: Iterable[str], receiver: Receiver = Receiver()
) -> dict[str, Any]:
    """Alertmanager's configuration: every alert to the incident bot (which decides who is paged
    and told, from its own routes), grouped per breaker, and the inhibit rules."""
    return {
        "route": {
            "receiver": "incident-bot",
            "group_by": list(route.group_by),
            "group_wait": route.group_wait,
            "group_interval": route.group_interval,
            "repeat_interval": route.repeat_interval,
        },
        "inhibit_rules": inhibit_rules(services),
        "receivers": [
            {
                "name": "incident-bot",
                "webhook_configs": [
                    {
                        "url": receiver.url,
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials_file": receiver.token_file}},
                    }
                ],
            }
        ],
    }


_HEADER = """\
# Alertmanager for the breakerpanel stack. Generated by `python -m breakerpanel.alert_rules` (make rules) from
# alert_rules/config.yaml (`alertmanager:`) and the services of demo/breakers.yaml: do not edit.
#
# Every alert goes to the incident bot, which decides who is paged (PagerDuty) and told (Slack)
# from its own routes (deploy/incident-bot/routes.yaml), and attaches every breaker a root cause
# touched to that cause's incident. Grouped per breaker: the bot folds a breaker's alerts into one
# incident. group_interval is short so that a resolve reaches the bot within about one evaluation
# (the bot, not Alertmanager, waits before resolving: resolve_after); re-sending is harmless, the
# bot deduplicates. The inhibit rules silence what a firing root cause makes redundant
# (alert_rules/breakerpanel/alert_rules/alertmanager.py says which and why).
#
# Written for Alertmanager 0.25 (Debian's, used by `breakerpanel up` without Docker) as well as the
# image's: 0.25 rejects `url_file`, so the URL is inline and only the token is in a file.
"""


def render_alertmanager(route: AlertmanagerRoute, services: Iterable[str], receiver: Receiver = Receiver()) -> str:
    body = yaml.safe_dump(alertmanager_config(route, services, receiver), sort_keys=False, width=1 << 16)
    return _HEADER + body
