"""The import contract in pyproject.toml ([tool.importlinter]) holds, and it can fail: a copy of
the packages with a wrong-way import (hidden in a function, as the old cycle was) and a report
that imports torch breaks it, naming both."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

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
