"""Classification: deciding what a call's exception or result means to the breaker.

A classifier looks at one finished call and returns a :class:`Verdict`, or ``None`` for "no
opinion". Classifiers compose like tenacity's strategies: ``a | b`` asks ``a`` first and falls
back to ``b``. Plain callables ``(exception, result) -> Verdict | None`` work too.

When no classifier has an opinion, an exception is a failure (its error type is the exception's
qualified class name) and a returned value is a success.

>>> from breakerpanel import ignore_exceptions, record_exceptions
>>> classify = ignore_exceptions(KeyError) | record_exceptions(OSError, error_type="io")
>>> classify(KeyError("k"), None).kind.value
'ignored'
>>> classify(ConnectionError(), None).error_type
'io'
>>> classify(ValueError(), None) is None
True
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeAlias, final

__all__ = [
    "IGNORED",
    "RATE_LIMITED_ERROR_TYPE",
    "SUCCESS",
    "Classifier",
    "ClassifierFunc",
    "ClassifierLike",
    "ExceptionMatcher",
    "Verdict",
    "VerdictKind",
    "as_classifier",
    "classify_with",
    "error_type_of",
    "failure",
    "ignore_exceptions",
    "ignore_results",
    "rate_limited",
    "record_exceptions",
    "record_results",
    "resilience4j_exceptions",
    "when_exception",
    "when_result",
]


class VerdictKind(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"
    RATE_LIMITED = "rate_limited"


@final
@dataclass(frozen=True, slots=True)
class Verdict:
    """What one call means to the breaker.

    - ``SUCCESS`` and ``FAILURE`` count in the window (``error_type`` names the failure);
    - ``IGNORED`` counts as neither, as if the call never happened;
    - ``RATE_LIMITED`` opens the breaker for ``retry_after`` seconds (bounded by the breaker's
      ``rate_limit_max_wait``); without a ``retry_after`` it counts as a failure of type
      ``rate_limited``.
    """

    kind: VerdictKind
    error_type: str | None = None
    retry_after: float | None = None


SUCCESS = Verdict(VerdictKind.SUCCESS)
IGNORED = Verdict(VerdictKind.IGNORED)


def failure(error_type: str) -> Verdict:
    """A failure of the given type (``timeout``, ``auth``, ``http_503``, an exception class...)."""
    return Verdict(VerdictKind.FAILURE, error_type=error_type)


#: The ``error.type`` a rate-limited call is counted under (a 429 from an LLM provider, say).
RATE_LIMITED_ERROR_TYPE = "rate_limited"


def rate_limited(retry_after: float | None = None) -> Verdict:
    """The dependency asked us to slow down, optionally saying for how long."""
    if retry_after is not None and retry_after < 0:
        retry_after = 0.0
    return Verdict(VerdictKind.RATE_LIMITED, error_type=RATE_LIMITED_ERROR_TYPE, retry_after=retry_after)


_error_types: dict[type[BaseException], str] = {}


def error_type_of(exc: BaseException) -> str:
    """The OpenTelemetry ``error.type`` of an exception: its fully-qualified class name."""
    cls = type(exc)
    name = _error_types.get(cls)
    if name is None:
        module = cls.__module__
        name = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
        if len(_error_types) < 4096:  # bounded: exception classes made at run time must not leak
            _error_types[cls] = name
    return name


ClassifierFunc: TypeAlias = Callable[[BaseException | None, Any], Verdict | None]


class Classifier:
    """Base of the composable classifiers.

    Subclasses implement :meth:`__call__`. ``inspects_results`` tells the breaker whether the
    classifier ever looks at returned values; when none does, a successful call skips
    classification entirely (the hot path stays short).
    """

    inspects_results: bool = True

    def __call__(self, exc: BaseException | None, result: Any) -> Verdict | None:
        raise NotImplementedError

    def __or__(self, other: ClassifierLike) -> Classifier:
        return _FirstOpinion((self, as_classifier(other)))

    def __ror__(self, other: ClassifierLike) -> Classifier:
        return _FirstOpinion((as_classifier(other), self))


ClassifierLike: TypeAlias = Classifier | ClassifierFunc

logger = logging.getLogger("breakerpanel")


def classify_safely(
    classifier: ClassifierLike, exc: BaseException | None, result: Any, breaker_name: str
) -> Verdict | None:
    """``classifier(exc, result)``, or ``None`` (no opinion: the default decides) when it raises
    or answers something that is not a :class:`Verdict`, which is logged. A broken classifier must
    neither turn a call's outcome into an error nor leave the call unrecorded (a half-open probe
    that is never recorded keeps its permit, and the breaker admits no other)."""
    try:
        verdict: object = classifier(exc, result)  # object: what a user's function returns is unchecked
    except Exception:
        logger.exception("circuit breaker %r: classifier %r raised; using the default", breaker_name, classifier)
        return None
    if verdict is None or isinstance(verdict, Verdict):
        return verdict
    logger.error(
        "circuit breaker %r: classifier %r returned %r, not a Verdict or None; using the default",
        breaker_name,
        classifier,
        verdict,
    )
    return None


class _FirstOpinion(Classifier):
    __slots__ = ("inspects_results", "members")
    members: tuple[Classifier, ...]

    def __init__(self, members: tuple[Classifier, ...]) -> None:
        flat: list[Classifier] = []
        for member in members:  # flatten nested chains, as tenacity's retry_any does
            flat.extend(member.members if isinstance(member, _FirstOpinion) else (member,))
        self.members = tuple(flat)
        self.inspects_results = any(m.inspects_results for m in self.members)

    def __call__(self, exc: BaseException | None, result: Any) -> Verdict | None:
        for member in self.members:
            verdict = member(exc, result)
            if verdict is not None:
                return verdict
        return None

    def __repr__(self) -> str:
        return " | ".join(repr(m) for m in self.members)


class _Func(Classifier):
    __slots__ = ("func",)

    def __init__(self, func: ClassifierFunc) -> None:
        self.func = func

    def __call__(self, exc: BaseException | None, result: Any) -> Verdict | None:
        return self.func(exc, result)

    def __repr__(self) -> str:
        return f"classify_with({self.func!r})"


def as_classifier(value: ClassifierLike) -> Classifier:
    """Wrap a plain callable into a :class:`Classifier` (classifiers pass through)."""
    if isinstance(value, Classifier):
        return value
    if not callable(value):
        raise TypeError(f"classifier: expected a Classifier or a callable, got {type(value).__name__}")
    return _Func(value)


def classify_with(func: ClassifierFunc) -> Classifier:
    """A classifier from a function ``(exception or None, result) -> Verdict | None``."""
    return _Func(func)


class _ExceptionRule(Classifier):
    __slots__ = ("label", "predicate", "verdict")
    inspects_results = False

    def __init__(
        self,
        predicate: Callable[[BaseException], bool],
        verdict: Verdict | Callable[[BaseException], Verdict],
        label: str,
    ) -> None:
        self.predicate = predicate
        self.verdict = verdict
        self.label = label

    def __call__(self, exc: BaseException | None, result: Any) -> Verdict | None:
        if exc is None or not self.predicate(exc):
            return None
        verdict = self.verdict
        return verdict if isinstance(verdict, Verdict) else verdict(exc)

    def __repr__(self) -> str:
        return self.label


class _ResultRule(Classifier):
    __slots__ = ("label", "predicate", "verdict")
    inspects_results = True

    def __init__(
        self,
        predicate: Callable[[Any], bool],
        verdict: Verdict | Callable[[Any], Verdict],
        label: str,
    ) -> None:
        self.predicate = predicate
        self.verdict = verdict
        self.label = label

    def __call__(self, exc: BaseException | None, result: Any) -> Verdict | None:
        if exc is not None or not self.predicate(result):
            return None
        verdict = self.verdict
        return verdict if isinstance(verdict, Verdict) else verdict(result)

    def __repr__(self) -> str:
        return self.label


def _check_types(types: tuple[type[BaseException], ...], where: str) -> None:
    if not types:
        raise TypeError(f"{where}: give at least one exception class")
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(f"{where}: {t!r} is not an exception class")


def record_exceptions(*types: type[BaseException], error_type: str | None = None) -> Classifier:
    """Exceptions of these classes are failures (typed by ``error_type`` or their class)."""
    _check_types(types, "record_exceptions")
    names = ", ".join(t.__name__ for t in types)
    if error_type is None:
        return _ExceptionRule(
            lambda e: isinstance(e, types), lambda e: failure(error_type_of(e)), f"record_exceptions({names})"
        )
    return _ExceptionRule(
        lambda e: isinstance(e, types), failure(error_type), f"record_exceptions({names}, error_type={error_type!r})"
    )


def ignore_exceptions(*types: type[BaseException]) -> Classifier:
    """Exceptions of these classes count as neither success nor failure (a caller's mistake)."""
    _check_types(types, "ignore_exceptions")
    names = ", ".join(t.__name__ for t in types)
    return _ExceptionRule(lambda e: isinstance(e, types), IGNORED, f"ignore_exceptions({names})")


def when_exception(
    predicate: Callable[[BaseException], bool],
    verdict: Verdict | Callable[[BaseException], Verdict],
) -> Classifier:
    """When ``predicate(exception)`` holds, give ``verdict`` (or ``verdict(exception)``)."""
    return _ExceptionRule(predicate, verdict, f"when_exception({predicate!r})")


def record_results(predicate: Callable[[Any], bool], error_type: str = "result") -> Classifier:
    """Returned values for which ``predicate`` holds are failures of type ``error_type``."""
    return _ResultRule(predicate, failure(error_type), f"record_results({predicate!r})")


def ignore_results(predicate: Callable[[Any], bool]) -> Classifier:
    """Returned values for which ``predicate`` holds count as neither success nor failure."""
    return _ResultRule(predicate, IGNORED, f"ignore_results({predicate!r})")


def when_result(
    predicate: Callable[[Any], bool],
    verdict: Verdict | Callable[[Any], Verdict],
) -> Classifier:
    """When ``predicate(result)`` holds, give ``verdict`` (or ``verdict(result)``)."""
    return _ResultRule(predicate, verdict, f"when_result({predicate!r})")


#: What resilience4j's ``recordExceptions``/``ignoreExceptions`` take: an exception class (its
#: subclasses match too), or a predicate on the exception (``recordException(Predicate)``).
ExceptionMatcher: TypeAlias = type[BaseException] | Callable[[BaseException], bool]


def _matchers(
    items: tuple[ExceptionMatcher, ...], where: str
) -> tuple[tuple[type[BaseException], ...], tuple[Callable[[BaseException], bool], ...]]:
    types: list[type[BaseException]] = []
    predicates: list[Callable[[BaseException], bool]] = []
    for item in items:
        if isinstance(item, type):
            if not issubclass(item, BaseException):
                raise TypeError(f"{where}: {item!r} is not an exception class")
            types.append(item)
        elif callable(item):
            predicates.append(item)
        else:
            raise TypeError(f"{where}: {item!r} is neither an exception class nor a predicate")
    return tuple(types), tuple(predicates)


class _Resilience4jExceptions(Classifier):
    __slots__ = ("_ignore", "_ignore_if", "_record", "_record_all", "_record_if", "error_type", "ignore", "record")
    inspects_results = False

    def __init__(
        self, record: tuple[ExceptionMatcher, ...], ignore: tuple[ExceptionMatcher, ...], error_type: str | None
    ) -> None:
        self.record = record
        self.ignore = ignore
        self.error_type = error_type
        self._record, self._record_if = _matchers(record, "resilience4j_exceptions(record=...)")
        self._ignore, self._ignore_if = _matchers(ignore, "resilience4j_exceptions(ignore=...)")
        self._record_all = not record

    def __call__(self, exc: BaseException | None, result: Any) -> Verdict | None:
        if exc is None:
            return None  # results: no opinion (resilience4j's recordResult is record_results here)
        if isinstance(exc, self._ignore) or any(p(exc) for p in self._ignore_if):
            return IGNORED  # ignoreExceptions wins over recordExceptions
        if self._record_all or isinstance(exc, self._record) or any(p(exc) for p in self._record_if):
            return failure(self.error_type or error_type_of(exc))
        return SUCCESS  # neither recorded nor ignored: resilience4j counts it as a success

    def __repr__(self) -> str:
        def shown(items: tuple[ExceptionMatcher, ...]) -> str:
            names = [item.__name__ if isinstance(item, type) else repr(item) for item in items]
            return "(" + ", ".join(names) + ("," if len(names) == 1 else "") + ")"

        extra = "" if self.error_type is None else f", error_type={self.error_type!r}"
        return f"resilience4j_exceptions(record={shown(self.record)}, ignore={shown(self.ignore)}{extra})"


def resilience4j_exceptions(
    *,
    record: Iterable[ExceptionMatcher] = (),
    ignore: Iterable[ExceptionMatcher] = (),
    error_type: str | None = None,
) -> Classifier:
    """resilience4j's exception rules (``recordExceptions``, ``ignoreExceptions``), as one classifier.

    - an exception matching ``ignore`` is ignored, even when it matches ``record`` too: ignoring
      wins, as in resilience4j's state machine;
    - else one matching ``record`` is a failure (typed by ``error_type`` or its class);
    - else it is a **success**, where ``record_exceptions`` alone would leave it to the default
      (a failure). With ``record`` empty every exception not ignored is a failure, as resilience4j's
      default ``recordExceptions`` (every exception) has it.

    Matchers are exception classes (subclasses match) or predicates ``(exception) -> bool``, like
    resilience4j's ``recordException(Predicate)``. It has an opinion on every exception, so with
    ``|`` other exception rules go before it; it never looks at results (the success path stays
    lock-free), so ``record_results`` composes on either side.

    >>> from breakerpanel import resilience4j_exceptions
    >>> classify = resilience4j_exceptions(record=(OSError,), ignore=(ConnectionResetError,))
    >>> classify(TimeoutError(), None).kind.value  # an OSError: recorded
    'failure'
    >>> classify(ConnectionResetError(), None).kind.value  # an OSError too, but ignoring wins
    'ignored'
    >>> classify(ValueError(), None).kind.value  # not recorded: a success, as in resilience4j
    'success'
    >>> resilience4j_exceptions(ignore=(KeyError,))(ValueError(), None).error_type  # record empty: all
    'ValueError'
    """
    lists = []
    for name, value in (("record", record), ("ignore", ignore)):
        if isinstance(value, type | str | bytes) or callable(value):
            raise TypeError(
                f"resilience4j_exceptions({name}=...): expected a tuple of exception classes or "
                f"predicates (got {value!r})"
            )
        lists.append(tuple(value))
    return _Resilience4jExceptions(lists[0], lists[1], error_type)
