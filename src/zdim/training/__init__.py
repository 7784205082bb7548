"""Training: one epoch (Trainer, and StackedTrainer's members), stopping rules, the wake-up levers.

Modules are imported by their own names (``zdim.training.<module>``); this package imports nothing."""
