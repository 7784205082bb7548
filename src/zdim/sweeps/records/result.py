"""The outcome of a sweep, ``SweepResult``: its records, its recommendation, and its JSON form."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from ...answer.recommendation import Recommendation
from ...errors import ResultFileError
from ...files import atomic_write, dumps_json
from ...records import TrialRecord

RESULT_FORMAT = "zdim-sweep-result"
RESULT_FORMAT_VERSION = 1


@dataclass
class SweepResult:
    """The outcome of a sweep: one record per trial and the recommendation."""

    trials: list[TrialRecord]
    recommendation: Recommendation | None
    data: dict[str, Any]
    config: dict[str, Any]
    run_dir: Path | None = None

    @property
    def recommended_dim(self) -> int | None:
        return self.recommendation.dim if self.recommendation else None

    @property
    def table(self) -> pd.DataFrame:
        """A pandas DataFrame, one row per trial (list-valued metrics left out), sorted by size."""
        import pandas as pd

        df: pd.DataFrame = pd.DataFrame([t.flat() for t in self.trials])
        if len(df):
            df = df.sort_values(["dim", "seed"]).reset_index(drop=True)
        return df

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The whole result (trials with their list-valued metrics, recommendation, data summary,
        config, run directory) as JSON text; written atomically to ``path`` too when given.

        NaN and infinite floats become ``null`` (strict JSON). ``SweepResult.from_json`` reads it back.
        """
        text = dumps_json(
            {
                "format": RESULT_FORMAT,
                "format_version": RESULT_FORMAT_VERSION,
                "trials": [t.to_dict() for t in self.trials],
                "recommendation": self.recommendation.to_dict() if self.recommendation else None,
                "data": self.data,
                "config": self.config,
                "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            }
        )
        if path is not None:
            atomic_write(path, text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike[str]) -> SweepResult:
        """Read a result written by ``to_json``: JSON text, or the path of a file holding it.

        Raises ``ResultFileError`` when the file is missing or the text is not a zdim sweep result.
        """
        if isinstance(text_or_path, os.PathLike) or not str(text_or_path).lstrip().startswith("{"):
            try:
                text = Path(text_or_path).read_text(encoding="utf-8")
            except OSError as e:
                raise ResultFileError(
                    f"cannot read sweep result {os.fspath(text_or_path)!r} ({e}): pass "
                    "the path of a file written by SweepResult.to_json"
                ) from e
        else:
            text = str(text_or_path)
        try:
            d = json.loads(text)
            if not isinstance(d, dict) or d.get("format") != RESULT_FORMAT:
                raise ValueError(f"its 'format' is not {RESULT_FORMAT!r}")
            rec = d["recommendation"]
            return cls(
                trials=[TrialRecord.from_dict(t) for t in d["trials"]],
                recommendation=Recommendation.from_dict(rec) if rec is not None else None,
                data=dict(d["data"]),
                config=dict(d["config"]),
                run_dir=Path(d["run_dir"]) if d.get("run_dir") is not None else None,
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ResultFileError(
                f"not a zdim sweep result ({e}): pass text or a file written by SweepResult.to_json"
            ) from e


__all__ = ["SweepResult"]
