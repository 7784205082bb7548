"""Imports flow one way, down the layers below; an import through the package root (``from zdim import
sweep``, ``from .. import __version__``) counts as an import of the module that defines the name."""

import ast
from pathlib import Path

import pytest

import zdim

PKG = Path(__file__).resolve().parents[1] / "src" / "zdim"
# Lower number = lower layer. A module may import only modules of its own layer or below.
LAYER = {
    "_version": 0,
    "errors": 0,
    "testing": 0,
    "files": 0,
    "formats": 0,
    "records": 0,
    "evidence": 0,
    "messages": 0,
    "option_spec": 0,
    "options": 0,
    "grid": 0,
    "likelihoods": 0,
    "mixed": 0,
    "raw": 1,
    "image_readers": 1,
    "readers": 1,
    "columns": 1,
    "preprocessing": 1,
    "prepare": 1,
    "data": 1,
    "spill": 1,
    "folds": 1,
    "progress": 1,
    "models": 2,
    "specs": 2,
    "custom": 2,
    "pythae_models": 2,
    "train": 3,
    "metrics": 3,
    "intrinsic": 3,
    "generation": 3,
    "checkpoints": 3,
    "saved": 3,
    "stacked": 3,
    "stacknet": 3,
    "adam": 3,
    "epoch": 3,
    "stopping": 3,
    "levers": 3,
    "runs": 4,
    "signals": 4,
    "rules": 4,
    "checks": 4,
    "recommendation": 4,
    "pairing": 4,
    "capacity": 4,
    "answer": 4,
    "uncertainty": 4,
    "studies": 4,
    "config": 5,
    "plan": 5,
    "resume": 5,
    "result": 5,
    "trial": 6,
    "scheduler": 7,
    "engines": 7,
    "backends": 7,
    "ray_backend": 7,
    "settle": 7,
    "folded": 7,
    "nested": 7,
    "growth": 8,
    "search": 9,
    "tuning": 9,
    "report": 10,
    "estimator": 10,
    "tracking": 10,
    "api": 11,
    "printing": 11,
    "cli": 12,
}
ROOT_NAMES = {**zdim.LAZY, "__version__": "_version"}


def zdim_imports(path: Path) -> set[str]:
    """Top-level zdim modules that ``path`` imports (relative or absolute, through the root or not)."""
    depth = len(path.relative_to(PKG).parts) - 1  # 0 for zdim/x.py, 1 for zdim/report/x.py
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            absolute = node.level == 0 and (node.module or "").startswith("zdim")
            relative_to_root = node.level == depth + 1
            if not (absolute or relative_to_root):
                continue
            module = (node.module or "").removeprefix("zdim").lstrip(".") if absolute else (node.module or "")
            if module:
                names.add(module.split(".")[0])
            else:  # from zdim import name / from .. import name: the module that defines it
                for a in node.names:
                    names.add(ROOT_NAMES.get(a.name, a.name))
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("zdim."))
    return names


def test_every_module_has_a_layer():
    mods = {p.stem for p in PKG.glob("*.py")} - {"__init__", "__main__"} | {"report"}
    assert mods <= set(LAYER), f"give these modules a layer: {sorted(mods - set(LAYER))}"


def test_the_package_root_maps_each_public_name_to_its_module():
    for name, module in zdim.LAZY.items():
        assert (PKG / f"{module}.py").is_file() or (PKG / module).is_dir(), name
        assert getattr(zdim, name) is not None


def test_no_submodule_hides_a_public_name():
    """``import zdim.X`` sets the package attribute X to the submodule: no public name may be a module's
    name, or ``zdim.recommend``/``zdim.tune`` turn into modules once anything imports them."""
    import types

    for name in zdim.LAZY:
        assert not (PKG / f"{name}.py").is_file(), f"zdim.{name} is both a public name and a module"
    from importlib import import_module

    for module in ("cli", "search", "tuning", "rules"):  # between them, most of the package
        import_module(f"zdim.{module}")

    assert not any(isinstance(getattr(zdim, n), types.ModuleType) for n in zdim.LAZY)


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path):
    me = path.stem if path.parent == PKG else path.parent.name
    if me not in LAYER:
        pytest.skip(f"{me} is not layered (entry point or package root)")
    for other in zdim_imports(path):
        if other in LAYER and other != me:
            assert LAYER[other] <= LAYER[me], f"{me} imports {other}, which is above it"


def test_a_root_import_of_a_higher_module_is_caught(tmp_path):
    """The check sees through the package root: `from .. import sweep` in a low module is an upward import."""
    fake = PKG / "_layer_probe.py"
    try:
        fake.write_text("from . import sweep\n")
        assert "api" in zdim_imports(fake)
    finally:
        fake.unlink()


def test_help_and_datasets_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, contextlib, io, zdim.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert zdim.cli.main(['datasets']) == 0\n"
        "assert 'digits' in out.getvalue() and 'torch' not in sys.modules, 'torch imported'\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
