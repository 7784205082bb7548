"""The Optuna shim: the private API zdim relies on, checked on its own so an Optuna upgrade that moves it
fails here, by name, not somewhere in a sweep."""

import optuna

from zdim.sweeps.executors.per_size import grid_key
from zdim.sweeps.records import studies


def test_take_waiting_takes_only_enqueued_trials_and_never_creates_one():
    study = optuna.create_study()
    assert studies.take_waiting(study) is None and study.trials == []
    study.enqueue_trial({"dim": 4, "seed": 1})
    trial = studies.take_waiting(study)
    assert trial is not None and study.trials[0].state == optuna.trial.TrialState.RUNNING
    assert studies.take_waiting(study) is None and len(study.trials) == 1


def test_frozen_reads_the_enqueued_parameters_of_a_live_trial():
    study = optuna.create_study()
    study.enqueue_trial({"dim": 4, "seed": 1})
    trial = studies.take_waiting(study)
    assert trial is not None
    t = studies.frozen(study, trial)
    assert studies.fixed_params(t) == {"dim": 4, "seed": 1} and grid_key(t) == (4, 1)


def test_a_trial_that_is_not_a_grid_point_has_no_key():
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert grid_key(study.trials[0]) is None


def test_trial_of_sets_attributes_and_tells_a_stored_trial():
    study = optuna.create_study()
    study.enqueue_trial({"dim": 4, "seed": 1})
    assert studies.take_waiting(study) is not None
    trial = studies.trial_of(study, study.trials[0])
    trial.set_user_attr("k", 1)
    study.tell(trial, 2.0)
    assert study.trials[0].user_attrs == {"k": 1} and study.trials[0].value == 2.0
