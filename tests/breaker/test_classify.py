"""Classification: composable predicates over exceptions and results."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from breaker import (
    IGNORED,
    SUCCESS,
    CircuitBreaker,
    ManualClock,
    Verdict,
    VerdictKind,
    as_classifier,
    classify_with,
    error_type_of,
    failure,
    ignore_exceptions,
    ignore_results,
    rate_limited,
    record_exceptions,
    record_results,
    when_exception,
    when_result,
)

from .support import Boom, fail, succeed

MakeBreaker = Callable[..., CircuitBreaker]


def test_first_opinion_wins_and_chains_flatten() -> None:
    chain = (
        ignore_exceptions(KeyError) | record_exceptions(LookupError, error_type="lookup") | ignore_exceptions(Exception)
    )
    assert chain(KeyError(), None) is IGNORED
    assert chain(IndexError(), None) == failure("lookup")
    assert chain(ValueError(), None) is IGNORED
    assert chain(None, "value") is None
    assert len(chain.members) == 3  # type: ignore[attr-defined]


def test_plain_callables_compose_on_either_side() -> None:
    def teapot(exc: BaseException | None, result: object) -> Verdict | None:
        return failure("teapot") if result == 418 else None

    assert (teapot | ignore_results(lambda r: r == 404))(None, 418) == failure("teapot")
    assert (ignore_results(lambda r: r == 404) | teapot)(None, 404) is IGNORED
    assert classify_with(teapot)(None, 200) is None
    with pytest.raises(TypeError, match="classifier"):
        as_classifier(42)  # type: ignore[arg-type]


def test_exception_only_classifiers_leave_results_alone() -> None:
    assert not (ignore_exceptions(KeyError) | record_exceptions(OSError)).inspects_results
    assert (ignore_exceptions(KeyError) | record_results(lambda r: r is None)).inspects_results
    assert classify_with(lambda e, r: None).inspects_results


def test_verdict_builders() -> None:
    assert rate_limited(5.0) == Verdict(VerdictKind.RATE_LIMITED, error_type="rate_limited", retry_after=5.0)
    assert rate_limited(-3).retry_after == 0.0
    assert when_exception(lambda e: True, lambda e: failure(type(e).__name__))(OSError(), None) == failure("OSError")
    assert when_result(lambda r: r < 0, IGNORED)(None, -1) is IGNORED
    assert when_result(lambda r: r < 0, IGNORED)(None, 1) is None


def test_error_type_is_the_qualified_class_name() -> None:
    assert error_type_of(ValueError()) == "ValueError"
    assert error_type_of(Boom()) == "tests.breaker.support.Boom"


def test_bad_exception_types_are_refused() -> None:
    with pytest.raises(TypeError, match="not an exception class"):
        record_exceptions(int)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="at least one"):
        ignore_exceptions()


def test_ignored_errors_do_not_count(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=2, sliding_window_size=2, classifier=ignore_exceptions(ValueError))
    for _ in range(5):
        fail(b, clock, exc=ValueError("caller's mistake"))
    snap = b.snapshot()
    assert (snap.state.value, snap.calls, snap.totals.ignored) == ("closed", 0, 5)


def test_results_can_be_failures(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=2, sliding_window_size=2, classifier=record_results(lambda r: r == "ok", "bad"))
    succeed(b, clock)
    succeed(b, clock)
    snap = b.snapshot()
    assert snap.state.value == "open"
    assert snap.totals.failures_by_type == {"bad": 2}


def test_a_raising_classifier_falls_back_to_the_default(
    make_breaker: MakeBreaker, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(exc: BaseException | None, result: object) -> Verdict | None:
        raise RuntimeError("classifier bug")

    b = make_breaker(classifier=broken)
    with caplog.at_level(logging.ERROR, logger="breaker"):
        assert succeed(b, clock) == "ok"
        fail(b, clock)
    totals = b.snapshot().totals
    assert (totals.successes, totals.failures) == (1, 1)
    assert "classifier" in caplog.text


def test_default_is_exceptions_fail_results_succeed(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker()
    succeed(b, clock)
    fail(b, clock)
    assert b.snapshot().totals.failures_by_type == {"tests.breaker.support.Boom": 1}
    assert SUCCESS.kind is VerdictKind.SUCCESS
