"""The ``breaker:`` settings of ``breakers.yaml``: pydantic models made from the dataclasses.

:class:`~breakerpanel.BreakerConfig` declares each setting once (name, type, default, documentation,
validation), as :class:`~breakerpanel.AdaptiveThresholds`, :class:`~breakerpanel.TripForecast` and
:class:`~breakerpanel.ExponentialBackoff` do for their blocks. The models are made from those
fields, so a field added there is a key of the file, and the dataclass judges every value, with its
own reason. The models add only the file's grammar: durations with units for the settings in
seconds; in a level's ``breaker:`` every key optional (``null`` or absent inherits) and ``off`` for
a setting whose ``None`` means off; a classifier preset's name and ``{exponential: {...}}`` for
what Python passes as objects.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Iterator
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, create_model
from pydantic import model_validator as _model_validator
from pydantic_core import PydanticCustomError

from . import _adaptive, _config, _forecast, _wait, presets
from ._adaptive import AdaptiveThresholds
from ._classify import Classifier
from ._config import BreakerConfig
from ._exceptions import BreakerConfigError
from ._forecast import TripForecast
from ._wait import ExponentialBackoff
from .durations import SECONDS
from .durations import parse_duration as _parse_duration

__all__ = ["FILE_ONLY_SETTINGS", "BreakerOptions", "Duration", "StrictModel", "options_of"]
__all__ += ["AdaptiveOptions", "ExponentialWait", "ForecastOptions", "parse_duration"]

# A discriminated union puts the chosen member's tag in an error's location: tags in parentheses
# cannot be keys of the file, and the loader drops them from the key paths it reports.
_VALUE, _OFF, _MAPPING = "(value)", "(off)", "(mapping)"


def parse_duration(value: Any) -> Any:
    """Seconds from a number or a string with units: ``250ms``, ``30s``, ``5m``, ``1h``, ``1h30m``
    (the project's one grammar, :mod:`breakerpanel.durations`); anything else is left to the
    field's own validation."""
    if isinstance(value, bool):  # YAML's on/yes/true would pass as 1 second
        raise ValueError(f"expected seconds or a duration such as 250ms, 30s, 5m, 1h (got {value!r})")
    if isinstance(value, str):
        try:
            return _parse_duration(value)
        except ValueError:
            raise ValueError(f"expected seconds or a duration such as 250ms, 30s, 5m, 1h (got {value!r})") from None
    return value


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic would read YAML's yes/on as 1
        raise ValueError(f"expected a number (got {value!r})")
    return value


#: Seconds as a number or a duration; the dataclass says which it takes.
Seconds = Annotated[float, BeforeValidator(parse_duration)]
#: Seconds above 0, for the file's settings that belong to no dataclass (probes, caches, the store).
Duration = Annotated[Seconds, Field(gt=0, allow_inf_nan=False)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ModelT = TypeVar("ModelT", bound=StrictModel)


def _file_type(hint: Any) -> Any:
    """How the file writes a dataclass field of type ``hint``: a number the dataclass marks as
    seconds (:data:`breakerpanel.durations.Seconds`) also as a duration with units."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return Seconds if SECONDS in hint.__metadata__ else _file_type(args[0])
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_file_type(arg) for arg in args)]  # noqa: UP007 (made at run time)
    if origin is tuple:
        return tuple[tuple(_file_type(arg) for arg in args)]  # type: ignore[misc]
    if hint in (float, int):
        return Annotated[hint, BeforeValidator(_not_a_bool)]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):  # by value: `time_based`
        return Literal[tuple(member.value for member in hint)]
    return _BLOCKS.get(hint, hint)


def _one_of(pick: Callable[[Any], str], **members: Any) -> Any:
    """A union whose member ``pick`` chooses by the value, so a bad value gets that member's reason
    only, not one per member."""
    tagged = tuple(Annotated[form, Tag(tag)] for tag, form in members.items())
    return Annotated[typing.Union[tagged], Discriminator(pick)]  # noqa: UP007


def _or_off(form: Any) -> Any:
    """``form`` or ``off`` (YAML's false and no too). Any yes/no is taken for on/off, so ``on`` is
    told that only ``off`` is one, not that it is no number."""
    off = Annotated[Literal["off"], BeforeValidator(lambda value: "off" if value is False else value)]
    return _one_of(
        lambda value: _OFF if isinstance(value, bool) or value == "off" else _VALUE, **{_VALUE: form, _OFF: off}
    )


def _file_fields(settings: type, module: types.ModuleType) -> Iterator[tuple[dataclasses.Field[Any], Any]]:
    """Each field of the dataclass ``settings`` (which ``module`` defines), with how the file writes it."""
    # breakerpanel's __init__ gives its public classes its own __module__ (for tracebacks): their
    # annotations are resolved in the module that defines them.
    hints = typing.get_type_hints(settings, localns=vars(module), include_extras=True)
    for f in dataclasses.fields(settings):
        yield f, _file_type(hints[f.name])


def _made_from(settings: type, base: type[ModelT], fields: dict[str, Any]) -> type[ModelT]:
    model = create_model(base.__name__, __base__=base, __module__=__name__, __doc__=base.__doc__, **fields)
    model.settings_class = settings  # type: ignore[attr-defined]
    return model


def _config_value(value: Any) -> Any:
    """A file value as the dataclass takes it."""
    if isinstance(value, str) and value == "off":
        return None
    return value.to_settings() if isinstance(value, SettingsBlock | ExponentialWaitOption) else value


class SettingsBlock(StrictModel):
    """A mapping that is one settings dataclass, with its fields and defaults; the dataclass
    validates the whole, so a bound set against another field is checked too."""

    settings_class: ClassVar[type]

    def to_settings(self) -> Any:
        return self.settings_class(**dict(self))

    @_model_validator(mode="after")
    def _valid(self) -> SettingsBlock:
        try:
            self.to_settings()
        except BreakerConfigError as exc:
            # The dataclass names the field under its own key ("adaptive.floor"): the loader
            # reports it under the block's key path in the file.
            field = exc.field.rpartition(".")[2]
            key = field if field in type(self).model_fields else ""
            raise PydanticCustomError("invalid_setting", "{reason}", {"reason": exc.reason, "key": key}) from None
        return self


BlockT = TypeVar("BlockT", bound=SettingsBlock)
_BLOCKS: dict[Any, type[SettingsBlock]] = {}  # a field of a settings dataclass's type is its block


def block_of(settings: type, module: types.ModuleType, *, exclude: str = "") -> Callable[[type[BlockT]], type[BlockT]]:
    """Give a :class:`SettingsBlock` the fields of ``settings``, with their defaults."""

    def derive(block: type[BlockT]) -> type[BlockT]:
        fields = {
            f.name: (form, Field(f.default, description=f.metadata.get("doc")))
            for f, form in _file_fields(settings, module)
            if f.name != exclude
        }
        _BLOCKS[settings] = model = _made_from(settings, block, fields)
        return model

    return derive


@block_of(ExponentialBackoff, _wait, exclude="rng")
class ExponentialWait(SettingsBlock):
    """An open wait that grows with each opening in a row."""


@block_of(AdaptiveThresholds, _adaptive)
class AdaptiveOptions(SettingsBlock):
    """`breaker.adaptive`: thresholds from the breaker's own history (see `docs/breaker.md`)."""


@block_of(TripForecast, _forecast)
class ForecastOptions(SettingsBlock):
    """`breaker.forecast`: warn before the failure rate's trend trips the breaker."""


class ExponentialWaitOption(StrictModel):
    """`wait_in_open: {exponential: {...}}`."""

    exponential: ExponentialWait

    def to_settings(self) -> Any:
        return self.exponential.to_settings()


#: Settings the file writes in words of its own, with what they say in it.
_FILE_FORMS: dict[str, tuple[Any, str]] = {
    "classifier": (
        Literal["default", "llm_http", "redis", "postgres"],
        "What counts as a failure: `default` (every exception), `llm_http` (429 rate limits, 5xx, 529, "
        "timeouts and connection errors fail; 4xx are the caller's), `redis`, `postgres`.",
    ),
    "wait_in_open": (
        _one_of(
            lambda value: _MAPPING if isinstance(value, dict | BaseModel) else _VALUE,
            **{_VALUE: Seconds, _MAPPING: ExponentialWaitOption},
        ),
        "Time to stay open: a duration above 0, or `{exponential: {initial, multiplier, maximum, jitter}}`. "
        "Never infinite: to stay open until told otherwise, force it open.",
    ),
}
#: Keys of the file that are no BreakerConfig field: they say how to make one.
FILE_ONLY_SETTINGS: dict[str, Any] = {
    "auth_failures": (
        Literal["failure", "ignore"] | None,
        Field(None, description="With `llm_http`: whether 401/403 count as failures of type `auth` or are ignored."),
    ),
}
_CLASSIFIERS: dict[str, Callable[[Literal["failure", "ignore"]], Classifier | None]] = {
    "default": lambda auth: None,
    "llm_http": lambda auth: presets.llm_http(auth=auth),
    "redis": lambda auth: presets.redis_errors(),
    "postgres": lambda auth: presets.postgres_errors(),
}


def options_of(config_class: type[BreakerConfig]) -> Callable[[type[BreakerOptions]], type[BreakerOptions]]:
    """Give :class:`BreakerOptions` the fields of ``config_class``: each optional (unset inherits),
    ``off`` for those whose ``None`` means off, each value checked by ``config_class``."""

    def checked_by_config(name: str) -> AfterValidator:
        def check(value: Any) -> Any:
            try:
                config_class(**{name: _config_value(value)})
            except BreakerConfigError as exc:
                # A reason about another field would come from its default, not the inherited value:
                # the merged settings are checked when the breaker is built.
                if exc.field == name:
                    raise ValueError(exc.reason) from None
            return value

        return AfterValidator(check)

    def derive(options: type[BreakerOptions]) -> type[BreakerOptions]:
        fields: dict[str, Any] = {}
        for f, form in _file_fields(config_class, _config):
            form, doc = _FILE_FORMS.get(f.name, (form, f.metadata.get("doc", "")))
            if f.name not in _FILE_FORMS and type(None) in typing.get_args(form):  # None means off
                form = _or_off(typing.Union[tuple(arg for arg in typing.get_args(form) if arg is not type(None))])  # noqa: UP007
                doc = doc.replace("`None`: off.", "`off` turns it off.").replace("`None`", "`off`")
            if f.name != "classifier":  # a preset's name is valid by its type; to_config makes the classifier
                form = Annotated[form, checked_by_config(f.name)]
            fields[f.name] = (form | None, Field(None, description=doc))  # None: inherited
        return _made_from(config_class, options, fields | FILE_ONLY_SETTINGS)

    return derive


@options_of(BreakerConfig)
class BreakerOptions(StrictModel):
    """Breaker settings; an unset one is inherited (defaults, then service, then endpoint).

    The keys are BreakerConfig's fields: see ``docs/breaker.md`` for what each does.
    """

    settings_class: ClassVar[type[BreakerConfig]]

    def merged(self, *others: BreakerOptions | None) -> BreakerOptions:
        """These options, overridden by the set fields of each of ``others`` in turn."""
        changes = {name: value for other in others if other is not None for name, value in other if value is not None}
        return self.model_copy(update=changes)

    def to_config(self) -> BreakerConfig:
        """The set fields over the library's defaults."""
        given = {name: value for name, value in self if value is not None}
        kind = given.pop("classifier", "default")
        auth = given.pop("auth_failures", None)
        if auth is not None and kind != "llm_http":
            # Only llm_http tells 401/403 apart: set elsewhere it would be dropped unsaid.
            raise BreakerConfigError("auth_failures", f"applies to classifier llm_http only (the classifier is {kind})")
        classifier = _CLASSIFIERS[kind](auth or "failure")
        return self.settings_class(classifier=classifier, **{name: _config_value(v) for name, v in given.items()})
