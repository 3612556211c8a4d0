"""The PromQL of one breaker's chart: its state, its failure and slow-call rates against the
thresholds in force, its calls and rejections per second, and the state of the breakers under it.

One source for two readers: the detail dashboard builds its panels from these queries with its
template variables (``BreakerPanels("$job", "$breaker", "$__rate_interval", variables=True)``),
and the incident bot renders an incident's chart from the same queries with a concrete breaker
(``BreakerPanels(job="rag", name="openai", rate_window="1m")``), so what a page shows is what the
dashboard shows.

Every metric and label name comes from :mod:`breakerpanel.exporter.semconv`::

    >>> panels = BreakerPanels(job="rag", name="openai", rate_window="1m")
    >>> panels.failure_rate()
    'max by (instance) (circuit_breaker_failure_rate{job="rag", circuit_breaker_name="openai"})'
    >>> panels.failure_rate_threshold()
    'max(circuit_breaker_failure_rate_threshold{job="rag", circuit_breaker_name="openai"})'

Plain Python over the registry's names: no extra needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from . import promql
from . import semconv as sc

__all__ = ["STATE_CODES", "BreakerPanels", "state_code"]

_STATE = sc.CircuitBreakerStateValues
#: A number per state for timelines, tables and charts, worse states higher (``max`` picks the worst).
STATE_CODES: Final[Mapping[sc.CircuitBreakerStateValues, int]] = {
    _STATE.CLOSED: 0,
    _STATE.METRICS_ONLY: 1,
    _STATE.DISABLED: 2,
    _STATE.HALF_OPEN: 3,
    _STATE.OPEN: 4,
    _STATE.FORCED_OPEN: 5,
}

_NAME = sc.CIRCUIT_BREAKER_NAME_LABEL
_OUTCOME = sc.CIRCUIT_BREAKER_OUTCOME_LABEL
_REASON = sc.CIRCUIT_BREAKER_REJECTION_REASON_LABEL


def state_code(matchers: Sequence[str], by: Sequence[str]) -> str:
    """The breakers' state as a number (:data:`STATE_CODES`), the worst over ``by``'s groups:
    each state series is 1 for the current state and 0 for the others, so ``code * series`` is the
    code for the current state and 0 otherwise."""

    def in_state(state: sc.CircuitBreakerStateValues) -> str:
        return promql.selector(
            sc.METRIC_CIRCUIT_BREAKER_STATE, *matchers, promql.eq(sc.CIRCUIT_BREAKER_STATE_LABEL, state)
        )

    parts = [f"{code} * {in_state(state)}" for state, code in STATE_CODES.items()]
    return f"max by ({', '.join(by)}) (\n  " + "\nor\n  ".join(parts) + "\n)"


@dataclass(frozen=True)
class BreakerPanels:
    """The queries of the breaker ``name`` of ``job``. Both are label values as PromQL sees them: a
    concrete breaker's, or a dashboard's variables (``$job``, ``$breaker``). ``rate_window`` is the
    ``rate()`` window: Grafana's ``$__rate_interval``, or a duration (at least four scrapes)."""

    job: str
    name: str
    rate_window: str
    #: ``job`` and ``name`` are template variables (Grafana substitutes them): used as they are
    #: where a concrete name is matched literally (regular expressions).
    variables: bool = False

    def __post_init__(self) -> None:
        for field, value in (("job", self.job), ("name", self.name), ("rate_window", self.rate_window)):
            if not value:
                raise ValueError(f"BreakerPanels: {field} must not be empty (it selects the breaker's series)")

    @property
    def matchers(self) -> tuple[str, str]:
        """The matchers that select the breaker's own series (across its instances)."""
        return promql.eq(promql.JOB_LABEL, self.job), promql.eq(_NAME, self.name)

    def _selector(self, metric: sc.MetricSpec, *matchers: str) -> str:
        return promql.selector(metric, *self.matchers, *matchers)

    # ------------------------------------------------------------------ the state band

    def state(self) -> str:
        """The breaker's state code (:data:`STATE_CODES`), the worst across its instances."""
        return state_code(self.matchers, by=promql.IDENTITY_LABELS)

    def children_state(self) -> str:
        """The state code of each breaker under this one, one series per breaker (by
        ``circuit_breaker_name``): a service's endpoints and the features that require it (what
        its trouble explains, and what the incident bot attaches to its incident). Nothing for an
        endpoint or a feature: no breaker sits under them."""
        job = promql.eq(promql.JOB_LABEL, self.job)
        name = self.name if self.variables else promql.alternation([self.name])
        endpoints = (job, promql.eq(sc.CIRCUIT_BREAKER_SERVICE_LABEL, self.name), promql.ne(_NAME, self.name))
        # A feature's label lists the services it requires, comma-separated.
        features = (job, promql.re(sc.CIRCUIT_BREAKER_REQUIRES_LABEL, f"(.+,)?{name}(,.+)?"))
        by = (promql.JOB_LABEL, _NAME)
        return f"{state_code(endpoints, by=by)}\nor\n{state_code(features, by=by)}"

    # ------------------------------------------------------------------ rates against thresholds

    def failure_rate(self) -> str:
        """The sliding-window failure rate of each instance (absent below the minimum calls)."""
        return f"max by ({promql.INSTANCE_LABEL}) ({self._selector(sc.METRIC_CIRCUIT_BREAKER_FAILURE_RATE)})"

    def failure_rate_threshold(self) -> str:
        """The failure-rate threshold in force: the breaker trips when the rate reaches it."""
        return f"max({self._selector(sc.METRIC_CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD)})"

    def slow_call_rate(self) -> str:
        """The sliding-window slow-call rate of each instance (absent below the minimum calls)."""
        return f"max by ({promql.INSTANCE_LABEL}) ({self._selector(sc.METRIC_CIRCUIT_BREAKER_SLOW_CALL_RATE)})"

    def slow_call_rate_threshold(self) -> str:
        """The slow-call-rate threshold in force."""
        return f"max({self._selector(sc.METRIC_CIRCUIT_BREAKER_SLOW_CALL_RATE_THRESHOLD)})"

    # ------------------------------------------------------------------ calls

    def _through(self, metric: sc.MetricSpec, *matchers: str) -> str:
        """The rate of ``metric`` for every call through the breaker. Its own series count the
        calls it admitted or turned away, a service's its endpoints' too (each passes the
        service's breaker and counts at both). What they miss, for a service: the calls its
        endpoints turned away themselves (an endpoint open on its own rejects before the service
        sees the call); a call the service turned away counts there already, and as
        ``parent_open`` at the endpoint, which is left out. The two selectors share no series:
        ``or`` is their union."""
        job = promql.eq(promql.JOB_LABEL, self.job)
        own = self._selector(metric, *matchers)
        below = (
            job,
            promql.eq(sc.CIRCUIT_BREAKER_SERVICE_LABEL, self.name),
            promql.ne(_NAME, self.name),
            promql.eq(_OUTCOME, sc.CircuitBreakerOutcomeValues.REJECTED),
            promql.ne(_REASON, sc.CircuitBreakerRejectionReasonValues.PARENT_OPEN),
            *matchers,
        )
        turned_away_below = promql.selector(metric, *dict.fromkeys(below))  # once: rejections_per_second's
        return f"rate({own}[{self.rate_window}]) or rate({turned_away_below}[{self.rate_window}])"

    def calls_per_second(self) -> str:
        """Every call through the breaker per second (a service's endpoints' included), rejected
        ones included, summed over the instances."""
        return f"sum({self._through(sc.METRIC_CIRCUIT_BREAKER_CALLS)})"

    def rejections_per_second(self) -> str:
        """Calls through the breaker rejected per second (a service's endpoints' included), one
        series per reason (open, half_open_full, parent_open, forced_open)."""
        rejected = promql.eq(_OUTCOME, sc.CircuitBreakerOutcomeValues.REJECTED)
        return f"sum by ({_REASON}) ({self._through(sc.METRIC_CIRCUIT_BREAKER_CALLS, rejected)})"
