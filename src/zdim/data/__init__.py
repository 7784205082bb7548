"""Data: one reader per source format, every source -> one validated Data, every bad-input check, folds.

Modules are imported by their own names (``zdim.data.dataset.<module>``); this package imports nothing."""
