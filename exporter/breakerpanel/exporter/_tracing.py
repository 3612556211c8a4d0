"""Span events for breaker decisions, on the span active when they happen.

A listener of state changes, rejections and fallbacks only: it does not take calls off the
breaker's lock-free path, and when no span is recording it adds nothing.
"""

from __future__ import annotations

from opentelemetry import trace

from breakerpanel import BreakerListener, CallRejected, CircuitBreaker, FallbackUsed, StateChanged, error_type_of

from . import semconv as sc

__all__ = ["SpanEvents"]


def _identity(breaker: CircuitBreaker) -> dict[str, str]:
    attributes = {sc.CIRCUIT_BREAKER_NAME: breaker.name, sc.CIRCUIT_BREAKER_LEVEL: breaker.level.value}
    if breaker.parent is not None:
        attributes[sc.CIRCUIT_BREAKER_PARENT] = breaker.parent.name
    allowed = sc.DEPENDENCY_ATTRIBUTES
    attributes.update({k: v for k, v in breaker.attributes.items() if k in allowed})
    return attributes


class SpanEvents(BreakerListener):
    """Adds ``circuit_breaker.*`` events to the current span."""

    def state_changed(self, event: StateChanged) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            attributes = _identity(event.breaker)
            attributes[sc.CIRCUIT_BREAKER_PREVIOUS_STATE] = event.previous.value
            attributes[sc.CIRCUIT_BREAKER_STATE] = event.state.value
            span.add_event(sc.EVENT_CIRCUIT_BREAKER_STATE_CHANGE, attributes)

    def call_rejected(self, event: CallRejected) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            attributes = _identity(event.breaker)
            attributes[sc.CIRCUIT_BREAKER_STATE] = event.state.value
            attributes[sc.CIRCUIT_BREAKER_REJECTION_REASON] = event.reason.value
            span.add_event(sc.EVENT_CIRCUIT_BREAKER_REJECTION, attributes)

    def fallback_used(self, event: FallbackUsed) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            attributes = _identity(event.breaker)
            attributes[sc.CIRCUIT_BREAKER_FALLBACK_TYPE] = event.fallback_type.value
            attributes[sc.CIRCUIT_BREAKER_OUTCOME] = event.outcome.value
            if event.error is not None:
                attributes[sc.ERROR_TYPE] = error_type_of(event.error)
            span.add_event(sc.EVENT_CIRCUIT_BREAKER_FALLBACK, attributes)
