"""How sure a recommendation is: a paired bootstrap over the held-out samples and the seeds.

``bootstrap`` redraws the held-out samples (the same draw for every trial: paired) and the seeds of each
size, and counts how often ``zdim.answer.rules.recommend`` picks each size; ``with_uncertainty`` puts those
shares into the recommendation's rationale, and marks the answer as not settled when its size is chosen
in fewer than ``MIN_SHARE`` of the resamples.
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
MIN_SHARE = 0.5  # an answer chosen in fewer resamples than this is not settled


def bootstrap(
    trials: Sequence[TrialRecord],
    per_sample: Mapping[tuple[int, int], np.ndarray],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    question: Question | None = None,
    **rule: Any,
) -> dict[str, Any] | None:
    """How often each size is recommended when the held-out samples and the seeds are resampled.

    ``per_sample[(dim, seed)]`` is the (N,) held-out NLL of each test sample of that trial; every trial
    was evaluated on the same samples, so one draw of N indices (with replacement) serves every trial
    (paired). Seeds are resampled per size. ``question`` (or its fields as keywords, ``rule``) goes to
    ``recommend``. Returns ``{"resamples": R, "shares": {size: share}, "seeds": the fewest seeds of a
    size, "n": N}``, or None when the per-sample values are missing or of unequal lengths.
    """
    complete = [t for t in trials if t.complete and t.key in per_sample]
    lengths = {len(per_sample[t.key]) for t in complete}
    if not complete or len(lengths) != 1 or lengths == {0}:
        return None
    n = lengths.pop()
    by_dim: dict[int, list[TrialRecord]] = {}
    for t in complete:
        by_dim.setdefault(t.dim, []).append(t)
    others = [t for t in trials if not t.complete]
    rng = np.random.default_rng(seed)
    counts: Counter[int] = Counter()
    for _ in range(resamples):
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
    seeds = min(len(ts) for ts in by_dim.values())
    shares = {str(d): c / resamples for d, c in sorted(counts.items())}
    return {"resamples": resamples, "shares": shares, "seeds": seeds, "n": n}


def with_uncertainty(rec: Recommendation, uncertainty: dict[str, Any] | None) -> Recommendation:
    """``rec`` with its bootstrap (see ``bootstrap``) and a note saying it, and a warning (not settled)
    when the size is chosen in fewer than ``MIN_SHARE`` of the resamples."""
    if uncertainty is None:
        return rec
    done = replace(rec, uncertainty=uncertainty)
    share = float(uncertainty["shares"].get(str(rec.dim), 0.0))
    if share >= MIN_SHARE or not rec.settled:  # a flagged answer: its shares are not shown (no share beside a flag)
        return done.with_notes(_said(done))
    uncertain = warning(
        f"the answer is uncertain: size {rec.dim} is chosen in only {share_words(share)} of "
        f"{uncertainty['resamples']} resamples of the held-out samples and seeds; use more seeds (--seeds), "
        "more held-out data, or more epochs",
        "uncertain",
    )
    done = done.with_notes(uncertain)
    return done.with_notes(_said(done))


def _said(rec: Recommendation) -> Note:
    """The bootstrap in words, or why its shares are not shown (``Recommendation.shown_shares``)."""
    if rec.shown_shares:
        return Note(NoteKind.UNCERTAINTY, f"Bootstrap over the held-out samples and seeds: {rec.confidence}.")
    return Note(
        NoteKind.UNCERTAINTY,
        "The bootstrap over the held-out samples and seeds is not shown as a share: it cannot see what "
        "unsettles the answer (the warnings above).",
    )
