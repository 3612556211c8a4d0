"""Routes: which receivers (PagerDuty routing keys, Slack channels) an incident goes to.

::

    routes:
      - name: critical breakers page
        match: {severity: critical}
        pagerduty: {routing_key_env: PAGERDUTY_ROUTING_KEY}
        slack: {channels: ["#incidents"]}
      - name: search team
        match: {team: search, environment: "prod|staging"}
        slack: {channels: ["#search"]}
    default:
      slack: {channels: ["#breakers"]}

Routes are tried in order; the first whose ``match`` holds takes the incident, unless it says
``continue: true``, then later matching routes add their receivers too. No match: ``default``.
``match`` maps a label to a regular expression the whole value must match; besides any alert label,
``level``, ``breaker`` and ``service`` name the breaker's level, name and service (an endpoint's
parent, else the breaker itself); ``severity`` is normalised first (``PAGE`` matches ``critical``).
Routing keys come from an environment variable or a file, never from this file. A bad file stops
the bot at start with the line, the key path and the reason.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from breakerpanel.config import load_yaml_model

__all__ = [
    "PagerDutyReceiver",
    "Receivers",
    "Route",
    "RoutingFile",
    "SlackReceiver",
    "incident_labels",
    "load_routing",
]

#: PagerDuty integration keys (routing keys) are 32 characters.
ROUTING_KEY_LENGTH = 32


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PagerDutyReceiver(_Model):
    """A PagerDuty service, by its Events API v2 routing key (from the environment or a file)."""

    routing_key_env: str | None = Field(None, description="Environment variable holding the routing key.")
    routing_key_file: Path | None = Field(None, description="File holding the routing key.")

    @model_validator(mode="after")
    def _exactly_one(self) -> PagerDutyReceiver:
        if (self.routing_key_env is None) == (self.routing_key_file is None):
            raise ValueError("give routing_key_env or routing_key_file (exactly one): keys are never inline")
        return self

    @property
    def ref(self) -> str:
        """How outbox rows name this key (never the key itself): ``env:NAME`` or ``file:PATH``."""
        return f"env:{self.routing_key_env}" if self.routing_key_env else f"file:{self.routing_key_file}"


class SlackReceiver(_Model):
    """Slack channels: each incident gets one card per channel, updated in place."""

    channels: list[str] = Field(min_length=1, description="Channel names (#incidents) or ids (C0123456).")

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: list[str]) -> list[str]:
        for channel in value:
            if not re.fullmatch(r"#[a-z0-9][a-z0-9._-]{0,79}|[CG][A-Z0-9]{6,}", channel):
                raise ValueError(f"{channel!r} is neither a channel name like #incidents nor an id like C0123456")
        return value


class Receivers(_Model):
    """Where an incident goes: a PagerDuty service, Slack channels, or both."""

    pagerduty: PagerDutyReceiver | None = Field(None, description="The PagerDuty service to page.")
    slack: SlackReceiver | None = Field(None, description="The Slack channels to post the card in.")


class Route(Receivers):
    """Receivers for the incidents whose labels match."""

    name: str = Field(description="For people and the incident's timeline.")
    match: dict[str, str] = Field(default_factory=dict, description="Label -> regular expression (whole value).")
    continue_: bool = Field(False, alias="continue", description="Keep trying later routes after this one.")

    @field_validator("match")
    @classmethod
    def _patterns(cls, value: dict[str, str]) -> dict[str, str]:
        for label, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{label}: {pattern!r} is not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _has_a_receiver(self) -> Route:
        if self.pagerduty is None and self.slack is None:
            raise ValueError(f"route {self.name!r} has no receiver: give pagerduty, slack or both")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(re.fullmatch(pattern, labels.get(label, "")) for label, pattern in self.match.items())


class RoutingFile(_Model):
    """The top level of the routes file."""

    routes: list[Route] = Field(default_factory=list, description="Tried in order; the first match wins.")
    default: Receivers = Field(Receivers(), description="Receivers of incidents no route matches.")

    def receivers_for(self, labels: Mapping[str, str]) -> tuple[list[str], list[PagerDutyReceiver], list[str]]:
        """The names of the matching routes, the PagerDuty receivers and the Slack channels."""
        names: list[str] = []
        pagerduty: list[PagerDutyReceiver] = []
        slack: list[str] = []
        for route in self.routes:
            if route.matches(labels):
                names.append(route.name)
                _add(route, pagerduty, slack)
                if not route.continue_:
                    break
        if not names:
            names.append("default")
            _add(self.default, pagerduty, slack)
        return names, pagerduty, slack

    def pagerduty_receivers(self) -> list[tuple[str, PagerDutyReceiver]]:
        """Every PagerDuty receiver with its key path in the file (for errors)."""
        found = [(f"routes.{i}.pagerduty", r.pagerduty) for i, r in enumerate(self.routes) if r.pagerduty]
        if self.default.pagerduty is not None:
            found.append(("default.pagerduty", self.default.pagerduty))
        return found


def _add(receivers: Receivers, pagerduty: list[PagerDutyReceiver], slack: list[str]) -> None:
    if receivers.pagerduty is not None and receivers.pagerduty not in pagerduty:
        pagerduty.append(receivers.pagerduty)
    if receivers.slack is not None:
        slack.extend(c for c in receivers.slack.channels if c not in slack)


def load_routing(path: str | os.PathLike[str] | None) -> RoutingFile:
    """The routes file, validated; none: everything to the (empty) default route."""
    if path is None:
        return RoutingFile()
    return load_yaml_model(path, RoutingFile, expected="a mapping with routes and default")


@dataclass(frozen=True)
class RoutingKeys:
    """Routing keys resolved at start, by receiver reference (``env:NAME``, ``file:PATH``)."""

    keys: Mapping[str, str]
    #: ``(key path in the routes file, why)`` for receivers whose key is missing or malformed.
    problems: tuple[tuple[str, str], ...]

    @classmethod
    def resolve(cls, routing: RoutingFile, environ: Mapping[str, str] | None = None) -> RoutingKeys:
        environ = os.environ if environ is None else environ
        keys: dict[str, str] = {}
        problems: list[tuple[str, str]] = []
        for where, receiver in routing.pagerduty_receivers():
            if receiver.routing_key_env is not None:
                key = environ.get(receiver.routing_key_env, "").strip()
                if not key:
                    problems.append((f"{where}.routing_key_env", f"{receiver.routing_key_env} is not set"))
                    continue
            else:
                assert receiver.routing_key_file is not None
                try:
                    key = receiver.routing_key_file.read_text().strip()
                except OSError as exc:
                    problems.append((f"{where}.routing_key_file", f"cannot read it: {exc.strerror or exc}"))
                    continue
            if len(key) != ROUTING_KEY_LENGTH:
                # Say how long, never what: this is a secret.
                problems.append((where, f"a routing key has {ROUTING_KEY_LENGTH} characters (this one {len(key)})"))
                continue
            keys[receiver.ref] = key
        return cls(keys, tuple(problems))


def incident_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """An alert's labels plus the routing aliases ``level``, ``breaker`` and ``service``, with
    ``severity`` as the incident has it (``PAGE`` and ``Critical`` are ``critical``, a missing one
    ``warning``): a route matches the severity the incident is paged with."""
    from .identity import breaker_of
    from .incidents import severity_of  # incidents imports this module: at call time

    out = dict(labels)
    out["severity"] = severity_of(labels)
    found = breaker_of(labels)
    if found is not None:
        out.setdefault("level", found.level)
        out.setdefault("breaker", found.name)
        out.setdefault("service", found.service or found.name)
    return out
