"""Imports flow one way: down the wings (base, data, models, evaluation, training, answer, sweeps, top)
and, inside them, down the layers below. An import through the package root (``from zdim import sweep``,
``from .. import __version__``) counts as an import of the module that defines the name."""

import ast
from pathlib import Path

import pytest

import zdim

PKG = Path(__file__).resolve().parents[1] / "src" / "zdim"
# The wings, bottom to top: a module may import modules of its own wing or a lower one. The top-level
# files are the base (below every wing) or the top (above every wing); sub-packages are wings.
WINGS = ("base", "data", "models", "evaluation", "training", "answer", "sweeps", "top")
TOP = {"tuning", "estimator", "tracking", "saved", "pythae_models", "report", "printing", "api", "cli"}
# Lower number = lower layer. A module may import only modules of its own layer or below. A package's row
# is the layer of every module in it that has no row of its own: a backend is one module in
# ``sweeps/backends/`` (whose ``__init__`` is the registry) and takes the package's layer.
LAYER = {
    "_version": 0,
    "errors": 0,
    "testing": 0,
    "files": 0,
    "records": 0,
    "evidence": 0,
    "grid": 0,
    "references": 0,
    "likelihoods": 0,
    "mixed": 0,
    "formats": 0,
    "option_spec": 0,
    "option_table": 0,
    "options": 0,
    "messages": 0,
    "progress": 1,
    "data.raw": 1,
    "data.image_readers": 1,
    "data.readers": 1,
    "data.preprocessing": 1,
    "data.prepare": 1,
    "data.dataset": 1,
    "data.spill": 1,
    "data.folds": 1,
    "data.columns": 1,
    "models.vae": 2,
    "models.nested": 2,
    "models.specs": 2,
    "models.custom": 2,
    "models.pythae": 2,
    "models.checkpoints": 3,
    "evaluation.metrics": 3,
    "evaluation.intrinsic": 3,
    "evaluation.generation": 3,
    "evaluation.trial": 3,
    "training.config": 3,
    "training.trainer": 3,
    "training.stacked": 3,
    "training.epoch": 3,
    "training.stopping": 3,
    "training.levers": 3,
    "training.stacknet": 3,
    "training.adam": 3,
    "training.trial": 3,
    "saved": 3,
    "answer.signals": 4,
    "answer.envelope": 4,
    "answer.wording": 4,
    "answer.rules": 4,
    "answer.checks": 4,
    "answer.recommendation": 4,
    "answer.pairing": 4,
    "answer.capacity": 4,
    "answer.decide": 4,
    "answer.uncertainty": 4,
    "sweeps.records.layout": 4,
    "sweeps.records.runs": 4,
    "sweeps.records.studies": 4,
    "sweeps.planning.config": 5,
    "sweeps.planning.plan": 5,
    "sweeps.records.resume": 5,
    "sweeps.records.result": 5,
    "sweeps.records.ledger": 6,
    "sweeps.executors.per_size": 7,
    "sweeps.executors.engines": 7,
    "sweeps.backends": 7,
    "sweeps.executors.member": 7,
    "sweeps.executors.settle": 7,
    "sweeps.executors.folded": 7,
    "sweeps.executors.nested": 7,
    "sweeps.executors.growth": 8,
    "sweeps.execute": 9,
    "tuning": 9,
    "report": 10,
    "estimator": 10,
    "tracking": 10,
    "pythae_models": 10,
    "printing": 11,
    "api": 11,
    "cli": 12,
}
ROOT_NAMES = {**zdim.LAZY, "__version__": "_version"}


def module_of(path: Path) -> str:
    """``zdim/sweeps/executors/settle.py`` -> ``sweeps.executors.settle``; the report package counts as one module."""
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    if parts[0] == "report":
        return "report"
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def wing(module: str) -> str:
    head = module.split(".")[0]
    if "." in module:
        return head
    return "top" if head in TOP else "base"


