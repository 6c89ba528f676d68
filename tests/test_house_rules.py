"""House rules checked over the library's source: nothing is unpickled, and no print in library code."""

import re
from pathlib import Path

PACKAGES = ["backdoor_models", "hooks", "probes", "analysis"]
ROOT = Path(__file__).resolve().parents[1]


def _sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text()) for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_nothing_is_unpickled() -> None:
    offending = []
    for path, text in _sources():
        for i, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(
                r"\bimport (c?pickle|dill|joblib)\b|from (c?pickle|dill|joblib) import", code
            ):
                offending.append(f"{path.name}:{i}: {line.strip()}")
            if re.search(r"\btorch\.load\(", code) and "weights_only=True" not in code:
                offending.append(f"{path.name}:{i}: {line.strip()}")
            if re.search(r"\bpickle\.loads?\(|\.load_state_dict\(torch\.load", code):
                offending.append(f"{path.name}:{i}: {line.strip()}")
    assert not offending, offending


def test_no_print_in_library_code() -> None:
    offending = [
        f"{path.name}:{i}"
        for path, text in _sources()
        if path.name != "cli.py"
        for i, line in enumerate(text.splitlines(), 1)
        if re.match(r"\s*print\(", line)
    ]
    assert not offending, offending
