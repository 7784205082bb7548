"""What zdim reads: the embedded data sets, the file formats and the likelihoods' names, as text (no torch).

``zdim datasets`` prints this without importing the readers; ``zdim.data.readers`` reads what it lists.
"""

from __future__ import annotations

from .likelihoods import NAMES, REGISTRY

LIKELIHOODS = NAMES  # the decoder likelihoods: the names of zdim.likelihoods' families
COUNT_LIKELIHOODS = tuple(n for n, f in REGISTRY.items() if f.counts)  # raw counts; library size per sample
LIKELIHOOD_CHOICES = ("auto", *LIKELIHOODS)  # what --likelihood and likelihood= accept
MODES = ("settle", "per-size", "nested")  # the values of zdim.sweeps.planning.plan.Mode, for --mode (without torch)

EMBEDDED = {"digits": "scikit-learn's 8x8 handwritten digits (1797 samples, 64 features)"}

_FORMATS = [
    (".npy", "array (n, D), or images (n, H, W) / (n, C, H, W); memory-mapped"),
    (
        ".npz",
        "--array NAME; else X_train + X_test (+ y_train, y_test) as train and test; else the only "
        "array, or X/x/data (labels: y/labels)",
    ),
    (".csv, .tsv [.gz]", "table, header detected; --label-column takes labels; text columns: a mixed table"),
    (".parquet", "table; same column rules as CSV"),
    ("*-idx3-ubyte[.gz]", "IDX images (MNIST format); labels from the sibling *-idx1-ubyte file"),
    ("folder of IDX files", "train-images + t10k-images (+ labels): t10k is the test split"),
    ("folder of images", ".png/.jpg/.jpeg of one size; subfolder names become labels"),
    (".h5ad", "AnnData (needs anndata): .X or a layer (layer=); labels from an .obs column (label_key=)"),
]


__all__ = ["EMBEDDED", "LIKELIHOODS", "COUNT_LIKELIHOODS", "LIKELIHOOD_CHOICES", "MODES"]