def _known(dotted: str) -> str | None:
    """The layered module a dotted name (under zdim) is, or lies in."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in LAYER or (name == "report"):
            return name
    return None


def zdim_imports(path: Path) -> set[str]:
    """The zdim modules (dotted under zdim, as in LAYER) that ``path`` imports."""
    rel = list(path.relative_to(PKG).parts)
    package = rel[:-1]  # the package the file lives in, below zdim
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if not (node.module or "").startswith("zdim"):
                    continue
                base = (node.module or "").removeprefix("zdim").lstrip(".")
            else:
                up = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                base = ".".join([*up, *([node.module] if node.module else [])])
            for a in node.names:
                if not base and a.name in ROOT_NAMES:  # from zdim import sweep: the module defining it
                    names.add(ROOT_NAMES[a.name])
                    continue
                full = f"{base}.{a.name}" if base else a.name
                found = _known(full) or _known(base) if base else _known(full)
                if found:
                    names.add(found)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("zdim."):
                    found = _known(a.name.removeprefix("zdim."))
                    if found:
                        names.add(found)
    return names


def test_every_module_has_a_layer_and_a_wing():
    mods = {module_of(p) for p in PKG.rglob("*.py") if p.name not in {"__init__.py", "__main__.py"}}
    mods |= {"report"}
    unlayered = sorted(m for m in mods if _known(m) is None)
    assert not unlayered, f"give these modules a layer (or their package one): {unlayered}"
    assert all(wing(m) in WINGS for m in LAYER)
    wings = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").is_file()} - {"report"}
    assert wings == set(WINGS) - {"base", "top"}, wings


def test_the_package_root_maps_each_public_name_to_its_module():
    for name, module in zdim.LAZY.items():
        path = PKG / module.replace(".", "/")
        assert path.with_suffix(".py").is_file() or path.is_dir(), name
        assert getattr(zdim, name) is not None


def test_no_submodule_hides_a_public_name():
    """``import zdim.X`` sets the package attribute X to the submodule: no public name may be a module's
    or a wing's name, or ``zdim.recommend``/``zdim.tune`` turn into modules once anything imports them."""
    import types
    from importlib import import_module

    for name in zdim.LAZY:
        assert not (PKG / f"{name}.py").is_file(), f"zdim.{name} is both a public name and a module"
        assert not (PKG / name).is_dir(), f"zdim.{name} is both a public name and a package"
    for module in ("cli", "sweeps.execute", "tuning", "answer.rules"):  # between them, most of the package
        import_module(f"zdim.{module}")

    assert not any(isinstance(getattr(zdim, n), types.ModuleType) for n in zdim.LAZY)


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path):
    me = _known(module_of(path)) or module_of(path)  # a module without a row of its own: its package's
    if me not in LAYER:
        pytest.skip(f"{me} is not layered (entry point, package root or a wing's empty package)")
    for other in zdim_imports(path):
        if other in LAYER and other != me:
            assert LAYER[other] <= LAYER[me], f"{me} imports {other}, which is above it"
            assert WINGS.index(wing(other)) <= WINGS.index(wing(me)), f"{me} imports {other}, a higher wing"


def test_a_root_import_of_a_higher_module_is_caught():
    """The check sees through the package root: `from .. import sweep` in a low module is an upward import."""
    fake = PKG / "data" / "_layer_probe.py"
    try:
        fake.write_text("from .. import sweep\nfrom ..sweeps.executors import settle\n")
        assert {"api", "sweeps.executors.settle"} <= zdim_imports(fake)
    finally:
        fake.unlink()


def test_wing_packages_import_nothing():
    """A wing's ``__init__`` imports nothing, so ``zdim.data.formats`` (no torch) stays light."""
    for w in set(WINGS) - {"base", "top"}:
        tree = ast.parse((PKG / w / "__init__.py").read_text())
        assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))], w


def test_help_and_datasets_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, contextlib, io, zdim.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert zdim.cli.main(['datasets']) == 0\n"
        "assert 'digits' in out.getvalue() and 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'optuna' not in sys.modules, 'optuna imported'\n"
        # the parser read every row's choices, the registries' names among them (option_spec.Names)
        "assert 'zdim.answer.signals' in sys.modules and 'zdim.sweeps.backends' in sys.modules\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_a_backend_module_takes_its_packages_layer():
    """A backend is one module in ``sweeps/backends/`` and one registry row (docs/ARCHITECTURE.md, "A
    backend"): its module needs no row here, the package's is its layer, and its imports are checked by it."""
    mods = [module_of(p) for p in (PKG / "sweeps" / "backends").glob("*.py") if p.name != "__init__.py"]
    assert len(mods) >= 2 and all(m not in LAYER and _known(m) == "sweeps.backends" for m in mods)
    assert _known("sweeps.backends.serial") == "sweeps.backends"
    assert _known("sweeps.elsewhere") is None  # a module outside a package with a row still needs its own
