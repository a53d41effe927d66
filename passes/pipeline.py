"""Pipelines as text: `canonicalize,fold,cse,dce,fuse{max-ops=16}`.

Option names are written with dashes and map to the Options dataclass fields with underscores;
values are converted according to the field's type, and every mistake is reported with a caret
under the offending part of the text.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from typing import Any

from ir.diagnostics import Loc, TesselError
from passes.base import REGISTRY, Pass

_ITEM = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)\s*(?:\{([^{}]*)\})?\s*")
_OPTION = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*([^,=]*?)\s*(?:,|$)")


_ARTICLE = {int: "an int", float: "a number", bool: "true or false", str: "a string"}


class PipelineError(TesselError):
    """A pipeline description names an unknown pass or gives a bad option."""


def _error(text: str, pos: int, msg: str) -> PipelineError:
    return PipelineError(msg, Loc("<pipeline>", 1, pos + 1, text))


def _convert(text: str, value: str, pos: int, field: dataclasses.Field[Any], kind: type) -> Any:
    name = field.name.replace("_", "-")
    try:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return value.lower() in ("true", "1")
        return kind(value)
    except ValueError:
        raise _error(text, pos, f"option '{name}' takes {_ARTICLE[kind]}, got '{value}'") from None


def _options(cls: type[Pass], text: str, body: str, start: int) -> Any:
    fields = {f.name.replace("_", "-"): f for f in cls.option_fields()}
    hints = typing.get_type_hints(cls.Options)
    values: dict[str, Any] = {}
    pos = 0
    while pos < len(body):
        m = _OPTION.match(body, pos)
        if not m or m.end() == pos:
            raise _error(text, start + pos, "expected 'option=value' in the option list")
        key, raw = m.group(1), m.group(2)
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise _error(
                text,
                start + m.start(1),
                f"pass '{cls.name}' has no option '{key}' (options: {known})",
            )
        field = fields[key]
        values[field.name] = _convert(text, raw, start + m.start(2), field, hints[field.name])
        pos = m.end()
    try:
        return cls.Options(**values)
    except ValueError as e:  # an Options class rejecting a combination of values
        raise _error(text, start, f"pass '{cls.name}': {e}") from None


def parse_pipeline(text: str) -> list[Pass]:
    """Instantiate the passes described by `text`, in order."""
    passes: list[Pass] = []
    pos = 0
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or not m.group(1):
            raise _error(text, pos, "expected a pass name")
        name = m.group(1)
        if name not in REGISTRY:
            close = difflib.get_close_matches(name, REGISTRY, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise _error(
                text, m.start(1), f"unknown pass '{name}'{hint}; `tessel passes` lists them"
            )
        cls = REGISTRY[name]
        body = m.group(2)
        passes.append(cls(_options(cls, text, body, m.start(2)) if body is not None else None))
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                raise _error(text, pos, "expected ',' between passes")
            pos += 1
            if pos == len(text):
                raise _error(text, pos - 1, "expected a pass name after ','")
    return passes


def format_pipeline(passes: list[Pass]) -> str:
    return ",".join(p.spec() for p in passes)
