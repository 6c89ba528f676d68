"""House rules checked over the library's source: nothing is unpickled, and no print in library code."""

import ast
import re
from pathlib import Path

PACKAGES = ["backdoor_models", "hooks", "probes", "analysis"]
ROOT = Path(__file__).resolve().parents[1]


def _sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text()) for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]


def _imported_modules(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name.split(".")[0] for a in node.names}
    if isinstance(node, ast.ImportFrom):
        return {(node.module or "").split(".")[0]}
    return set()


def _unpickling(tree: ast.AST) -> list[int]:
    """Lines that import a pickle-family module or call a loader that unpickles. Works on the
    syntax tree, so code inside string literals (the code backdoor's vulnerable samples) is data."""
    banned = {"pickle", "cPickle", "dill", "joblib", "cloudpickle", "shelve"}
    lines = []
    for node in ast.walk(tree):
        if _imported_modules(node) & banned:
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = f"{owner.id}.{node.func.attr}" if isinstance(owner, ast.Name) else node.func.attr
            if name == "torch.load":
                safe = any(
                    k.arg == "weights_only"
                    and isinstance(k.value, ast.Constant)
                    and k.value.value is True
                    for k in node.keywords
                )
                if not safe:
                    lines.append(node.lineno)
            elif name in ("pickle.load", "pickle.loads", "numpy.load", "np.load"):
                lines.append(node.lineno)
    return lines


def test_nothing_is_unpickled() -> None:
    offending = [
        f"{path.name}:{line}" for path, text in _sources() for line in _unpickling(ast.parse(text))
    ]
    assert not offending, offending


def test_the_unpickling_check_can_fail() -> None:
    bad = "import pickle\nimport torch\nx = torch.load('m.pt')\ny = 'pickle.loads(data)'\n"
    assert _unpickling(ast.parse(bad)) == [1, 3]


def test_no_print_in_library_code() -> None:
    offending = [
        f"{path.name}:{i}"
        for path, text in _sources()
        if path.name not in ("cli.py", "cli_commands.py")
        for i, line in enumerate(text.splitlines(), 1)
        if re.match(r"\s*print\(", line)
    ]
    assert not offending, offending
