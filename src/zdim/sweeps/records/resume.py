"""``run.json``: what a run records of what was asked, and whether a resumed run asks the same.

``make_run_info`` writes what was asked (data summary and fingerprint, the configuration, the mode, the
command, how to reload the data); ``check_resume`` compares a new request with the ``run.json`` of the
run directory it would go on in, and refuses (``RunDirError``, one line naming what differs and both
values) other data, another training recipe, another architecture, another model, other evaluation
settings (``--k``, ``--eval-samples``), another grid of a nested run, and sizes or seeds the run never
had: a resume finishes the run it names. Sizes the run added itself (growth and refinement, recorded in
``run.json``) are its own, so the same command resumes; ``--extend-grid`` allows adding sizes and
seeds. The recorded command stays the one that made the run; each resume is appended to ``resumes``.
``zdim.sweeps.records.runs.RunDir`` owns the files; this module owns the policy.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import fields, replace
from typing import Any

import torch

from ..._version import __version__
from ...data.dataset import Data
from ...data.folds import DEFAULT_FOLDS, SMALL_TEST
from ...errors import RunDirError
from ...options import FLAG, OFF, OPTIONS, SWITCH, flag_for
from ...training.config import TrainConfig
from ..planning.config import DEFAULT_ARCH, hidden_for
from ..planning.plan import DEFAULT_STUDY, Mode, Running, SweepPlan, default_epochs, default_seeds, default_stopping
from .runs import RunDir


def make_run_info(data: Data, plan: SweepPlan, command: str | None, loader: dict[str, Any] | None) -> dict[str, Any]:
    """The content of ``run.json``: what was asked, and how to reload the data (for ``zdim tune``)."""
    info: dict[str, Any] = {
        "zdim_version": __version__,
        "torch_version": torch.__version__,
        "command": command,
        "data": data.summary(),
        "sweep": plan.config.to_dict()
        | {"mode": plan.mode.value, ASKED: list(plan.config.dims)}
        | ({"folds": plan.folds} if (plan.folds or 1) > 1 else {})
        | {RUNNING: running(plan)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if plan.intrinsic is not None:
        info["intrinsic_dim"] = plan.intrinsic.to_dict()
    if plan.extend_grid:  # read by check_resume, not kept (resumed_info drops it)
        info[EXTEND_GRID] = True
    if loader:
        info["loader"] = dict(loader)
    return info


def running(plan: SweepPlan) -> dict[str, Any]:
    """How the grid was run beyond what it trained (``plan.Running``: the rule, growth, limits, scale-out,
    the study), as ``run.json`` records it for the reproduce line; not compared on ``--resume``."""
    out = {f.name: getattr(plan, f.name) for f in fields(Running) if f.name != "extend_grid"}
    return out | {"study_name": plan.study_name}


def reproduce(info: dict[str, Any]) -> str | None:
    """The command that reproduces the run ``run.json`` describes (None for a run made before zdim recorded
    how it ran): ``zdim sweep SOURCE`` and the flag of every option of the table whose recorded value is not
    its default (the sizes asked for, the recipe, the data options, the rule, the limits, the scale-out),
    so none is left out whichever door made the run and however it was resumed; settings no flag sets
    (a ``SweepConfig`` field, ``val_fraction=``) follow as Python keywords."""
    sweep = info.get("sweep")
    if not isinstance(sweep, dict) or not isinstance(sweep.get(RUNNING), dict):
        return None
    mode = recorded_mode(sweep) or Mode.SETTLE
    train, loader = dict(sweep.get("train") or {}), dict(info.get("loader") or {})
    data = info["data"] if isinstance(info.get("data"), dict) else {}
    ran = sweep[RUNNING]
    folds = int(ran.get("folds") or 1)
    small = int(data.get("n_test") or SMALL_TEST) < SMALL_TEST and mode is not Mode.NESTED
    small = small and ran.get("storage") is None and ran.get("time_budget") is None  # folds by themselves
    resolved = {  # what a plan resolves by itself from the mode and the data, when not told
        # the default seeds go where the answer needs them (``seeded``), one with folds; a run that trained
        # them for every size said --seeds
        "seeds": default_seeds(mode, folds) if sweep.get("seeded") is not None or folds > 1 else None,
        "epochs": default_epochs(mode),
        "epoch_steps": TrainConfig().min_epoch_steps,  # the plan records the number (workers train as it)
        "hidden": list(hidden_for(int(data.get("n_train") or 0), bool(data.get("is_image")))),
        "arch": DEFAULT_ARCH,
        "mode": Mode.SETTLE.value,
        "stopping": default_stopping(mode),
        "refine": mode is not Mode.NESTED,
        "extend": mode is not Mode.NESTED,
        "stack": mode is Mode.SETTLE,
        "folds": DEFAULT_FOLDS if small else 1,
        "study_name": DEFAULT_STUDY,
    }
    values = {"options": {**sweep, **ran, "tolerance": sweep.get("rel_tol"), "epochs": train.get("epochs")}}
    values["options"]["dims"] = sweep.get(ASKED) or sweep.get("dims")
    values |= {"train": train, "loader": loader}
    flags, python = [], []
    for row in OPTIONS:
        where, name = row.targets[0]
        if where not in values or row.keyword in ("nested", "extend_grid") or name not in values[where]:
            continue
        value = values[where][name]
        default = resolved.get(row.keyword, row.default)
        if value is None or value == default or (isinstance(value, list) and list(value) == default):
            continue
        if row.flag is None:
            python.append(f"{row.keyword}={value!r}")
        elif row.kind == SWITCH:
            flags.append(row.flag_text if value else "--no-" + row.flag_text[2:])
        elif row.kind in (FLAG, OFF):
            flags.append(row.flag_text)
        else:
            text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            flags += [row.flag_text, shlex.quote(text)]
    python += [f"TrainConfig({k}={v!r})" for k, v in train.items() if flag_for(k) is None and _unlike_default(k, v)]
    source = str(info.get("data", {}).get("source", "SOURCE"))
    source = "SOURCE" if source.startswith("<") else shlex.quote(source)  # data given in memory
    line = " ".join(["zdim", "sweep", source, *flags])
    return line + (f"  # and from Python: {', '.join(python)}" if python else "")


def _unlike_default(key: str, value: Any) -> bool:
    field = TrainConfig.__dataclass_fields__.get(key)
    return field is not None and value != field.default


def recorded_mode(sweep: dict[str, Any]) -> Mode | None:
    """The mode ``run.json``'s ``sweep`` says the run was made in (older runs: ``nested`` or None)."""
    if sweep.get("mode") in {m.value for m in Mode}:
        return Mode(sweep["mode"])
    return Mode.NESTED if sweep.get("nested") else None


