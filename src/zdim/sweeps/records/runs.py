"""The run directory and its one owner, ``RunDir``: every path, every read and write, and its life cycle.

The layout is documented once, in docs/guide.md ("The run directory"). Nothing outside this module
joins a path inside a run directory by hand: the sweep, the scheduler, tuning, the report and the
command line ask a ``RunDir``.

Life cycle (validate, then act):

- ``RunDir.check_target(out, ...)`` raises ``RunDirError`` for every reason the folder cannot be used
  (a file, a non-empty folder without ``--resume``/``--overwrite``, ``--resume`` of a folder that does
  not exist or holds no run, a folder zdim did not make, the current directory, the data or a folder
  holding it, a place that cannot be written), touching nothing.
- ``RunDir.create(...)`` then makes the new run in a hidden sibling and renames it into place; with
  ``--overwrite`` the old run is first moved aside (``.NAME.replaced-PID``) and deleted by ``finish()``
  only once the new run is complete, so a failure leaves the old run intact.
- A folder is a zdim run directory when it holds the ``.zdim-run`` marker written at creation (or, for
  runs made before the marker, a zdim ``run.json`` and nothing but zdim's own files).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ...errors import ModelFileError, RunDirError
from ...files import atomic_write, dir_mode, read_csv_floats, read_json, unwritable, write_csv, write_json
from ...models.checkpoints import MODEL_FILE, load_inputs, load_vae, read_saved, save_inputs, save_model
from ...models.vae import VAE
from ...records import TrialRecord, sort_records, trial_name
from .layout import (
    FOLDS_CSV,
    FOLDS_DIR,
    FOLDS_JSON,
    HELDOUT_FILE,
    HISTORY_CSV,
    INPUTS_FILE,
    MARKER,
    METRICS_JSON,
    NESTED_DIR,
    RECOMMENDATION_JSON,
    REPORT_HTML,
    RESULTS_CSV,
    RUN_JSON,
    SETTLE_DIR,
    SETTLE_JSON,
    STUDY_FILE,
    TRIALS_DIR,
    TUNE_DIR,
    TUNING_JSON,
    is_run_dir,
)


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _nearest_existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if p.exists():
            return p
    return Path("/")


class RunDir:
    """One run directory: its paths, its records and its life cycle (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._aside: Path | None = None
        self._seen: dict[str, tuple[tuple[int, ...], TrialRecord | None, bool | None]] = {}

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ------------------------------------------------------------------------------------ paths

    @property
    def run_json(self) -> Path:
        return self.path / RUN_JSON

    @property
    def study_file(self) -> Path:
        """Per-size mode's Optuna journal, where a study is its engine and no ``--storage`` URL is given (runs
        made by earlier versions have one in every mode; the run directory is the record either way)."""
        return self.path / STUDY_FILE

    @property
    def tune_study_file(self) -> Path:
        return self.path / TUNE_DIR / STUDY_FILE

    @property
    def final_folder(self) -> Path:
        """The tuned final model (``zdim tune``)."""
        return self.path / TUNE_DIR / "final"

    @property
    def report_html(self) -> Path:
        return self.path / REPORT_HTML

    @property
    def mlruns(self) -> Path:
        return self.path / "mlruns"

    def summary_files(self) -> list[Path]:
        """The run's summary files that exist: run.json, results.csv, recommendation.json."""
        return [p for p in (self.run_json, self.path / RESULTS_CSV, self.path / RECOMMENDATION_JSON) if p.is_file()]

    def trial_folder(self, dim: int, seed: int) -> Path:
        return self.path / TRIALS_DIR / trial_name(dim, seed)

    def nested_folder(self, seed: int) -> Path:
        return self.path / NESTED_DIR / f"seed-{seed}"

    # ------------------------------------------------------------------------------------ life cycle

    @staticmethod
    def check_target(
        out: str | os.PathLike[str], *, overwrite: bool = False, resume: bool = False, protect: Iterable[Path] = ()
    ) -> None:
        """Raise ``RunDirError`` when ``out`` cannot hold a new (or, with ``resume``, the resumed) run.

        ``protect``: paths (the data source) that must be neither ``out`` nor inside it. Touches nothing
        but a probe folder created and removed at once, to find out whether the place is writable.
        """
        out = Path(out)
        target = out.resolve()
        if out.exists() and not out.is_dir():
            raise RunDirError(f"run directory {out} is a file: choose another --out")
        for p in protect:
            if p.exists() and _inside(p.resolve(), target):
                what = "is the data" if p.resolve() == target else "holds the data"
                raise RunDirError(f"--out {out} {what} ({p}): choose another --out for the run directory")
        exists = out.is_dir() and any(out.iterdir())
        if resume and not exists:
            raise RunDirError(
                f"--resume: {out} {'is empty' if out.is_dir() else 'does not exist'}: there is no run to resume; "
                "drop --resume to start one, or fix --out"
            )
        if exists and resume:
            if not (out / RUN_JSON).is_file():
                raise RunDirError(f"{out} has no {RUN_JSON}: it is not a zdim run to resume; choose another --out")
        elif exists and not overwrite:
            raise RunDirError(
                f"run directory {out} already exists: pass --resume to finish it, "
                "--overwrite to replace it, or choose another --out"
            )
        elif exists:
            if _inside(Path.cwd().resolve(), target):
                raise RunDirError(
                    f"--out {out} is the current directory or holds it: zdim never replaces it; choose another --out"
                )
            if not is_run_dir(out):
                raise RunDirError(
                    f"{out} is not a zdim run directory (no {MARKER} marker): --overwrite replaces only "
                    "folders zdim made; choose another --out, or empty that folder yourself"
                )
        base = out if out.is_dir() else _nearest_existing(out.parent)
        if not base.is_dir():
            raise RunDirError(f"cannot create run directory {out}: {base} is not a folder; choose another --out")
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".zdim-probe-", dir=base))
        except OSError as e:
            raise RunDirError(
                f"cannot write run directory {out} ({e.strerror or e}): choose a writable --out"
            ) from None

    @classmethod
    def create(
        cls,
        out: str | os.PathLike[str],
        info: dict[str, Any],
        *,
        overwrite: bool = False,
        resume: bool = False,
        protect: Iterable[Path] = (),
    ) -> RunDir:
        """Validate ``out`` (``check_target``), then make the run directory holding ``info`` as
        ``run.json``; with ``resume``, an existing run directory gets ``info`` as its new ``run.json``
        (the caller checked, with ``zdim.sweeps.records.resume.check_resume``, that the run may go on). With
        ``overwrite`` the old run is moved aside and deleted by ``finish()``."""
        cls.check_target(out, overwrite=overwrite, resume=resume, protect=protect)
        run = cls(out)
        exists = run.path.is_dir() and any(run.path.iterdir())
        if exists and resume:
            run.write_info(info)
            if not (run.path / MARKER).is_file():
                atomic_write(run.path / MARKER, "zdim run directory\n")
            return run
        parent = run.path.absolute().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            stage = Path(tempfile.mkdtemp(prefix=f".{run.path.name}.zdim-new-", dir=parent))
        except OSError as e:
            raise RunDirError(
                f"cannot write run directory {out} ({e.strerror or e}): choose a writable --out"
            ) from None
        try:
            os.chmod(stage, dir_mode())
            atomic_write(stage / MARKER, "zdim run directory: --overwrite may replace this folder\n")
            write_json(stage / RUN_JSON, info)
            if exists:
                run._aside = parent / f".{run.path.name}.replaced-{os.getpid()}"
                os.rename(run.path, run._aside)
            elif run.path.is_dir():
                run.path.rmdir()  # an empty folder: the new run takes its place
            os.rename(stage, run.path)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            if run._aside is not None and run._aside.exists() and not run.path.exists():
                os.rename(run._aside, run.path)  # put the old run back
                run._aside = None
            raise
        return run

    def finish(self) -> None:
        """Delete the run this one replaced (``--overwrite``), now that the new run is complete."""
        if self._aside is not None:
            shutil.rmtree(self._aside, ignore_errors=True)
            self._aside = None

    def check_writable(self, why: str) -> None:
        """``RunDirError`` (one line) when files cannot be created in the run directory; ``why`` says
        what would be written (``zdim report``, ``zdim tune``). Touches nothing but a probe file."""
        why_not = unwritable(self.path)
        if why_not is not None:
            raise RunDirError(
                f"cannot write to run directory {self.path} ({why_not}), where {why}: make it writable, or "
                "copy it somewhere writable"
            )

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        """An existing run directory; ``RunDirError`` (one line) when ``path`` is not one."""
        run = cls(path)
        if not run.run_json.is_file():
            raise RunDirError(f"{path} is not a zdim run directory (no {RUN_JSON}): pass the --out folder of a sweep")
        return run

    # ------------------------------------------------------------------------------------ run files

    def read_info(self) -> dict[str, Any]:
        try:
            info = read_json(self.run_json)
        except (OSError, ValueError) as e:
            raise RunDirError(f"{self.run_json} is not readable JSON ({e}): rerun the sweep") from e
        if not isinstance(info, dict):
            raise RunDirError(f"{self.run_json} is not a zdim run description: rerun the sweep")
        return info

    def write_info(self, info: dict[str, Any]) -> None:
        write_json(self.run_json, info)

    def add_dims(self, dims: Iterable[int], seeded: Iterable[int] | None = None) -> None:
        """Record in ``run.json`` that the sweep also trained ``dims`` (a grown or refined grid), and ``seeded``
        with every seed (``SweepConfig.seeded``: None when every size had them)."""
        info = self.read_info()
        info["sweep"]["dims"] = sorted(set(info["sweep"]["dims"]) | set(dims))
        if seeded is not None:
            info["sweep"]["seeded"] = sorted(set(info["sweep"].get("seeded") or ()) | set(seeded))
        self.write_info(info)

    def _read_optional(self, name: str) -> Any:
        try:
            return read_json(self.path / name)
        except (OSError, ValueError):
            return None

    def read_recommendation(self) -> dict[str, Any] | None:
        d = self._read_optional(RECOMMENDATION_JSON)
        return d if isinstance(d, dict) else None

    def write_recommendation(self, rec: dict[str, Any]) -> None:
        write_json(self.path / RECOMMENDATION_JSON, rec)

    def write_results(self, records: list[TrialRecord]) -> None:
        write_csv(self.path / RESULTS_CSV, [r.flat() for r in sort_records(records)])

    def save_inputs(self, x: torch.Tensor, y: np.ndarray | None, meta: dict[str, Any]) -> None:
        save_inputs(self.path / INPUTS_FILE, x, y, meta)

    def load_inputs(self) -> tuple[torch.Tensor, np.ndarray | None, dict[str, Any]] | None:
        return load_inputs(self.path / INPUTS_FILE)

    def fold_path(self, j: int) -> Path:
        """Where fold ``j`` (1, 2, ...) of a run with k folds lives: a run directory of its own."""
        return self.path / FOLDS_DIR / f"fold-{j}"

    def write_folds(self, folds: dict[str, Any]) -> None:
        """k folds' record: how many, each fold's own answer, its test rows and its seconds."""
        write_json(self.path / FOLDS_JSON, folds)

    def read_folds(self) -> dict[str, Any] | None:
        d = self._read_optional(FOLDS_JSON)
        return d if isinstance(d, dict) else None

    def fold_runs(self) -> list[RunDir]:
        """The run directory of every fold of a run with k folds, in fold order: this one (the first fold,
        whose trials are the run's models), then ``folds/fold-J`` (which may not exist yet); [] for a run
        without folds."""
        sweep = self.read_info().get("sweep", {}) if self.run_json.is_file() else {}
        k = sweep.get("folds", 1) if isinstance(sweep, dict) else 1
        if not isinstance(k, int) or k <= 1:
            return []
        return [self, *(RunDir(self.fold_path(j)) for j in range(1, k))]

    def fold_folder(self, j: int) -> str:
        """Where fold ``j`` (0 for the first) lives, relative to this run directory: ``.`` or ``folds/fold-J``."""
        return "." if j == 0 else str(self.fold_path(j).relative_to(self.path))

    def write_fold_results(self, per_fold: list[list[TrialRecord]]) -> None:
        """``folds.csv``: every fold's own rows (its test split alone), with the fold's number (1 for the
        first) and folder."""
        rows = [
            {"fold": j + 1, "folder": self.fold_folder(j), **r.flat()}
            for j, records in enumerate(per_fold)
            for r in sort_records(records)
        ]
        write_csv(self.path / FOLDS_CSV, rows)

    def write_settle(self, settle: dict[str, Any]) -> None:
        """Settle mode's record: the answer after every epoch (``trace``), the window, the subset size."""
        write_json(self.path / SETTLE_JSON, settle)

    def read_settle(self) -> dict[str, Any] | None:
        d = self._read_optional(SETTLE_JSON)
        return d if isinstance(d, dict) else None

    def save_settle_member(
        self, round_: int, name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
    ) -> None:
        """One member's part of settle mode's checkpoint after round ``round_`` (``settle/round-N/``): its
        tensors, then its JSON. A worker process writes its own members'; ``commit_settle_checkpoint``
        then makes the round the one in force."""
        folder = self.path / SETTLE_DIR / f"round-{int(round_)}"
        atomic_write(folder / f"{name}.safetensors", st_save({k: v.contiguous() for k, v in tensors.items()}))
        write_json(folder / f"{name}.json", meta)

    def commit_settle_checkpoint(self, state: dict[str, Any]) -> None:
        """Make round ``state["round"]`` the checkpoint in force: ``current.json`` (written last, after every
        member's files: a crash mid-way leaves the previous checkpoint in force), then older rounds removed."""
        base = self.path / SETTLE_DIR
        folder = base / f"round-{int(state['round'])}"
        write_json(base / "current.json", state)
        for old in base.glob("round-*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)

    def save_settle_checkpoint(
        self, state: dict[str, Any], members: dict[str, tuple[dict[str, torch.Tensor], dict[str, Any]]]
    ) -> None:
        """Settle mode's whole checkpoint after round ``state["round"]``: every member, then the commit."""
        for name, (tensors, meta) in members.items():
            self.save_settle_member(int(state["round"]), name, tensors, meta)
        self.commit_settle_checkpoint(state)

    def read_settle_state(self) -> dict[str, Any] | None:
        """``current.json`` of the checkpoint in force (its round, the trace), or None."""
        state = self._read_optional(f"{SETTLE_DIR}/current.json")
        return state if isinstance(state, dict) and "round" in state else None

    def read_settle_member(self, round_: int, name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """One member of the checkpoint of round ``round_``: ``(tensors, meta)``, or None (absent, unreadable)."""
        folder = self.path / SETTLE_DIR / f"round-{int(round_)}"
        try:
            tensors = st_load((folder / f"{name}.safetensors").read_bytes())
            meta = read_json(folder / f"{name}.json")
        except (OSError, ValueError, RuntimeError, SafetensorError):
            return None
        return (tensors, meta) if isinstance(meta, dict) else None

    def settle_members(self, round_: int) -> set[str]:
        """The names of the members the checkpoint of round ``round_`` holds."""
        folder = self.path / SETTLE_DIR / f"round-{int(round_)}"
        return {f.stem for f in folder.glob("*.json")} if folder.is_dir() else set()

    def read_settle_checkpoint(
        self,
    ) -> tuple[dict[str, Any], dict[str, tuple[dict[str, torch.Tensor], dict[str, Any]]]] | None:
        """The last complete settle checkpoint ``(state, members)``, or None."""
        state = self.read_settle_state()
        if state is None:
            return None
        members = {}
        for name in self.settle_members(int(state["round"])):
            found = self.read_settle_member(int(state["round"]), name)
            if found is None:
                return None
            members[name] = found
        return state, members

    def clear_settle_checkpoint(self) -> None:
        shutil.rmtree(self.path / SETTLE_DIR, ignore_errors=True)

    def read_tuning(self) -> dict[str, Any] | None:
        d = self._read_optional(TUNING_JSON)
        return d if isinstance(d, dict) else None

    def write_tuning(self, tuning: dict[str, Any]) -> None:
        write_json(self.path / TUNING_JSON, tuning)

    def save_final(
        self, model: VAE, history: list[dict[str, Any]], record: dict[str, Any], extra: dict[str, Any]
    ) -> None:
        """The tuned final model (``tune/final``): weights, history, then its test record."""
        save_model(model, self.final_folder, extra=extra)
        write_csv(self.final_folder / HISTORY_CSV, history)
        write_json(self.final_folder / METRICS_JSON, record)

    def read_final(self) -> dict[str, Any] | None:
        """The tuned final model's test record, or None."""
        try:
            d = read_json(self.final_folder / METRICS_JSON)
        except (OSError, ValueError):
            return None
        return d if isinstance(d, dict) else None

    # ------------------------------------------------------------------------------------ trials

    def save_trial(
        self,
        record: TrialRecord,
        model: VAE | None = None,
        history: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
        per_sample: torch.Tensor | None = None,
    ) -> None:
        """Persist a finished trial: weights, history and per-sample held-out NLL of a complete one, then
        ``metrics.json`` (last: its presence marks the trial finished)."""
        folder = self.trial_folder(record.dim, record.seed)
        if record.complete and model is not None:
            save_model(model, folder, extra={"trial": record.trial, **(extra or {})})
            write_csv(folder / HISTORY_CSV, history or [])
            if per_sample is not None:
                atomic_write(folder / HELDOUT_FILE, st_save({"nll": per_sample.detach().cpu().double().contiguous()}))
        write_json(folder / METRICS_JSON, record.to_dict())

    def read_trial(self, dim: int, seed: int) -> TrialRecord | None:
        """The record of a finished trial, or None if absent or corrupt (not checking its weights)."""
        return self._scan_one(self.trial_folder(dim, seed))[0]

    def trial_done(self, dim: int, seed: int) -> bool:
        """A finished trial: failed or pruned, or complete with weights that load and match their checksum.
        A truncated or corrupt file makes the trial not done, so a resumed sweep redoes it."""
        return self._scan_one(self.trial_folder(dim, seed), verify=True)[1]

    def read_per_sample(self, dim: int, seed: int) -> np.ndarray | None:
        """The (N,) held-out NLL of each test sample of a complete trial, or None (older runs, unreadable)."""
        path = self.trial_folder(dim, seed) / HELDOUT_FILE
        try:
            return np.asarray(st_load(path.read_bytes())["nll"].numpy(), dtype=np.float64)
        except (OSError, KeyError, ValueError, RuntimeError, SafetensorError):
            return None

    def load_trial_model(self, dim: int, seed: int) -> VAE:
        return load_vae(self.trial_folder(dim, seed))

    def read_history(self, dim: int, seed: int) -> list[dict[str, float]]:
        return read_csv_floats(self.trial_folder(dim, seed) / HISTORY_CSV)

    def _stamp(self, folder: Path) -> tuple[int, ...]:
        out: list[int] = []
        for name in (METRICS_JSON, MODEL_FILE, "model.json"):
            try:
                st = (folder / name).stat()
                out += [st.st_mtime_ns, st.st_size]
            except OSError:
                out += [-1, -1]
        return tuple(out)

    def _scan_one(self, folder: Path, verify: bool = False) -> tuple[TrialRecord | None, bool]:
        """(record or None, done) of one trial folder; each file is read again only when it changed."""
        stamp = self._stamp(folder)
        hit = self._seen.get(folder.name)
        if hit is not None and hit[0] == stamp and (not verify or hit[2] is not None):
            return hit[1], bool(hit[2])
        rec: TrialRecord | None
        try:
            rec = TrialRecord.from_dict(read_json(folder / METRICS_JSON))
        except (OSError, ValueError, TypeError, AttributeError):
            rec = None
        done: bool | None = None
        if verify:
            done = rec is not None
            if rec is not None and rec.complete:
                try:
                    read_saved(folder)
                except ModelFileError:
                    done = False
        self._seen[folder.name] = (stamp, rec, done)
        return rec, bool(done)

    def records(self, verify: bool = True) -> list[TrialRecord]:
        """Every finished trial of the folder, sorted by size and seed; with ``verify``, only those whose
        weights check out (see ``trial_done``). Files unchanged since the last call are not read again."""
        trials = self.path / TRIALS_DIR
        folders = sorted(trials.glob("dim-*")) if trials.is_dir() else []
        out = []
        for f in folders:
            rec, done = self._scan_one(f, verify=verify)
            if rec is not None and (done or not verify):
                out.append(rec)
        return sort_records(out)


__all__ = ["RunDir", "is_run_dir", "MARKER", "RUN_JSON", "REPORT_HTML", "INPUTS_FILE", "FOLDS_CSV"]
