"""What a pass is: a named class with a docstring, typed options, and one registry of them all.

A pass maps a module to a new module (IR nodes are immutable, so passes never edit in place).
Per-function passes override `run_function`; passes that need the whole module override `run`.
Analyses and remarks that are not IR (fusion decisions, buffer assignment) go into the
`PassContext` shared by the pipeline, so every printed IR stays a plain, re-runnable graph file.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ir.graph import Function, Module
from passes.rewrite import rewrite_loop_bodies


@dataclass(frozen=True)
class NoOptions:
    """A pass without options."""


@dataclass
class PassContext:
    """State shared along one pipeline run: analysis results and human-readable remarks."""

    analyses: dict[str, Any] = field(default_factory=dict)
    remarks: dict[str, list[str]] = field(default_factory=dict)

    def remark(self, pass_name: str, text: str) -> None:
        self.remarks.setdefault(pass_name, []).append(text)


class Pass:
    """Base class; subclasses set `name`, write a docstring, and may declare `Options`."""

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else self.Options()

    def run(self, module: Module, ctx: PassContext) -> Module:
        functions = tuple(self.run_nested(f, ctx) for f in module.functions)
        if all(new is old for new, old in zip(functions, module.functions, strict=False)):
            return module
        return Module(functions, module.entry)

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        raise NotImplementedError(f"pass '{self.name}' implements neither run nor run_function")

    def run_nested(self, fn: Function, ctx: PassContext) -> Function:
        """`run_function` on `fn` after running it inside the bodies of fn's loops (a loop's
        body is program code like any other; a fusion's body is not revisited)."""
        return self.run_function(rewrite_loop_bodies(fn, lambda f: self.run_nested(f, ctx)), ctx)

    @classmethod
    def summary(cls) -> str:
        return (inspect.getdoc(cls) or "").split("\n", 1)[0]

    @classmethod
    def option_fields(cls) -> list[dataclasses.Field[Any]]:
        return list(dataclasses.fields(cls.Options))

    def spec(self) -> str:
        """This pass as pipeline text, with the options that differ from their defaults."""
        changed = [
            f"{f.name.replace('_', '-')}={format_option(getattr(self.options, f.name))}"
            for f in self.option_fields()
            if getattr(self.options, f.name) != f.default
        ]
        return self.name + ("{" + ",".join(changed) + "}" if changed else "")


def format_option(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


REGISTRY: dict[str, type[Pass]] = {}


def register(cls: type[Pass]) -> type[Pass]:
    if not cls.__doc__:  # inspect.getdoc would inherit Pass's own docstring
        raise TypeError(f"pass class {cls.__name__} needs a docstring")
    if cls.name in REGISTRY:
        raise TypeError(f"pass name '{cls.name}' is registered twice")
    REGISTRY[cls.name] = cls
    return cls
