"""Sweeps: the wing that runs a sweep, in four rooms and a door.

- ``planning``: the options resolved into one checked ``SweepPlan`` (``config``, ``plan``);
- ``records``: the run directory, the record of a run (``runs``), the Optuna studies where they are the
  engine (``studies``), the trials a sweep has (``ledger``), resume's checks (``resume``) and the result
  (``result``);
- ``executors``: how the members train (settle mode, per-size mode, folds, nested) and how the grid grows;
- ``backends``: where the work runs, one module per place and one registry row each;
- ``execute``: the door, plan to executor to answer to the written results.

Modules are imported by their own names (``zdim.sweeps.<room>.<module>``); these packages import nothing
but the backends' registry (``zdim.sweeps.backends``)."""