# What a run made before a setting existed trained with, for the settings it did not record (issue 36:
# one pass per epoch, no learning-rate plateau, a learned noise scale); other missing keys read today's default
LEGACY: dict[str, Any] = {"epoch_steps": 1, "lr_patience": 0, "noise": "learned"}


def _recipe(train: Any) -> dict[str, Any]:
    """The training recipe with what an older run trained with for keys it did not record (``LEGACY``, else
    this version's defaults); the device does not change what is trained (a run may resume on another)."""
    if not isinstance(train, dict):
        return {}
    known = TrainConfig.__dataclass_fields__
    full = {k: f.default for k, f in known.items()} | LEGACY | {k: v for k, v in train.items() if k in known}
    return {k: v for k, v in full.items() if k != "device"}


EXTEND_GRID = "extend_grid"
ASKED = "asked_dims"  # the sizes the run was asked for (``dims`` also lists those it added itself)
RUNNING = "running"  # how the grid was run (the rule, growth, limits, scale-out): for the reproduce line


def _flag(key: str) -> str:
    """The flag of a setting (``warmup_epochs``: ``--warmup``), from the option table; a training setting
    no flag sets is named as ``TrainConfig``'s field."""
    return flag_for(key) or f"TrainConfig({key}=...)"


def _dims_text(dims: list[int]) -> str:
    return ",".join(map(str, dims))


