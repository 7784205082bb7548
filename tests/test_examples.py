"""Every script in examples/ runs end to end with tiny settings (as a user would run it, in a subprocess)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / ".." / "shared" / "datasets" / "mnist"
TINY = ["--epochs", "1", "--max-samples", "300"]
STEPS = ["--epoch-steps", "1"]  # one pass per epoch: zdim's default is at least 100 steps (issue 36)

CASES = {
    "csv_table.py": (TINY + STEPS + ["--rows", "400", "--dims", "1,3", "--hidden", "16"], "recommended latent size:"),
    "image_folder.py": (
        TINY + STEPS + ["--images", "300", "--dims", "1,3", "--hidden", "16"],
        "classes ['large', 'small']",
    ),
    "sklearn_pipeline.py": (TINY + ["--dims", "1,2", "--hidden", "16"], "best by ELBO:"),
    "mnist_idx.py": (TINY + STEPS + ["--dims", "2,4", "--hidden", "32"], "recommended latent size:"),
    "conv_rgb.py": (  # half the rows: its held-out evidence (every row, over folds) is most of its time
        ["--epochs", "1", "--max-samples", "150"] + STEPS + ["--images", "300", "--dims", "1,3"],
        "model: __main__:ConvRGBVAE",
    ),
    "signal_conv1d.py": (TINY + STEPS + ["--signals", "300", "--dims", "1,3"], "recommended latent size:"),
}


def test_every_example_is_tested():
    assert sorted(p.name for p in (ROOT / "examples").glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs(script):
    if script == "mnist_idx.py" and not (MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST IDX files not found at {MNIST}")
    args, expected = CASES[script]
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert expected in proc.stdout
    assert "Traceback" not in proc.stderr
