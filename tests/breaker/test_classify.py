"""Classification: composable predicates over exceptions and results."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breakerpanel import (
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
    resilience4j_exceptions,
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
    with caplog.at_level(logging.ERROR, logger="breakerpanel"):
        assert succeed(b, clock) == "ok"
        fail(b, clock)
    totals = b.snapshot().totals
    assert (totals.successes, totals.failures) == (1, 1)
    assert "classifier" in caplog.text


def test_a_classifier_that_answers_no_verdict_has_no_opinion(
    make_breaker: MakeBreaker, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A classifier answering something that is neither a Verdict nor None (``True``, say) is
    logged and has no opinion; a half-open probe it judges is recorded and gives its permit back.
    (Before, the call raised AttributeError from inside the breaker, and a probe's permit stayed
    taken: the breaker rejected every call as half-open and full.)"""

    def sloppy(exc: BaseException | None, result: object) -> Verdict | None:
        return True  # type: ignore[return-value]

    b = make_breaker(classifier=sloppy, wait_in_open=1.0, permitted_calls_in_half_open=1)
    b.force_open(duration=1.0)
    clock.advance(1.0)
    with caplog.at_level(logging.ERROR, logger="breakerpanel"):
        fail(b, clock)  # the probe: the default makes it a failure, and the breaker opens again
        assert b.snapshot().state.value == "open"
        clock.advance(1.0)
        assert succeed(b, clock) == "ok"  # the next probe is admitted, and closes it
    assert b.snapshot().state.value == "closed"
    assert b.snapshot().half_open_in_flight == 0
    assert caplog.text.count("not a Verdict or None") == 2


