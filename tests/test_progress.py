"""What a person sees while a sweep runs (zdim.progress): the phase and fold under way, what the answer
waits for, the time left once a phase has run, and plain lines when stderr is not a terminal."""

from __future__ import annotations

import pytest

from zdim.progress import Progress, Timeline, duration
from zdim.sweeps.executors.member import Member
from zdim.sweeps.executors.settle import SettleExecutor


def test_the_time_left_is_estimated_once_a_phase_has_run():
    t = Timeline(folds=5)
    t.start_phase("the grid given", 18, now=0.0)
    t.start_fold(1, now=0.0)
    assert t.left(50.0) is None and t.left_words(50.0) == ""  # nothing has run: no estimate
    t.start_fold(2, now=100.0)  # fold 1 took 100 s for 18 members
    assert t.where() == "phase 1, fold 2 of 5"
    assert t.left(130.0) == pytest.approx(70.0 + 3 * 100.0)  # the rest of fold 2, folds 3 to 5
    assert t.left_words(130.0) == "about 6 min left in this phase"
    for j, now in ((3, 200.0), (4, 300.0), (5, 400.0)):
        t.start_fold(j, now)
    # bisection: 3 new members a fold, up to 2 more steps after this one; 500 s for 90 member-folds so far
    t.start_phase("refine: trying size 3 between 2 and 4", 3, now=500.0, ahead=2)
    t.start_fold(1, now=500.0)
    unit = 500.0 / 90 * 3
    assert t.left(500.0) == pytest.approx(unit * 5 + 2 * 5 * unit)
    assert t.left_words(500.0) == "about 4 min left (this phase and up to 2 more bisection steps)"
    t.start_phase("capacity: training size(s) 6, 7 to convergence", 6, now=900.0)  # the last, as far as known
    for j in range(1, 6):
        t.start_fold(j, now=900.0 + 100 * j)
    assert t.left(1400.0) is not None and t.left(5000.0) is None  # past its estimate: no figure
    assert [duration(s) for s in (0.2, 42, 59.4, 61, 3000, 4000)] == ["1 s", "42 s", "59 s", "1 min", "50 min",
                                                                      "1 h 7 min"]  # fmt: skip


def test_a_redirected_log_gets_plain_lines_with_the_phase_and_the_fold(capsys):
    p = Progress(True, total=18, desc="zdim sweep (settle)", folds=5)  # capsys: stderr is not a terminal
    clock = iter([0.0, 0.0, 0.0, 120.0, 120.0, 130.0, 130.0, 130.0])
    p.clock = lambda: next(clock)
    p.phase("the grid given, sizes 1, 2, 4 x 3 seed(s)", 9)
    p.fold(1, 40)
    p.fold(2, 40)
    p.training("9 members together", None)
    p.advance("answer 4 (held 3 of 5 epochs), 9 of 9 members training, 2 not converged")
    p.close()
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    lines = err.splitlines()
    assert "phase 1, fold 1 of 5: the grid given, sizes 1, 2, 4 x 3 seed(s) (9 members; 40 test rows)" in lines
    assert "phase 1, fold 2 of 5: the grid given, sizes 1, 2, 4 x 3 seed(s) (9 members; 40 test rows); about 8 min " \
        "left in this phase" in lines  # fmt: skip
    assert any(
        line.startswith("  9 members together: epoch 1, phase 1, fold 2 of 5: answer 4 (held 3 of 5 epochs), 9 of 9 "
                        "members training, 2 not converged; about") for line in lines
    )  # fmt: skip


def test_the_epoch_line_says_what_the_answer_waits_for():
    ex = SettleExecutor(ledger=None, window=5)  # type: ignore[arg-type]  # _line reads no ledger
    ex.tol = 0.1
    flat = Member(
        4, 0, asleep=False, scores=[10.0] * 40, epoch=40, lr_drops=1, lowered_at=20
    )  # flat after a lowered LR
    falling = Member(8, 0, asleep=False, scores=[10.0 - 0.05 * i for i in range(40)])
    stopped = Member(16, 0, asleep=False, scores=[10.0] * 40, done=True)
    ex.trace = [{"dim": 2}] + [{"dim": 4}] * 3
    assert (
        ex._line(4, [flat, falling, stopped])
        == "answer 4 (held 3 of 5 epochs), 2 of 3 members training, 1 not converged"
    )
    ex.trace += [{"dim": 4}] * 9
    assert (
        ex._line(4, [flat, falling, stopped]) == "answer 4 (held 12 epochs), 2 of 3 members training, 1 not converged"
    )
    assert ex._line(None, [flat]) == "1 of 1 members training"