def _check_grid(out: Any, old_sweep: dict[str, Any], new_sweep: dict[str, Any], extend: bool) -> None:
    """Refuse sizes or seeds the run never had (unless ``extend``), and other evaluation settings."""
    for key in ("k", "eval_samples"):
        before, now = old_sweep.get(key), new_sweep.get(key)
        if before != now and (key != "k" or before is not None):  # a run.json without k: not compared
            raise RunDirError(
                f"{out} was evaluated with {_flag(key)} {_unset(before)}, not {_unset(now)}: resume with the "
                f"same {_flag(key)}, or use --overwrite"
            )
    old_dims = sorted(int(d) for d in old_sweep.get("dims", []))
    asked = sorted(int(d) for d in old_sweep.get(ASKED, []))  # [] for runs made before it was recorded
    left = sorted(set(asked) - set(new_sweep["dims"]))
    if left:  # the answer, its notes and results.csv would be rewritten from a part of the run
        raise RunDirError(
            f"{out} is a run over sizes {_dims_text(asked)}, and --dims {_dims_text(new_sweep['dims'])} leaves "
            f"out {_dims_text(left)}: a resume finishes the whole run, so resume with --dims {_dims_text(asked)} "
            "(the sizes the run added itself come along), or use --overwrite to start a run over fewer sizes"
        )
    added = sorted(set(new_sweep["dims"]) - set(old_dims))
    if added and not extend:
        raise RunDirError(
            f"{out} is a run over sizes {_dims_text(old_dims)}, not {_dims_text(added)}: resume with "
            f"--dims {_dims_text(old_dims)} (or a part of it), pass --extend-grid to add "
            f"{'that size' if len(added) == 1 else 'those sizes'}, or use --overwrite"
        )
    old_seeds, new_seeds = old_sweep.get("seeds"), new_sweep.get("seeds")
    if old_seeds is not None and old_seeds != new_seeds and not (extend and new_seeds > old_seeds):
        more = "" if new_seeds < old_seeds else " (or --extend-grid to add seeds)"
        raise RunDirError(
            f"{out} was made with --seeds {old_seeds}, not {new_seeds}: resume with --seeds {old_seeds}{more}, "
            "or use --overwrite"
        )


def own_architecture(run: RunDir, plan: SweepPlan) -> SweepPlan:
    """The plan of a resumed run with the run's own architecture where the request left it to zdim: its
    widths when none were asked for (``plan.auto_hidden``: zdim's defaults may have changed since), and
    its linear path (a run made before it had none), the training settings it had before they existed
    (``LEGACY``), and every seed for every size where it had them (no ``seeded``). Unchanged when the run
    has no readable ``run.json`` (``check_resume`` says so)."""
    try:
        sweep = run.read_info().get("sweep", {})
    except RunDirError:
        return plan
    config = replace(plan.config, linear=bool(sweep.get("linear", False)))
    if "seeded" not in sweep:  # every size had every seed (--seeds, or a run made before ``seeded``)
        config = replace(config, seeded=None)
    recorded = sweep.get("train") if isinstance(sweep.get("train"), dict) else {}
    # a run made before them trains as it did
    old: dict[str, Any] = {k: v for k, v in LEGACY.items() if k not in recorded}
    if old:
        config = replace(config, train=replace(config.train, **old))
    if plan.auto_hidden and isinstance(sweep.get("hidden"), list):
        config = replace(config, hidden=tuple(int(h) for h in sweep["hidden"]))
    return replace(plan, config=config)


