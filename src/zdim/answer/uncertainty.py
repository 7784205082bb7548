"""How sure a recommendation is: a paired bootstrap over the held-out samples, the seeds and the folds.

``bootstrap`` redraws the held-out samples (the same draw for every trial: paired) and the seeds of each
size, and counts how often ``zdim.answer.rules.recommend`` picks each size; on the pooled evidence of k
folds (``zdim.answer.decide.pool``) it redraws the folds too, each drawn fold with its own rows, so the
shares see how much the answer moves from fold to fold. ``with_uncertainty`` puts those shares into the
recommendation's rationale, and flags the answer ``uncertain`` (not settled) when its size is chosen in
fewer than ``MIN_SHARE`` of the resamples, naming the sizes that compete and what narrows them, beside any
other flag (one flag never hides another).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..evidence import Note, NoteKind, warning
from ..records import TrialRecord
from .recommendation import Recommendation, share_words
from .rules import Question, recommend

BOOTSTRAP_RESAMPLES = 200
MIN_SHARE = 0.8  # an answer chosen in fewer resamples than this is not settled


def fold_rows(trials: Sequence[TrialRecord], n: int) -> list[int]:
    """The rows each fold gave to the joined per-sample values of pooled records (``extra["fold_rows"]``,
    the same for every complete trial and summing to ``n``); empty when the evidence is not pooled."""
    found = {tuple(t.extra.get("fold_rows") or ()) for t in trials if t.complete}
    if len(found) != 1:
        return []
    rows = [int(r) for r in found.pop()]
    return rows if len(rows) > 1 and sum(rows) == n and min(rows) > 0 else []


def bootstrap(
    trials: Sequence[TrialRecord],
    per_sample: Mapping[tuple[int, int], np.ndarray],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    question: Question | None = None,
    **rule: Any,
) -> dict[str, Any] | None:
    """How often each size is recommended when the held-out samples and the seeds are resampled (and the
    folds, for pooled evidence: ``fold_rows``).

    ``per_sample[(dim, seed)]`` is the (N,) held-out NLL of each test sample of that trial; every trial
    was evaluated on the same samples, so one draw of N indices (with replacement) serves every trial
    (paired). Seeds are resampled per size. With folds, each resample draws k folds with replacement and
    then the rows of each drawn fold with replacement (a fold's rows were scored by that fold's models).
    ``question`` (or its fields as keywords, ``rule``) goes to ``recommend``. Returns ``{"resamples": R,
    "shares": {size: share}, "seeds": the most seeds of a size (settle mode gives them to the sizes that
    compete for the answer), "n": N}`` (and ``"folds": k`` when
    the folds were resampled), or None when the per-sample values are missing or of unequal lengths.
    """
    complete = [t for t in trials if t.complete and t.key in per_sample]
    lengths = {len(per_sample[t.key]) for t in complete}
    if not complete or len(lengths) != 1 or lengths == {0}:
        return None
    n = lengths.pop()
    blocks = fold_rows(complete, n)
    starts = np.cumsum([0, *blocks[:-1]])
    by_dim: dict[int, list[TrialRecord]] = {}
    for t in complete:
        by_dim.setdefault(t.dim, []).append(t)
    others = [t for t in trials if not t.complete]
    rng = np.random.default_rng(seed)
    counts: Counter[int] = Counter()
    for _ in range(resamples):
        if blocks:  # k folds drawn with replacement, then each drawn fold's rows
            drawn_folds = rng.integers(0, len(blocks), len(blocks))
            idx = np.concatenate([starts[f] + rng.integers(0, blocks[f], blocks[f]) for f in drawn_folds])
        else:
            idx = rng.integers(0, n, n)  # (N,) the same held-out samples for every trial
        drawn: list[TrialRecord] = []
        values: dict[tuple[int, int], np.ndarray] = {}
        for dim, ts in by_dim.items():
            picks = rng.integers(0, len(ts), len(ts)) if len(ts) > 1 else [0]
            for j, i in enumerate(picks):
                v = np.asarray(per_sample[ts[int(i)].key])[idx]
                drawn.append(replace(ts[int(i)], seed=j, nll=float(v.mean())))
                values[(dim, j)] = v
        kw: dict[str, Any] = {"question": question} if question is not None else rule
        counts[recommend(drawn + others, per_sample=values, **kw).dim] += 1
    seeds = max(Counter(t.dim for t in trials if t.complete).values())  # of the records, as every reader sees them
    shares = {str(d): c / resamples for d, c in sorted(counts.items())}
    out: dict[str, Any] = {"resamples": resamples, "shares": shares, "seeds": seeds, "n": n}
    return out | ({"folds": len(blocks)} if blocks else {})


def with_uncertainty(rec: Recommendation, uncertainty: dict[str, Any] | None) -> Recommendation:
    """``rec`` with its bootstrap (see ``bootstrap``) and a note saying it, and a warning (``uncertain``,
    not settled) when the size is chosen in fewer than ``MIN_SHARE`` of the resamples, whatever else is
    flagged: it names the sizes that compete, with their shares, and what narrows them."""
    if uncertainty is None:
        return rec
    done = replace(rec, uncertainty=uncertainty)
    share = float(uncertainty["shares"].get(str(rec.dim), 0.0))
    if share < MIN_SHARE:
        done = done.with_notes(_uncertain(done, share))
    return done.with_notes(_said(done))


def _uncertain(rec: Recommendation, share: float) -> Note:
    """The warning of an answer chosen in too few resamples: its share, the sizes that compete with theirs,
    and a fix that narrows them (more seeds; folds, or more of them)."""
    assert rec.uncertainty is not None
    u = rec.uncertainty
    rivals = sorted(((d, s) for d, s in rec.shares().items() if d != rec.dim), key=lambda ds: (-ds[1], ds[0]))
    compete = "; ".join(f"{d} in {share_words(s)}" for d, s in rivals)
    seeds = int(u.get("seeds") or 1)
    folds = int(u.get("folds") or 1)
    more_folds = f"more folds (--folds {2 * folds})" if folds > 1 else "every row held out once (--folds 5)"
    return warning(
        f"the answer is uncertain: size {rec.dim} is chosen in only {share_words(share)} of {u['resamples']} "
        f"resamples of {rec.resampled}" + (f" ({compete})" if compete else "") + f", under the "
        f"{MIN_SHARE:.0%} a settled answer needs; more seeds (--seeds {max(2 * seeds, 5)}) or {more_folds} "
        "narrow it",
        "uncertain",
    )


def _one_split(rec: Recommendation) -> str:
    """What a bootstrap of one split cannot see, in words (empty with folds, whose redraw sees it): which
    rows were held out. Diamonds (3,000 rows, issue 37) answered 9, chosen in 86%, at ``--seed 0``, and 6
    at ``--seed 1``, another split of the same rows."""
    if (rec.uncertainty or {}).get("folds"):
        return ""
    return (
        " It redraws the held-out samples of one split, not the split: another --seed splits the rows anew, "
        "and --folds 5 holds every row out once and redraws the folds."
    )


def _said(rec: Recommendation) -> Note:
    """The bootstrap in words, or why its shares are not shown beside the answer
    (``Recommendation.shown_shares``)."""
    if rec.shown_shares:
        return Note(NoteKind.UNCERTAINTY, f"Bootstrap over {rec.resampled}: {rec.confidence}.{_one_split(rec)}")
    where = (
        "; its shares are in the warning that the answer is uncertain"
        if any(n.code == "uncertain" for n in rec.notes)
        else ""
    )
    return Note(
        NoteKind.UNCERTAINTY,
        f"The bootstrap over {rec.resampled} is not shown beside the answer: it cannot see all that unsettles "
        f"it (the warnings above){where}.",
    )
