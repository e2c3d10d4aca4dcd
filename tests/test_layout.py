"""The package's tree is its data flow (README.md and docs/layout.md, "How it is built"): a module
imports only from its own layer or the layers before it, so each layer reads without those after it;
and docs/layout.md names every file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "chargpt"

# The top-level modules and folders of chargpt, layer by layer, in the order docs/layout.md gives.
LAYERS = [
    {"errors", "checks", "spelling", "plural", "files", "file_locks", "processes", "hydra_internals",
     "overrides", "shell_words", "hydra_run", "stop_signals", "stop_request", "distributed", "memorization",
     "glyphs", "metric_names", "run_layout", "checkpoint_step", "run_state", "export_layout"},
    {"data"},
    {"model"},
    {"checkpoints", "recorded_text"},
    {"inference", "evaluation", "model_card", "export"},
    {"training"},
    {"checkpoint_eval"},
    {"runs"},
    {"serving"},
    {"cli"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _top(path: Path) -> str:
    """The top-level module or folder of chargpt that `path` belongs to."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported(tree: ast.AST) -> list[tuple[str, int]]:
    """The chargpt modules a file imports (under TYPE_CHECKING and inside functions too), with
    their lines: `from chargpt import checks` names chargpt.checks."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"line {node.lineno}: a relative import"
            if node.module == "chargpt":
                found += [(f"chargpt.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((node.module, node.lineno))
    return [(name, line) for name, line in found if name.startswith("chargpt.")]


def test_every_part_of_the_package_has_its_layer() -> None:
    parts = {_top(p) for p in PACKAGE.glob("*") if p.suffix == ".py" or (p / "__init__.py").exists()}
    parts.discard("__init__")  # the package's front door: the Python API, loaded lazily
    assert parts - LAYER.keys() == set(), "place the new module in LAYERS and docs/layout.md"
    assert LAYER.keys() - parts == set(), "a module in LAYERS is gone: take it out (and of docs/layout.md)"


def test_imports_point_down_the_data_flow() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE and path.name == "__init__.py":
            continue
        layer = LAYER.get(_top(path), len(LAYERS))  # one not placed fails the test above
        for name, line in _imported(ast.parse(path.read_text(encoding="utf-8"))):
            target = name.split(".")[1]
            if LAYER.get(target, len(LAYERS)) > layer:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {name}")
    assert upward == []


def test_the_layout_page_names_every_file_in_its_folder() -> None:
    # The page is where a newcomer finds what each file holds: a file it does not name, or one it
    # names that is gone, makes it a wrong map.
    page = (PACKAGE.parents[1] / "docs" / "layout.md").read_text(encoding="utf-8")
    tree = page[page.index("src/chargpt/"):]
    named: set[str] = set()
    folders = [""]  # the folder each indented line is in, by its indent
    for line in tree.splitlines()[1:]:
        if line.startswith("```") or not line.startswith("  "):
            break
        depth = (len(line) - len(line.lstrip(" "))) // 2 - 1
        words = re.match(r"(?:[\w.]+/?, )*[\w.]+/?", line.strip()).group(0)  # the names before the words
        folders = folders[: depth + 1]
        for word in words.split(", "):
            if word.endswith("/"):
                folders.append(folders[depth] + word)
            else:
                named.add(folders[depth] + word.strip())
    files = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*") if p.suffix in (".py", ".html")}
    files -= {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE}
    assert sorted(files - named) == [], "name each new file in docs/layout.md, with what it holds"
    assert sorted(named - files) == [], "docs/layout.md names a file that is gone"