def check_resume(run: RunDir, info: dict[str, Any]) -> dict[str, Any]:
    """The old ``run.json`` when the run in ``run`` can be resumed with ``info``; ``RunDirError``
    otherwise, naming what differs."""
    out = run.path
    try:
        old = run.read_info()
    except RunDirError as e:
        raise RunDirError(f"{out} has no readable run.json ({e}): it is not a zdim run; choose another --out") from e
    if old.get("data", {}).get("fingerprint") != info["data"].get("fingerprint"):
        raise RunDirError(
            f"{out} was made from other data (its fingerprint differs): resume with the same data, or use --overwrite"
        )
    old_sweep, new_sweep = old.get("sweep", {}), info["sweep"]
    old_model, new_model = old_sweep.get("model"), new_sweep.get("model")
    if old_model != new_model:
        raise RunDirError(
            f"{out} was made with model {old_model or 'zdim VAE'}, not {new_model or 'zdim VAE'}: resume with "
            "the same --model, or use --overwrite"
        )
    before, now = _recipe(old_sweep.get("train")), _recipe(new_sweep["train"])
    changed = [k for k in now if before.get(k) != now[k]]
    for key, flag in (("hidden", "--hidden"), ("arch", "--arch")):
        if old_sweep.get(key, new_sweep.get(key)) != new_sweep.get(key):
            raise RunDirError(
                f"{out} was made with {flag} {_shown(old_sweep.get(key))}, not {_shown(new_sweep.get(key))}: resume "
                f"with the same {flag}, or use --overwrite"
            )
    if changed:
        key = changed[0]
        raise RunDirError(
            f"{out} was made with other training settings: {key} was {before.get(key)!r}, now {now[key]!r}: "
            f"resume with the same {_flag(key)}, or use --overwrite"
        )
    old_nested = recorded_mode(old_sweep) is Mode.NESTED
    new_nested = recorded_mode(new_sweep) is Mode.NESTED
    if old_nested != new_nested:
        raise RunDirError(
            f"{out} was made {'with' if old_nested else 'without'} --nested: resume "
            f"{'with' if old_nested else 'without'} it, or use --overwrite"
        )
    if new_nested and sorted(old_sweep.get("dims", [])) != sorted(new_sweep["dims"]):
        dims = sorted(old_sweep.get("dims", []))
        raise RunDirError(
            f"{out} is a nested run over sizes {dims}, trained for exactly those: resume with "
            f"--dims {','.join(map(str, dims))}, or use --overwrite"
        )
    old_folds, new_folds = old_sweep.get("folds", 1), new_sweep.get("folds", 1)
    if old_folds != new_folds:  # another cut of the rows: its trials were trained on other splits
        raise RunDirError(
            f"{out} was made with --folds {old_folds}, not {new_folds}: resume with --folds {old_folds}, or use "
            "--overwrite"
        )
    _check_grid(out, old_sweep, new_sweep, bool(info.get(EXTEND_GRID)))
    return old


def _unset(value: Any) -> str:
    return "unset (the whole test split)" if value is None else str(value)


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def resumed_info(old: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """The ``run.json`` of a resumed run: the new request over every size either run asked for (and the
    most seeds), with the command and creation time of the run it goes on, and this resume appended to
    ``resumes``."""
    dims = sorted(set(old["sweep"]["dims"]) | set(info["sweep"]["dims"]))
    added = set(info["sweep"]["dims"]) - set(old["sweep"]["dims"])  # --extend-grid's: asked for now
    asked = sorted(set(old["sweep"].get(ASKED, [])) | added) if ASKED in old["sweep"] else None
    seeds = max(int(old["sweep"].get("seeds") or 0), int(info["sweep"]["seeds"]))
    resumes = [*old.get("resumes", []), {"command": info.get("command"), "created": info.get("created")}]
    new = {k: v for k, v in info.items() if k != EXTEND_GRID}
    for key in ("command", "created"):
        if key in old:
            new[key] = old[key]
    sweep = {k: v for k, v in info["sweep"].items() if k != ASKED} | {"dims": dims, "seeds": seeds}
    return dict(new, sweep=sweep | ({ASKED: asked} if asked is not None else {}), resumes=resumes)


__all__ = ["make_run_info", "own_architecture", "check_resume", "resumed_info", "recorded_mode", "reproduce"]
