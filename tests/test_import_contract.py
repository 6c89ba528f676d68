"""The import contract in pyproject.toml ([tool.importlinter]) holds, and it can fail: a copy of
the packages with a wrong-way import (hidden in a function, as the old cycle was) and a report
that imports torch breaks it, naming both."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("analysis", "backdoor_models", "hooks", "probes")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "lint-imports"
    return subprocess.run(
        [str(script), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_the_project_keeps_its_import_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_wrong_way_import_breaks_the_contract(tmp_path: Path) -> None:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "analysis" / "folder" / "seeds.py").open("a") as f:
        f.write(
            "\n\ndef _late():\n    from analysis.run import experiment\n\n    return experiment\n"
        )
    with (tmp_path / "analysis" / "report" / "paper.py").open("a") as f:
        f.write("\nimport torch  # noqa: E402\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "analysis.folder is not allowed to import analysis.run" in result.stdout
    assert "analysis.report.paper -> torch" in result.stdout


def _module_cycles(package: str) -> list[tuple[str, ...]]:
    """Import cycles among the modules of `package` (function-local imports count too)."""
    import grimp

    graph = grimp.build_graph(package)
    modules = sorted(m for m in graph.modules if m.startswith(package))
    cycles = []
    for a in modules:
        for b in graph.find_modules_directly_imported_by(a):
            if b > a and graph.find_shortest_chain(importer=b, imported=a):
                cycles.append((a, b))
    return cycles


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_has_an_import_cycle(package: str) -> None:
    # the layers contracts cannot see a cycle inside one layer (a subpackage, or analysis.config)
    assert _module_cycles(package) == []


def test_a_hidden_cycle_is_found(tmp_path: Path, monkeypatch) -> None:
    shutil.copytree(
        ROOT / "backdoor_models",
        tmp_path / "backdoor_models",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    with (tmp_path / "backdoor_models" / "text" / "encoding.py").open("a") as f:
        f.write(
            "\n\ndef _late():\n    from backdoor_models.text import tokenizer\n\n    return tokenizer\n"
        )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("backdoor_models")]:
        monkeypatch.delitem(sys.modules, name)
    assert ("backdoor_models.text.encoding", "backdoor_models.text.tokenizer") in _module_cycles(
        "backdoor_models"
    )
