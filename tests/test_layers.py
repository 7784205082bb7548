"""Imports flow one way: data -> models -> train -> metrics -> search/recommend -> runs -> report -> cli."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "zdim"
# Lower number = lower layer. A module may import only modules of its own layer or below.
LAYER = {
    "errors": 0,
    "testing": 0,
    "readers": 1,
    "data": 1,
    "spill": 1,
    "models": 2,
    "train": 3,
    "metrics": 3,
    "intrinsic": 3,
    "generation": 3,
    "runs": 4,
    "recommend": 4,
    "search": 5,
    "tune": 5,
    "studies": 4,
    "nested": 4,
    "report": 6,
    "estimator": 6,
    "cli": 7,
    "tracking": 6,
}


def zdim_imports(path: Path) -> set[str]:
    """Top-level zdim modules that ``path`` imports (relative or absolute imports)."""
    depth = len(path.relative_to(PKG).parts) - 1  # 0 for zdim/x.py, 1 for zdim/report/x.py
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").startswith("zdim."):
                names.add(node.module.split(".")[1])
            elif node.level == depth + 1:  # relative to the zdim package itself
                names.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("zdim."))
    return names


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path):
    me = path.stem if path.parent == PKG else path.parent.name
    if me not in LAYER:
        pytest.skip(f"{me} is not layered (entry point or package root)")
    for other in zdim_imports(path):
        if other in LAYER and other != me:
            assert LAYER[other] <= LAYER[me], f"{me} imports {other}, which is above it"
