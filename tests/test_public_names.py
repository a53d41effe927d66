"""A public name of `compiler` or `tessel` is never shadowed by a submodule.

Importing `compiler.X` sets the attribute `compiler.X` to the submodule, so a package whose
public function `X` (served lazily by the package's `__getattr__`) shares its name with a
submodule gives the function the first time and the module afterwards. `compiler.quantize` did
that while the quantizer lived in `compiler/quantize.py`.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import compiler
import tessel

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"compiler": compiler, "tessel": tessel}
# public names that are the submodule itself
SUBMODULE_EXPORTS = {"compiler": {"lax", "nn"}, "tessel": set()}


def submodules(package: str) -> set[str]:
    return {m.name for m in pkgutil.iter_modules(PACKAGES[package].__path__)}


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_submodule_is_named_like_a_public_name(package: str) -> None:
    public = set(PACKAGES[package].__all__)
    clashes = (public & submodules(package)) - SUBMODULE_EXPORTS[package]
    assert not clashes, f"{package}: submodules named like public names: {sorted(clashes)}"


def test_every_public_name_resolves() -> None:
    for name, module in PACKAGES.items():
        for public in module.__all__:
            assert getattr(module, public) is not None, f"{name}.{public}"
    assert set(tessel.__all__) <= set(compiler.__all__)


def test_importing_every_submodule_changes_no_public_name() -> None:
    """In a fresh interpreter: what each public name is, before and after importing every
    submodule of `compiler` and `tessel` (and the same object from both packages)."""
    script = textwrap.dedent(
        """
        import importlib, json, pkgutil, sys
        import compiler, tessel

        def describe(obj):
            return f"{type(obj).__name__} {getattr(obj, '__module__', '')}.{obj.__name__}"

        packages = {"compiler": compiler, "tessel": tessel}
        before = {f"{p}.{n}": getattr(m, n) for p, m in packages.items() for n in m.__all__}
        for p, m in packages.items():
            for info in pkgutil.iter_modules(m.__path__):
                if info.name != "__main__":
                    importlib.import_module(f"{p}.{info.name}")
        after = {f"{p}.{n}": getattr(m, n) for p, m in packages.items() for n in m.__all__}
        changed = {k: [describe(before[k]), describe(after[k])]
                   for k in before if after[k] is not before[k]}
        differ = [n for n in tessel.__all__ if getattr(tessel, n) is not getattr(compiler, n)]
        json.dump({"changed": changed, "differ": differ}, sys.stdout)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["changed"] == {}, "importing a submodule replaced a public name"
    assert result["differ"] == [], "tessel re-exports something else than compiler's name"


def test_quantize_is_the_function() -> None:
    from compiler import quantize
    from compiler.quantization import quantize as the_function

    assert quantize is the_function
    assert callable(quantize)
