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
    from breaker._config import describe_options

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
    if origin in (list, dict):
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
    from pydantic_core import PydanticUndefined

    assert issubclass(model, BaseModel)
    lines = [f"### `{model.__name__}`", "", (model.__doc__ or "").strip().splitlines()[0], ""]
    lines += ["| key | type | default | what it does |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if field.default is not PydanticUndefined:
            default = "none" if field.default is None else f"`{field.default!r}`"
        elif field.default_factory is not None:
            default = "empty"
        else:
            default = "required"
        lines.append(
            f"| `{name}` | `{cell(_type_name(field.annotation))}` | {default} | {cell(field.description or '')} |"
        )
    return "\n".join(lines)


def configuration_reference() -> str:
    from breaker import config

    models = [
        config.BreakersFile,
        config.ServiceSettings,
        config.EndpointSettings,
        config.RouteSettings,
        config.FeatureSettings,
        config.AlternateStep,
        config.CacheStep,
        config.SimplifiedStep,
        config.StaticStep,
        config.BreakerOptions,
        config.ExponentialWait,
    ]
    return "\n\n".join(model_table(m) for m in models)


def example_fastapi() -> str:
    """The FastAPI example, verbatim: the docs show the file the test runs."""
    code = (DOCS.parent / "docs_src" / "fastapi_app.py").read_text()
    return f"```python\n{code}```"


# (file, block name, renderer)
BLOCKS: list[tuple[str, str, Callable[[], str]]] = [
    ("breaker.md", "breaker-config", breaker_config_table),
    ("configuration.md", "configuration-reference", configuration_reference),
    ("integrations.md", "example-fastapi", example_fastapi),
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