def test_default_is_exceptions_fail_results_succeed(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker()
    succeed(b, clock)
    fail(b, clock)
    assert b.snapshot().totals.failures_by_type == {"tests.breaker.support.Boom": 1}
    assert SUCCESS.kind is VerdictKind.SUCCESS


def test_error_type_of_a_class_seen_for_the_first_time() -> None:
    # Classes made here are new to error_type_of's cache, so the name is computed, not looked up.
    class LocalError(Exception):
        pass

    builtin_like = type("BuiltinLike", (Exception,), {"__module__": "builtins"})
    assert (
        error_type_of(LocalError())
        == f"{__name__}.test_error_type_of_a_class_seen_for_the_first_time.<locals>.LocalError"
    )
    assert error_type_of(LocalError()) == error_type_of(LocalError())  # the cached name is the same
    assert error_type_of(builtin_like()) == "BuiltinLike"


def test_error_type_cache_is_bounded() -> None:
    from breakerpanel import _classify

    saved = dict(_classify._error_types)
    try:
        classes = [type(f"Made{i}", (Exception,), {}) for i in range(4200)]
        for i, cls in enumerate(classes):
            assert error_type_of(cls()) == f"{__name__}.Made{i}"
        assert len(_classify._error_types) == 4096  # exception classes made at run time must not leak
    finally:
        _classify._error_types.clear()
        _classify._error_types.update(saved)


def test_record_exceptions_types_failures_by_class_unless_told() -> None:
    class Flaky(Exception):
        pass

    by_class = record_exceptions(Flaky, OSError)
    assert by_class(Flaky(), None) == failure(error_type_of(Flaky()))
    assert by_class(FileNotFoundError(), None) == failure("FileNotFoundError")
    assert by_class(KeyError(), None) is None
    assert by_class(None, "ok") is None
    assert record_exceptions(OSError, error_type="io")(OSError(), None) == failure("io")


def test_result_rules_pass_the_result_and_default_to_type_result() -> None:
    assert record_results(lambda r: r is None)(None, None) == failure("result")
    assert when_result(lambda r: r >= 500, lambda r: failure(f"http_{r}"))(None, 503) == failure("http_503")
    assert classify_with(lambda e, r: failure("raised") if e is not None else None)(OSError(), None) == failure(
        "raised"
    )


def test_rate_limited_keeps_short_waits() -> None:
    assert rate_limited(0.5).retry_after == 0.5
    assert rate_limited(0).retry_after == 0.0
    assert rate_limited().retry_after is None


def test_classifiers_describe_themselves() -> None:
    def bad(r: object) -> bool:
        return r is None

    assert repr(record_exceptions(KeyError, OSError)) == "record_exceptions(KeyError, OSError)"
    assert repr(record_exceptions(OSError, error_type="io")) == "record_exceptions(OSError, error_type='io')"
    assert repr(ignore_exceptions(KeyError, ValueError)) == "ignore_exceptions(KeyError, ValueError)"
    assert repr(record_results(bad)) == f"record_results({bad!r})"
    assert repr(ignore_results(bad)) == f"ignore_results({bad!r})"
    assert repr(when_result(bad, IGNORED)) == f"when_result({bad!r})"
    assert repr(when_exception(bad, IGNORED)) == f"when_exception({bad!r})"
    assert (
        repr(ignore_exceptions(KeyError) | ignore_results(bad))
        == f"ignore_exceptions(KeyError) | ignore_results({bad!r})"
    )


def test_refusals_name_the_function_and_the_bad_value() -> None:
    with pytest.raises(TypeError, match=r"^record_exceptions: give at least one"):
        record_exceptions()
    with pytest.raises(TypeError, match=r"^ignore_exceptions: 'x' is not an exception class"):
        ignore_exceptions("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"got int$"):
        as_classifier(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- resilience4j's rules

HIERARCHY = [
    Exception,
    OSError,
    ConnectionError,
    ConnectionResetError,
    TimeoutError,
    LookupError,
    KeyError,
    IndexError,
    ValueError,
    Boom,
]
CLASSES = st.lists(st.sampled_from(HIERARCHY), max_size=3, unique=True)


@given(record=CLASSES, ignore=CLASSES, raised=st.sampled_from(HIERARCHY), after=st.sampled_from(HIERARCHY))
def test_resilience4j_rules_ignore_always_wins(
    record: list[type[Exception]], ignore: list[type[Exception]], raised: type[Exception], after: type[Exception]
) -> None:
    classify = resilience4j_exceptions(record=record, ignore=ignore)
    exc = raised()
    verdict = classify(exc, None)
    if isinstance(exc, tuple(ignore)):
        assert verdict is IGNORED  # whatever record says
    elif not record or isinstance(exc, tuple(record)):
        assert verdict == failure(error_type_of(exc))
    else:
        assert verdict is SUCCESS  # neither recorded nor ignored
    # It has an opinion on every exception: what comes after it in a chain never decides one.
    assert (classify | record_exceptions(after, error_type="later"))(exc, None) == verdict
    assert classify(None, "a result") is None


def test_resilience4j_rules_differ_from_the_composable_ones_where_it_matters() -> None:
    r4j = resilience4j_exceptions(record=(OSError,), ignore=(ConnectionResetError,))
    ours = record_exceptions(OSError) | ignore_exceptions(ConnectionResetError)
    assert ours(ConnectionResetError(), None) == failure("ConnectionResetError")  # order decides here
    assert r4j(ConnectionResetError(), None) is IGNORED  # ignore wins there
    assert ours(ValueError(), None) is None  # no opinion: the default makes it a failure
    assert r4j(ValueError(), None) is SUCCESS


def test_resilience4j_rules_take_predicates_and_an_error_type() -> None:
    classify = resilience4j_exceptions(
        record=(lambda e: "unavailable" in str(e),),
        ignore=(KeyError, lambda e: "bad request" in str(e)),
        error_type="dep",
    )
    assert classify(RuntimeError("service unavailable"), None) == failure("dep")
    assert classify(RuntimeError("unavailable: bad request"), None) is IGNORED
    assert classify(RuntimeError("fine"), None) is SUCCESS
    assert not classify.inspects_results
    assert repr(resilience4j_exceptions(record=(OSError,))) == "resilience4j_exceptions(record=(OSError,), ignore=())"
    with pytest.raises(TypeError, match=r"^resilience4j_exceptions\(record=\.\.\.\): expected a tuple"):
        resilience4j_exceptions(record=OSError)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"ignore=\.\.\.\): 'x' is neither"):
        resilience4j_exceptions(ignore=("x",))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="is not an exception class"):
        resilience4j_exceptions(ignore=(int,))  # type: ignore[arg-type]


def test_resilience4j_rules_in_a_breaker(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(
        minimum_calls=100, classifier=resilience4j_exceptions(record=(ConnectionError,), ignore=(KeyError,))
    )
    fail(b, clock)  # Boom: not recorded, so a success
    fail(b, clock, exc=KeyError("k"))  # ignored
    fail(b, clock, exc=ConnectionRefusedError())  # recorded
    succeed(b, clock)
    snap = b.snapshot()
    assert (snap.calls, snap.failures) == (3, 1)
    assert (snap.totals.successes, snap.totals.failures, snap.totals.ignored) == (2, 1, 1)
    assert snap.totals.failures_by_type == {"ConnectionRefusedError": 1}
