"""The answer: rules, sanity checks, capacity, paired errors, the recommendation, the bootstrap.

Modules are imported by their own names (``zdim.answer.decide.<module>``); this package imports nothing."""
