"""A recommended latent size with its evidence: ``Recommendation``, its JSON form, and how sure it is
in words (``confidence``, the bootstrap's shares shown only where they can see; ``size_rows``, the
table beside the answer). ``zdim.answer.rules`` makes one; ``zdim.answer.decide`` owns how.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..evidence import Note, NoteKind, rationale, warning

DEFAULT_RANGE_TOL = 0.02  # of the NLL improvement from the smallest size to the best one


@dataclass(frozen=True)
class Recommendation:
    """A recommended latent size with the rule that picked it and the evidence behind it.

    ``notes`` are the evidence (``zdim.evidence``): the rule's own sentences, its warnings (a ``WARNING``
    note makes the answer not ``settled``), and what the sweep added (settle mode, the grid, the whole
    test split, the bootstrap). ``rationale`` renders them. Files written before notes existed read back
    with their warnings as notes and their rationale as it was written (``legacy_rationale``).
    """

    dim: int
    rule: str
    best_dim: int
    threshold: float
    tolerance: float
    rel_tol: float
    per_dim: list[dict[str, Any]] = field(default_factory=list)
    largest_dim: int | None = None
    largest_active_units: float | None = None
    failed_trials: int = 0
    range_tol: float = DEFAULT_RANGE_TOL
    signals: dict[str, Any] = field(default_factory=dict)
    intrinsic_dim: int | None = None
    notes: list[Note] = field(default_factory=list)
    uncertainty: dict[str, Any] | None = None
    full_test: dict[str, Any] | None = None  # the size on the whole test split, when trials used a subset
    capacity: dict[str, Any] | None = (
        None  # the intrinsic-dimension check (zdim.sweeps.executors.growth.capacity_check)
    )
    legacy_rationale: str = ""  # the rationale of a file written before notes existed

    @property
    def warnings(self) -> list[str]:
        """What makes the answer doubtful: the text of each warning and caution note."""
        return [n.text for n in self.notes if n.is_warning]

    @property
    def settled(self) -> bool:
        """Whether the evidence carries the answer: no ``WARNING`` note."""
        return not any(n.kind is NoteKind.WARNING for n in self.notes)

    @property
    def rationale(self) -> str:
        """The evidence as one paragraph (``zdim.evidence.rationale``)."""
        return self.legacy_rationale or rationale(self.notes)

    def with_notes(self, *notes: Note) -> Recommendation:
        """This recommendation with ``notes`` added after its own."""
        return replace(self, notes=[*self.notes, *notes])

    def shares(self) -> dict[int, float]:
        """How often the bootstrap chose each size (empty when none was made)."""
        if not self.uncertainty:
            return {}
        return {int(k): float(v) for k, v in self.uncertainty["shares"].items()}

    @property
    def shown_shares(self) -> bool:
        """Whether the bootstrap's shares may be shown beside the answer: only where the resampling can see
        what unsettles it. A warning other than the bootstrap's own (``uncertain``: its shares are the
        reason) is about something no resampling of the held-out samples sees (models that learned
        nothing, a test split too small, unconverged models, the edge of the grid): no share beside it (an
        ``uncertain`` warning beside it still says its shares in its own words)."""
        if not self.shares():
            return False
        return all(n.code == "uncertain" for n in self.notes if n.kind is NoteKind.WARNING)

    @property
    def resampled(self) -> str:
        """What the bootstrap redrew, in words: ``the held-out samples``, and the seeds (more than one per
        size) and the folds (pooled evidence) where it redrew them too."""
        u = self.uncertainty or {}
        what = ["the held-out samples"]
        if u.get("seeds", 2) != 1:
            what.append("seeds")
        if u.get("folds"):
            what.append("folds")
        return what[0] if len(what) == 1 else ", ".join(what[:-1]) + f" and {what[-1]}"

    @property
    def confidence(self) -> str:
        """How sure the answer is, in words: ``20 (chosen in 91% of 200 resamples; 10 in 9%)``; with one seed
        per size, what the resampling cannot see; just the size when no bootstrap was made or the answer is
        flagged for something it cannot see (``shown_shares``)."""
        shares = self.shares()
        if not self.shown_shares or self.uncertainty is None:
            return str(self.dim)
        n = int(self.uncertainty["resamples"])
        others = "; ".join(
            f"{d} in {share_words(s)}" for d, s in sorted(shares.items(), key=lambda kv: -kv[1]) if d != self.dim
        )
        one = self.uncertainty.get("seeds") == 1 and not self.uncertainty.get("folds")  # folds: a training each
        blind = "; one seed per size, so not the variation between seeds" if one else ""
        plain = not blind and not self.uncertainty.get("folds")
        what = "resamples" if plain else f"resamples of {self.resampled}"
        return (
            f"{self.dim} (chosen in {share_words(shares.get(self.dim, 0.0))} of {n} {what}"
            + (f"; {others}" if others else "")
            + f"{blind})"
        )

    def size_rows(self) -> list[dict[str, str]]:
        """The answer beside its table, one row per size as text: the held-out NLL (mean and standard error
        over seeds), the gap to the best and the standard error of that gap, the active units, the held-out
        NLL of probabilistic PCA of the size (``linear``: the best linear model of it; ``-`` where the data
        have none), and what the size is to the answer (``answer``, ``best``, ``worse than 8``: off the lower
        envelope; ``below linear``: worse than that linear model). The CLI and the report show these rows."""
        out = []
        linear_known = any(r.get("linear_mean") is not None for r in self.per_dim)  # Gaussian data only
        for r in self.per_dim:
            marks = [m for m, on in (("answer", r["dim"] == self.dim), ("best", r["dim"] == self.best_dim)) if on]
            if r.get("worse_than") is not None:
                marks.append(f"worse than {r['worse_than']}")
            if r.get("below_linear"):
                marks.append("below linear")
            gap, gap_se = r.get("gap"), r.get("gap_se")
            linear = r.get("linear_mean")
            row = {
                "size": str(r["dim"]),
                "seeds": str(r["n_seeds"]),
                "NLL": f"{r['nll_mean']:.2f}" + (f" ± {r['nll_se']:.2f}" if r["n_seeds"] > 1 else ""),
                "gap to best": "-" if gap is None else f"{gap:+.2f}",
                "SE of gap": "-" if gap_se is None or r["dim"] == self.best_dim else f"{gap_se:.2f}",
                "active": _num(r["active_units_mean"]),
            }
            if linear_known:
                row["linear"] = "-" if linear is None else f"{linear:.2f}"
            out.append(row | {"": ", ".join(marks)})
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the fields, the notes, and the rendered ``rationale``, ``warnings`` and ``settled``
        for readers that do not read notes."""
        d = asdict(self)
        d["notes"] = [n.to_dict() for n in self.notes]
        d.pop("legacy_rationale")
        d |= {"rationale": self.rationale, "warnings": self.warnings, "settled": self.settled}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recommendation:
        known = set(cls.__dataclass_fields__) - {"notes", "legacy_rationale"}
        kw = {k: v for k, v in d.items() if k in known}
        if isinstance(d.get("notes"), list):
            return cls(**kw, notes=[Note.from_dict(n) for n in d["notes"]])
        # written before notes: its warnings become notes, its rationale is shown as it was written
        settled = d.get("settled", True) is not False
        kind = NoteKind.CAUTION if settled else NoteKind.WARNING
        notes = [Note(kind, str(w)) for w in d.get("warnings") or []]
        if not settled and not notes:
            notes = [warning("the rule did not settle on a size: read the rationale and the curves before using it")]
        return cls(**kw, notes=notes, legacy_rationale=str(d.get("rationale", "")))


def share_words(s: float) -> str:
    """A bootstrap share in words: ``91%``; ``<1%`` for a share above 0 that rounds to 0%, and ``>99%``
    for one below 1 that rounds to 100% (so that two shares never read 100% and something)."""
    words = f"{s:.0%}"
    if s > 0 and words == "0%":
        return "<1%"
    return ">99%" if s < 1 and words == "100%" else words


def _num(v: float) -> str:
    """A mean over seeds in words: at most two decimals, none when whole (4.33, 12)."""
    return f"{v:.2f}".rstrip("0").rstrip(".")


__all__ = ["Recommendation", "share_words", "DEFAULT_RANGE_TOL"]
