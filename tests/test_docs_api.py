"""The API pages are generated from the package tree: no public module can be missing.

`docs/_gen_api.py` writes the pages at `mkdocs build` time (gen-files plugin). These tests load its
pure functions from the file (no docs extra needed, nothing of the packages imported) and check
them against an independent walk of the source tree.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "_gen_api.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("docs_gen_api", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # run name "docs_gen_api": writes nothing
    return module


GEN = _load_script()


def _tree_modules() -> set[str]:
    """Every public module and package of the four packages, by file name alone."""
    found: set[str] = set()
    for package in ("backdoor_models", "hooks", "probes", "analysis"):
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if any(part.startswith("_") for part in parts):
                continue
            # only modules reachable through packages (every folder above has an __init__.py)
            if all(
                (ROOT.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts))
            ):
                found.add(".".join(parts))
    return found


def _rendered(pages: dict[str, str]) -> list[str]:
    return [m.group(1) for text in pages.values() for m in re.finditer(r"^::: (\S+)$", text, re.M)]


def test_the_script_lists_every_public_module_in_the_tree():
    tree = _tree_modules()
    assert {"backdoor_models.models.lora", "analysis.sweep.runner", "hooks.patching"} <= tree
    assert set(GEN.public_modules(ROOT)) == tree


def test_every_module_is_rendered_once_on_its_packages_page():
    pages = GEN.api_pages(ROOT)
    rendered = _rendered(pages)
    assert len(rendered) == len(set(rendered))
    modules = {name for name in _tree_modules() if not (ROOT / name.replace(".", "/")).is_dir()}
    assert modules <= set(rendered)
    for path, text in pages.items():
        package = path.removeprefix("api/").removesuffix(".md").replace("/", ".")
        for name in _rendered({path: text}):
            assert name == package or name.rsplit(".", 1)[0] == package, (path, name)


def test_every_page_is_in_the_nav():
    pages = GEN.api_pages(ROOT)
    links = set(re.findall(r"\]\(([^)]+)\)", GEN.summary(ROOT)))
    assert links == {"index.md"} | {path.removeprefix("api/") for path in pages}
    assert (ROOT / "docs" / "api" / "index.md").is_file()
    # a generated page must not shadow a hand-written one
    assert not any((ROOT / "docs" / path).exists() for path in pages)
