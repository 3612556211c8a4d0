"""Regenerate the parts of the docs that are derived from code.

Each generated block sits between ``<!-- BEGIN GENERATED: name ... -->`` and
``<!-- END GENERATED: name -->`` markers; everything around it is written by hand.

Usage: ``python docs/generate.py`` rewrites the blocks; ``--check`` exits 1 when one is stale.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).resolve().parent


def breaker_config_table() -> str:
    from breakerpanel._config import describe_options

    lines = ["| option | type | default | what it does |", "|---|---|---|---|"]
    for name, type_name, default, doc in describe_options():
        lines.append(f"| `{name}` | `{cell(type_name)}` | `{default}` | {cell(doc)} |")
    return "\n".join(lines)


def cell(text: str) -> str:
    """Markdown table cells cannot hold a bare pipe, even inside code."""
    return text.replace("|", "\\|")


def _type_name(annotation: object) -> str:
    import types
    import typing

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (list, dict, tuple):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type):
        return {"str": "string", "float": "number", "int": "integer", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation).replace("typing.", "")


def model_table(model: type) -> str:
    from pydantic import BaseModel

    assert issubclass(model, BaseModel)
    doc = (model.__doc__ or "").strip()
    lines = [f"### `{model.__name__}`", ""] + ([_first_paragraph(doc), ""] if doc else [])
    lines += ["| key | type | default | what it does |", "|---|---|---|---|"]
    # A block made from a settings dataclass (breakerpanel._config_models) documents its fields there.
    comments = _attribute_comments(getattr(model, "settings_class", None))
    for name, field in model.model_fields.items():
        description = field.description or comments.get(name)
        if description is None and isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            description = _first_paragraph(field.annotation.__doc__ or "")
        lines.append(
            f"| `{field.alias or name}` | `{cell(_type_name(field.annotation))}` | {cell(_default_text(field))} "
            f"| {cell(description or '')} |"
        )
    return "\n".join(lines)


def _attribute_comments(cls: type | None) -> dict[str, str]:
    """The ``#:`` comments above a class's attributes (Sphinx's convention), by attribute name; a
    comment above several attributes in a row (``#: Bounds of ...``) documents each of them."""
    import ast
    import inspect

    if cls is None:
        return {}
    # breakerpanel's __init__ gives its public classes its own __module__; their methods keep the
    # module that defines them.
    method = next(value for value in vars(cls).values() if inspect.isfunction(value))
    source = inspect.getsource(sys.modules[method.__module__])
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    comments: dict[str, str] = {}
    comment: list[str] = []
    attributes_since = False  # attributes met since the comment: a further "#:" starts a new one
    for line in (ast.get_source_segment(source, node) or "").splitlines():
        text = line.strip()
        attribute = re.match(r"(\w+)\s*:", text)
        if text.startswith("#:"):
            comment = [*([] if attributes_since else comment), text[2:].strip()]
            attributes_since = False
        elif attribute and comment:
            comments[attribute.group(1)] = _first_paragraph(" ".join(comment))
            attributes_since = True
        else:
            comment, attributes_since = [], False
    return comments


def _first_paragraph(doc: str) -> str:
    """A docstring's first paragraph on one line, reST literals as Markdown code."""
    return " ".join(doc.strip().split("\n\n")[0].split()).replace("``", "`")


def _default_text(field: object) -> str:
    import json

    from pydantic import BaseModel, TypeAdapter
    from pydantic.fields import FieldInfo
    from pydantic_core import PydanticUndefined

    assert isinstance(field, FieldInfo)
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    else:
        return "required"
    if value is None:
        return "none"
    if isinstance(value, BaseModel):  # empty when every key is unset (overrides), else its own table
        return "empty" if all(v is None for v in value.model_dump().values()) else f"see `{type(value).__name__}`"
    if value in ([], {}):
        return "empty"
    dumped = TypeAdapter(type(value)).dump_python(value, mode="json", by_alias=True)
    return f"`{json.dumps(dumped, separators=(', ', ': '))}`"


def configuration_reference() -> str:
    from breakerpanel import config

    models = [
        config.BreakersFile,
        config.ServiceSettings,
        config.EndpointSettings,
        config.RouteSettings,
        config.FeatureSettings,
        config.AlternateStep,
        config.CacheStep,
        config.SemanticCacheStep,
        config.SimplifiedStep,
        config.StaticStep,
        config.BreakerOptions,
        config.ExponentialWait,
        config.AdaptiveOptions,
        config.ForecastOptions,
        config.ProbeSettings,
        config.StoreSettings,
    ]
    return "\n\n".join(model_table(m) for m in models)


def incident_bot_settings() -> str:
    from pydantic_core import PydanticUndefined

    from breakerpanel.incident_bot.settings import ENV_PREFIX, Settings

    lines = ["| variable | type | default | what it does |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        computed = field.default is PydanticUndefined and field.default_factory is not None
        default = "computed" if computed and field.default_factory not in (list, dict) else _default_text(field)
        lines.append(
            f"| `{ENV_PREFIX}{name.upper()}` | `{cell(_type_name(field.annotation))}` | {cell(default)} "
            f"| {cell(field.description or '')} |"
        )
    return "\n".join(lines)


def incident_bot_routing() -> str:
    from breakerpanel.incident_bot import routing

    models = [routing.RoutingFile, routing.Route, routing.Receivers, routing.PagerDutyReceiver, routing.SlackReceiver]
    return "\n\n".join(model_table(m) for m in models)


def alert_rules_reference() -> str:
    from breakerpanel.exporter import rules_config as config

    models = [
        config.RulesConfig,
        config.Slo,
        config.AlertsConfig,
        config.OpenAlert,
        config.Tier,
        config.FlappingAlert,
        config.HalfOpenStuckAlert,
        config.TripPredictedAlert,
        config.ErrorBudgetBurnAlert,
        config.BurnRateWindow,
        config.FallbackFailingAlert,
        config.DegradedAlert,
        config.RejectingTrafficAlert,
        config.MetricsAbsentAlert,
        config.ManualStateAlert,
        config.RateLimitSustainedAlert,
        config.CredentialStuffingAlert,
        config.LoadSheddingAlert,
        config.StoreUnavailableAlert,
        config.AlertmanagerRoute,
    ]
    return "\n\n".join(model_table(m) for m in models)


def alerts_table() -> str:
    from breakerpanel.alert_rules import ALERTS, runbook_slug

    lines = ["| alert | fires when | runbook |", "|---|---|---|"]
    for name, build in ALERTS.items():
        what = _first_paragraph(build.__doc__ or "")
        lines.append(f"| `{name}` | {cell(what)} | [runbook](runbooks/{runbook_slug(name)}.md) |")
    return "\n".join(lines)


def example_fastapi() -> str:
    """The FastAPI example, verbatim: the docs show the file the test runs."""
    code = (DOCS.parent / "docs_src" / "fastapi_app.py").read_text()
    return f"```python\n{code}```"


# (file, block name, renderer)
BLOCKS: list[tuple[str, str, Callable[[], str]]] = [
    ("breaker.md", "breaker-config", breaker_config_table),
    ("configuration.md", "configuration-reference", configuration_reference),
    ("integrations.md", "example-fastapi", example_fastapi),
    ("alerting.md", "alerts", alerts_table),
    ("alerting.md", "alert-rules-configuration", alert_rules_reference),
    ("incident-bot.md", "incident-bot-settings", incident_bot_settings),
    ("incident-bot.md", "incident-bot-routing", incident_bot_routing),
]


def render(text: str, name: str, content: str) -> str:
    pattern = re.compile(
        rf"(<!-- BEGIN GENERATED: {re.escape(name)}[^>]*-->\n)(.*?)(<!-- END GENERATED: {re.escape(name)} -->)",
        re.DOTALL,
    )
    if not pattern.search(text):
        raise SystemExit(f"no GENERATED markers for {name!r}")
    return pattern.sub(lambda m: m.group(1) + content + "\n" + m.group(3), text)


def stale_files(write: bool) -> list[str]:
    stale = []
    for filename, name, renderer in BLOCKS:
        path = DOCS / filename
        old = path.read_text()
        new = render(old, name, renderer())
        if new != old:
            stale.append(f"{path.relative_to(DOCS.parent)} ({name})")
            if write:
                path.write_text(new)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="report stale blocks, change nothing")
    args = parser.parse_args(argv)
    stale = stale_files(write=not args.check)
    for item in stale:
        print(("stale: " if args.check else "updated: ") + item)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
