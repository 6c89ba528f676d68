"""The tests mirror the packages: every subpackage of analysis/ and backdoor_models/ has its test
folder, and every module is imported by its own path in at least one test (not only through a
package's re-exports or a whole run), so a reader finds where each module is checked."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("analysis", "backdoor_models", "hooks", "probes")


def _modules() -> set[str]:
    return {
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    }


def _imported_by(test_sources: list[str]) -> set[str]:
    """Every module a test imports by its path (`from a.b import c` names a.b and a.b.c)."""
    out: set[str] = set()
    for source in test_sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module:
                out |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
    return out


def _untested(modules: set[str], test_sources: list[str]) -> list[str]:
    return sorted(modules - _imported_by(test_sources))


def test_every_module_is_imported_by_a_test() -> None:
    tests = [p.read_text() for p in (ROOT / "tests").rglob("*.py")]
    assert _untested(_modules(), tests) == [], "add a test that imports these by their own path"


def test_the_check_finds_a_module_no_test_imports() -> None:
    modules = {"analysis.config.run", "analysis.config.profiles"}
    assert _untested(modules, ["from analysis.config import run\n"]) == ["analysis.config.profiles"]


def test_every_subpackage_has_its_test_folder() -> None:
    for pkg in ("analysis", "backdoor_models"):
        for sub in (ROOT / pkg).iterdir():
            if (sub / "__init__.py").is_file():
                assert (ROOT / "tests" / pkg / sub.name).is_dir(), f"tests/{pkg}/{sub.name}/"
