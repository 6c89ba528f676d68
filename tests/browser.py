"""Open a report in headless Chromium and check that it rendered: no JavaScript error, and every
plotly figure drawn. Chromium is Debian's `chromium` package (`make setup` installs it where it
can: .ci/install-chromium); without it the check is skipped, saying why, and fails in CI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
]


def chromium() -> str:
    """The Chromium executable; skips the test where there is none, except in CI."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run installs Debian's chromium package.")
        pytest.skip(
            "Chromium is not installed and `make setup` could not install it (it needs root and "
            "apt-get): apt-get install chromium"
        )
    return found


def rendered_dom(page: Path) -> str:
    """The page's DOM after its scripts ran."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                chromium(),
                *FLAGS,
                f"--user-data-dir={profile}",
                "--dump-dom",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def assert_report_renders(page: Path, min_figures: int = 1) -> int:
    """Fail on a JavaScript error or a figure plotly did not draw; returns the figure count."""
    dom = rendered_dom(page)
    assert "<body" in dom, f"{page}: Chromium returned no page"
    errors = re.search(r'data-js-errors="([^"]*)"', dom)
    assert errors is None, f"{page}: JavaScript error(s): {errors.group(1) if errors else ''}"
    figures = re.findall(r'<div[^>]*class="[^"]*plotly-graph-div[^"]*"', dom)
    drawn = [f for f in figures if "js-plotly-plot" in f]
    assert len(figures) >= min_figures, f"{page}: {len(figures)} figures, expected {min_figures}+"
    assert len(drawn) == len(figures), f"{page}: {len(figures) - len(drawn)} figure(s) not drawn"
    return len(figures)
