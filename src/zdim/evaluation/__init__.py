"""Evaluation: pure metric functions, intrinsic-dimension estimates, generation quality.

Modules are imported by their own names (``zdim.evaluation.<module>``); this package imports nothing."""
