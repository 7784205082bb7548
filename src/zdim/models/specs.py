"""How a user's model class is named, found and trusted: a spec (``"path/to/models.py:MyVAE"``,
``"package.module:MyVAE"`` or the class itself), the classes this process holds, imports of user code
(only with ``trust_code`` when loading) and the SHA-256 of a model file. See :mod:`zdim.models.custom`."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError, ModelFileError
from .nested import NestedVAE
from .vae import VAE

_ZDIM_PREFIX = "zdim."  # module specs inside zdim itself: zdim's own code, no trust needed
_CLASSES: dict[str, type] = {}  # spec -> class held by this process
_SPECS: dict[type, str] = {}  # class -> its spec
_SHA: dict[str, str] = {}  # file spec -> SHA-256 of the file imported


def _split(spec: str) -> tuple[str, str]:
    """``"target:Name"`` -> ``(target, Name)``; ``ConfigError`` when it is not of that form."""
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not all(p.isidentifier() or p == "<locals>" for p in name.split(".")):
        raise ConfigError(
            f"model {spec!r} is not 'path/to/file.py:ClassName' or 'package.module:ClassName': fix --model"
        )
    return target, name


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def normalize_spec(model: str | type | None) -> str | None:
    """The spec recorded for ``model`` (a class, a spec string or None); a file's path made absolute.

    Imports nothing: a class given is registered in this process, a string is checked for its form."""
    if model is None:
        return None
    if isinstance(model, type):
        return spec_of(model)
    if not isinstance(model, str):
        raise ConfigError(
            f"model must be a class or a 'path/to/file.py:ClassName' / 'module:ClassName' string, got {model!r}"
        )
    target, name = _split(model.strip())
    if _is_file(target):
        return f"{Path(target).expanduser().resolve()}:{name}"
    return f"{target}:{name}"


def spec_of(cls: type) -> str:
    """The spec of a class: the one it was imported or registered under, else ``module:qualname``."""
    spec = _SPECS.get(cls)
    if spec is None:
        spec = f"{cls.__module__}:{cls.__qualname__}"
        register_model(cls, spec)
    return spec


def register_model(cls: type, spec: str | None = None) -> str:
    """Make ``cls`` known to this process under ``spec`` (default ``module:qualname``), so that runs
    that name it are built and loaded without importing anything (e.g. a class defined in a notebook).
    Returns the spec."""
    if not isinstance(cls, type):
        raise ConfigError(f"register_model takes a class, got {cls!r}")
    spec = spec or f"{cls.__module__}:{cls.__qualname__}"
    _CLASSES[spec] = cls
    _SPECS.setdefault(cls, spec)
    return spec


def forget_models() -> None:
    """Forget every class this process holds (the next load needs ``trust_code`` again)."""
    _CLASSES.clear()
    _SPECS.clear()
    _SHA.clear()


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _attr(obj: Any, qualname: str) -> Any:
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _import_file(path: Path, name: str, spec: str) -> type:
    if not path.is_file():
        raise ConfigError(f"model file {path} not found: fix --model {spec}")
    sha = _sha256_file(path)
    modname = f"zdim_user_{sha[:16]}_{''.join(c if c.isalnum() else '_' for c in path.stem)}"
    module = sys.modules.get(modname)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(modname, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ConfigError(f"cannot import {path} as Python: fix --model {spec}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[modname] = module  # dataclasses and pickling look the module up by name
        try:
            loader_spec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001 - any error in the user's file is reported in one line
            del sys.modules[modname]
            raise ConfigError(f"cannot import {path} ({type(e).__name__}: {e}): fix the file or --model") from None
    try:
        cls = _attr(module, name)
    except AttributeError:
        raise ConfigError(f"{path} has no class {name}: fix --model {spec}") from None
    _SHA[spec] = sha
    return _check_class(cls, spec)


def _import_module(target: str, name: str, spec: str) -> type:
    if target == "__main__":
        main = sys.modules.get("__main__")
        try:
            return _check_class(_attr(main, name), spec)
        except AttributeError:
            raise ConfigError(
                f"model {spec} was defined in __main__ (a script or notebook) and cannot be imported here: "
                f"pass the class itself again (SweepConfig(model={name})) or call "
                f"zdim.models.custom.register_model({name})"
            ) from None
    try:
        module = importlib.import_module(target)
    except Exception as e:  # noqa: BLE001 - ImportError or any error raised by the module itself
        raise ConfigError(f"cannot import module {target} ({type(e).__name__}: {e}): fix --model {spec}") from None
    try:
        cls = _attr(module, name)
    except AttributeError:
        raise ConfigError(f"module {target} has no class {name}: fix --model {spec}") from None
    return _check_class(cls, spec)


def _check_class(cls: Any, spec: str) -> type:
    if not isinstance(cls, type):
        raise ConfigError(f"model {spec} is not a class ({type(cls).__name__}): name a torch.nn.Module class")
    if issubclass(cls, NestedVAE):
        raise ConfigError(f"model {spec} is a NestedVAE: name a VAE subclass or a class of the protocol")
    if not issubclass(cls, VAE):
        missing = [m for m in ("encode", "decode") if not callable(getattr(cls, m, None))]
        if not issubclass(cls, nn.Module) or missing:
            why = "not a torch.nn.Module" if not issubclass(cls, nn.Module) else f"it has no {' or '.join(missing)}"
            raise ConfigError(
                f"model {spec} is {why}: zdim needs an nn.Module with encode(x) -> (mu, logvar) and "
                "decode(z) (see docs/guide.md, 'Your own model')"
            )
    register_model(cls, spec)
    _SPECS[cls] = spec
    checked: type = cls
    return checked


def resolve_model(model: str | type) -> type:
    """The class a spec names (imported when this process does not hold it yet), or the class given.

    Used by the sweep, which was asked for this model; loading goes through ``build_from_meta``."""
    if isinstance(model, type):
        return _check_class(model, spec_of(model))
    spec = normalize_spec(model)
    assert spec is not None
    cls = _CLASSES.get(spec)
    if cls is not None:
        return cls
    target, name = _split(spec)
    return _import_file(Path(target), name, spec) if _is_file(target) else _import_module(target, name, spec)


def needs_trust(spec: str) -> bool:
    """Whether using the model class ``spec`` would import user code this process does not hold yet."""
    if spec in _CLASSES:
        return False
    target, _ = _split(spec)
    return _is_file(target) or not (target == "zdim" or target.startswith(_ZDIM_PREFIX))


def class_for_load(entry: dict[str, Any], trust_code: bool) -> type:
    spec, sha = str(entry["spec"]), entry.get("file_sha256")
    held = _CLASSES.get(spec)
    if held is not None and (sha is None or _SHA.get(spec) in (None, sha)):
        return held  # already in this process: nothing is imported
    target, name = _split(spec)
    own = not _is_file(target) and (target == "zdim" or target.startswith(_ZDIM_PREFIX))
    if not (trust_code or own):
        raise ModelFileError(
            f"this model was built by user code at {spec}: pass trust_code=True to load_model if you trust "
            "that code (it is imported and run)"
        )
    if _is_file(target):
        path = Path(target)
        if not path.is_file():
            raise ModelFileError(f"the code of this model, {path}, is missing: put it back to load the model")
        if sha is not None and _sha256_file(path) != sha:
            raise ModelFileError(
                f"{path} changed since this model was saved (its SHA-256 differs): restore that version to load it"
            )
    try:
        return resolve_model(spec)
    except ConfigError as e:
        raise ModelFileError(str(e).replace(": fix --model", ": cannot rebuild the model;")) from None


def file_sha(spec: str) -> str | None:
    """The SHA-256 of the file a file spec was imported from (None for a module spec)."""
    return _SHA.get(spec)


__all__ = [
    "normalize_spec",
    "spec_of",
    "register_model",
    "forget_models",
    "resolve_model",
    "needs_trust",
    "class_for_load",
    "file_sha",
]
