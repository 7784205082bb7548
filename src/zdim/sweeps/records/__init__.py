"""The record of a run: the layout of a run directory (``layout``), its one owner (``runs``), the Optuna
studies where they are the engine (``studies``), the trials a sweep has (``ledger``), what resume checks
(``resume``) and the result a sweep returns (``result``)."""
