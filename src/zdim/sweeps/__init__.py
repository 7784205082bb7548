"""Sweeps: options -> plan, the run directory, ledger, executors, backends, growth, resume.

Modules are imported by their own names (``zdim.sweeps.<module>``); this package imports nothing."""
