import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from zdim.data.dataset import EMBEDDED, MIN_SAMPLES, Data, list_datasets, load_data, supported_formats
from zdim.errors import DataError, DataNoteWarning

MNIST = Path(__file__).parents[2] / "shared" / "datasets" / "mnist"


# ----------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def real() -> np.ndarray:
    """40 x 5 real-valued data, one constant column, a known value at row 0."""
    x = np.random.default_rng(3).normal(2.0, 3.0, (40, 5))
    x[:, 4] = 7.0
    return x


def write_idx(path: Path, arr: np.ndarray, compress: bool = False) -> Path:
    code = {np.dtype("uint8"): 0x08, np.dtype(">f4"): 0x0D}[arr.dtype]
    buf = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(buf) if compress else buf)
    return path


def write_images(folder: Path, n: int, mode: str = "L", size=(6, 4), sub: str | None = None) -> None:
    target = folder / sub if sub else folder
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(list(target.iterdir())))
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(target / f"{i:03}.png")


def total(d: Data) -> int:
    return len(d.train) + len(d.val) + len(d.test)


def raises(match: str, source, **kw) -> str:
    with pytest.raises(DataError, match=match) as info:
        load_data(source, **kw)
    assert "\n" not in str(info.value)
    return str(info.value)


# ----------------------------------------------------------------------------- loaders


def test_listing():
    assert list_datasets() == list(EMBEDDED.items()) and ("digits", EMBEDDED["digits"]) in list_datasets()
    assert any(".npy" in fmt for fmt, _ in supported_formats())


def test_digits():
    d = load_data("digits")
    assert total(d) == 1797 and d.n_features == 64 and d.sample_shape == (1, 8, 8) and d.is_image
    assert d.likelihood == "bernoulli" and d.train.dtype == torch.float32
    assert float(d.train.max()) == 1.0 and float(d.train.min()) == 0.0
    assert d.y_train.dtype == np.int64 and set(np.unique(d.y_train)) == set(range(10))
    assert (len(d.val), len(d.test)) == (179, 179) and d.name == d.source == "digits"


@pytest.mark.parametrize(
    "shape, sample_shape, image",
    [((30, 6), (6,), False), ((30, 4, 5), (1, 4, 5), True), ((30, 3, 4, 5), (3, 4, 5), True)],
)
@pytest.mark.parametrize("as_tensor", [False, True])
def test_arrays(shape, sample_shape, image, as_tensor):
    x = np.random.default_rng(0).random(shape)
    d = load_data(torch.from_numpy(x) if as_tensor else x)
    assert d.sample_shape == sample_shape and d.is_image == image and d.n_features == np.prod(shape[1:])
    assert d.source == "<array>" and d.name == "array" and d.likelihood == "bernoulli"
    assert d.train.shape[1] == d.n_features and d.train.is_contiguous() and d.y_train is None
    rows = np.sort(np.concatenate([d.train, d.val, d.test]).astype(np.float64), axis=0)
    assert np.allclose(rows, np.sort(x.reshape(30, -1), axis=0), atol=1e-6)  # all samples, once


def test_npy_memory_mapped(tmp_path, real):
    np.save(tmp_path / "feats.npy", real)
    d = load_data(str(tmp_path / "feats.npy"))
    assert d.name == "feats" and d.source == str(tmp_path / "feats.npy") and total(d) == 40
    assert d.likelihood == "gaussian" and d.sample_shape == (5,)


def test_npy_memory_map_copied_in_chunks_equals_in_memory(tmp_path, real, monkeypatch):
    """Splits of a memory-mapped file are copied a few rows at a time (its pages released after each
    chunk): the result is that of the same array in memory, and a NaN is still found and located."""
    import zdim.data.dataset
    import zdim.data.prepare

    np.save(tmp_path / "feats.npy", real.astype(np.float32))
    monkeypatch.setattr(zdim.data.prepare, "_CHUNK_BYTES", 3 * 5 * 4)  # 3 rows per chunk
    mapped, mem = load_data(str(tmp_path / "feats.npy")), load_data(real.astype(np.float32))
    for a, b in ((mapped.train, mem.train), (mapped.val, mem.val), (mapped.test, mem.test)):
        assert a.dtype == torch.float32 and torch.equal(a, b)
    assert mapped.fingerprint == mem.fingerprint and np.array_equal(mapped.mean, mem.mean)
    real[7, 2], real[30, 1] = np.nan, np.inf
    np.save(tmp_path / "bad.npy", real)
    raises(r"2 NaN or infinite.*row 7, column 2", str(tmp_path / "bad.npy"))


@pytest.mark.parametrize("kind", ["gaussian", "bernoulli", "uint8"])
def test_large_memory_map_splits_spill_to_unlinked_files_with_the_same_values(tmp_path, monkeypatch, kind, real):
    """Above SPILL_BYTES a memory-mapped source's splits live in spill files (unlinked at once): the
    tensors, likelihood and fingerprint are those of the in-RAM path; a sweep trains on them."""
    import zdim.data.spill

    x = {
        "gaussian": real.astype(np.float32),
        "bernoulli": np.random.default_rng(0).random((40, 5)).astype(np.float32),
        "uint8": np.random.default_rng(0).integers(0, 256, (40, 1, 4, 4)).astype(np.uint8),
    }[kind]
    path = tmp_path / "src" / "x.npy"
    path.parent.mkdir()
    np.save(path, x)
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    monkeypatch.setenv("ZDIM_SPILL_DIR", str(spill_dir))
    ram = load_data(str(path))
    monkeypatch.setattr(zdim.data.spill, "SPILL_BYTES", 0)
    disk = load_data(str(path))
    assert disk.extra.get("spilled") is True and "spilled" not in ram.extra
    assert list(spill_dir.iterdir()) == []  # unlinked: nothing is left behind, however the process ends
    assert disk.likelihood == ram.likelihood and disk.fingerprint == ram.fingerprint
    for a, b in ((disk.train, ram.train), (disk.val, ram.val), (disk.test, ram.test)):
        assert a.dtype == torch.float32 and a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)  # standardization: chunked sums
    from zdim.sweeps.execute import sweep
    from zdim.sweeps.planning.config import SweepConfig
    from zdim.training.config import TrainConfig

    r = sweep(disk, config=SweepConfig(dims=(2,), hidden=(8,), train=TrainConfig(epochs=1, batch_size=8), k=2))
    assert r.trials[0].complete


def test_spill_threshold_from_the_environment(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((40, 3)).astype(np.float32))
    monkeypatch.setenv("ZDIM_SPILL_DIR", str(tmp_path))
    monkeypatch.setenv("ZDIM_SPILL_BYTES", "0")
    assert load_data(str(tmp_path / "x.npy")).extra.get("spilled") is True
    monkeypatch.setenv("ZDIM_SPILL_BYTES", "1e18")
    assert "spilled" not in load_data(str(tmp_path / "x.npy")).extra
    monkeypatch.setenv("ZDIM_SPILL_BYTES", "lots")
    raises(r"ZDIM_SPILL_BYTES='lots' is not a number of bytes.*unset it", str(tmp_path / "x.npy"))


def test_spill_folder_missing_or_full_is_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    import zdim.data.spill

    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((40, 3)).astype(np.float32))
    monkeypatch.setattr(zdim.data.spill, "SPILL_BYTES", 0)
    monkeypatch.setenv("ZDIM_SPILL_DIR", str(tmp_path / "nowhere"))
    raises(r"cannot create a spill file in .*nowhere.*set ZDIM_SPILL_DIR", str(tmp_path / "x.npy"))
    full = tmp_path / "full"
    full.mkdir()
    monkeypatch.setenv("ZDIM_SPILL_DIR", str(full))

    def no_room(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zdim.data.spill.os, "posix_fallocate", no_room)  # a full disk: no SIGBUS later
    raises(r"has no room for a .* GB spill file.*ZDIM_SPILL_DIR.*ZDIM_SPILL_BYTES", str(tmp_path / "x.npy"))
    assert list(full.iterdir()) == []


def test_spilled_source_with_a_nan_is_refused_and_leaves_nothing(tmp_path, monkeypatch, real):
    import zdim.data.spill

    real[11, 3] = np.nan
    np.save(tmp_path / "bad.npy", real.astype(np.float32))
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    monkeypatch.setenv("ZDIM_SPILL_DIR", str(spill_dir))
    monkeypatch.setattr(zdim.data.spill, "SPILL_BYTES", 0)
    raises(r"1 NaN or infinite.*row 11, column 3", str(tmp_path / "bad.npy"))
    assert list(spill_dir.iterdir()) == []


def test_sparse_rows_of_a_memory_map_are_read_in_short_spans(tmp_path, monkeypatch):
    """A small split of a large file is scattered over all of it: a chunk of its rows must also span
    few rows of the file, or the kernel's read-around faults the whole file in before the pages are
    released (see benchmarks/bench_memory.py)."""
    import zdim.data.dataset
    import zdim.data.prepare

    x = np.arange(2000 * 4, dtype=np.float32).reshape(2000, 4)
    np.save(tmp_path / "big.npy", x)
    src = np.load(tmp_path / "big.npy", mmap_mode="r")
    monkeypatch.setattr(zdim.data.prepare, "_CHUNK_BYTES", 50 * 4 * 4)  # 50 rows per chunk
    spans = []

    class Spy(np.memmap):
        def __getitem__(self, idx):
            if isinstance(idx, np.ndarray):
                spans.append(int(idx.max() - idx.min()) + 1)
            return super().__getitem__(idx)

    rows = np.arange(0, 2000, 37)  # 55 sparse rows across the whole file
    out = zdim.data.prepare.gather(src.view(Spy), rows)
    assert np.array_equal(out, x[rows])
    assert spans and max(spans) <= 50, spans
    unsorted = rows[::-1].copy()  # no order: chunks by count only, same values
    assert np.array_equal(zdim.data.prepare.gather(src, unsorted), x[unsorted])


_PEAK_CHILD = """
import sys
import numpy as np
import zdim.data.dataset
import zdim.data.prepare

def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))

zdim.data.prepare._CHUNK_BYTES = 12 << 20  # each 5% split (10 MB) fits one chunk
base = hwm()
d = zdim.data.dataset.load_data(sys.argv[1], val_fraction=0.05, test_fraction=0.05)
assert sum(len(t) for t in (d.train, d.val, d.test)) == int(sys.argv[2])
print(base, hwm())
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="VmHWM is read from Linux's /proc")
def test_loading_a_memory_map_peaks_at_its_copy_not_twice_the_file(tmp_path):
    """End to end, in a fresh process: the peak RSS (VmHWM) of ``load_data`` on a 205 MB ``.npy`` is
    the copied splits plus a chunk (1.10x the file here), not the copy plus the mapped file. Rows are
    1 KB and a 5% split takes about one row in 20, so a chunk of it that spans the whole file maps all
    of the file (the kernel's 64 KB fault-around alone covers the gaps), as does a map whose pages are
    not released after each chunk: either regression peaks at about 2.07x (before 72ed42a: 9.09 GB for
    a 4.40 GB file in bench_memory.py)."""
    import zdim

    n, d = 200_000, 256
    path = tmp_path / "big.npy"
    with open(path, "wb") as f:  # in pieces: no 205 MB array in the test process
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, d)})
        for start in range(0, n, 20_000):
            f.write(np.random.default_rng(start).random((20_000, d), dtype=np.float32).tobytes())
    size = path.stat().st_size
    env = dict(os.environ, PYTHONPATH=str(Path(zdim.__file__).parents[1]), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK_CHILD, str(path), str(n)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    base, peak = map(int, proc.stdout.split())
    assert peak - base <= 1.25 * size, f"loading peaked at {(peak - base) / size:.2f}x the {size / 1e6:.0f} MB file"


@pytest.mark.parametrize(
    "keys, used", [(("arr",), "arr"), (("X", "y"), "X"), (("data", "other"), "data"), (("feats", "labels"), "feats")]
)
def test_npz_keys(tmp_path, keys, used):
    arrays = {k: np.full((20, 3), 0.5) for k in keys}
    arrays[used] = np.full((20, 3), 0.25)
    if "y" in keys or "labels" in keys:
        arrays["y" if "y" in keys else "labels"] = np.arange(20)
    np.savez(tmp_path / "a.npz", **arrays)
    d = load_data(tmp_path / "a.npz")
    assert float(d.train[0, 0]) == 0.25 and d.n_features == 3
    assert (d.y_train is not None) == ("y" in keys or "labels" in keys)


def test_npz_label_column_names_a_key(tmp_path):
    np.savez(tmp_path / "a.npz", X=np.zeros((20, 2)), target=np.arange(20) % 3)
    d = load_data(tmp_path / "a.npz", label_column="target")
    assert set(np.concatenate([d.y_train, d.y_val, d.y_test])) == {0, 1, 2}
    raises("'nope'.*'X', 'target'", tmp_path / "a.npz", label_column="nope")


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("sep, suffix", [(",", ".csv"), ("\t", ".tsv"), (",", ".csv.gz")])
def test_csv_tsv(tmp_path, real, header, sep, suffix):
    path = tmp_path / f"table{suffix}"
    pd.DataFrame(real, columns=list("abcde")).to_csv(path, sep=sep, header=header, index=False)
    with pytest.warns(DataNoteWarning, match="holds one value .7. in every row: dropped"):
        d = load_data(path)  # the constant column (issue 37) is dropped, and said
    assert total(d) == 40 and d.n_features == 4 and d.name == "table"
    assert d.feature_names == (list("abcd") if header else ["0", "1", "2", "3"])


def test_csv_label_column_text_labels(tmp_path, real):
    frame = pd.DataFrame(real, columns=list("abcde"))
    frame.insert(2, "kind", np.where(np.arange(40) % 2, "dog", "cat"))
    frame.to_csv(tmp_path / "t.csv", index=False)
    d = load_data(tmp_path / "t.csv", label_column="kind")
    assert d.feature_names == list("abcd") and d.extra["label_names"] == ["cat", "dog"]  # 'e': one value, dropped
    y = np.concatenate([d.y_train, d.y_val, d.y_test])
    assert y.dtype == np.int64 and sorted(y) == [0] * 20 + [1] * 20
    assert load_data(tmp_path / "t.csv").likelihood == "mixed:g4,b1,c"  # without labels: a mixed table
    msg = raises("text column", tmp_path / "t.csv", likelihood="gaussian")
    assert "'kind'" in msg and "label_column" in msg  # zdim.load_data names the keyword
    raises("'species'.*'a', 'b', 'kind'", tmp_path / "t.csv", label_column="species")


def test_csv_numeric_label_column_without_header(tmp_path):
    x = np.column_stack([np.random.default_rng(0).random((30, 3)), np.arange(30) % 4])
    np.savetxt(tmp_path / "t.csv", x, delimiter=",")
    d = load_data(tmp_path / "t.csv", label_column="3")
    assert d.n_features == 3 and d.y_train.dtype == np.int64 and "label_names" not in d.extra


def test_parquet(tmp_path, real):
    frame = pd.DataFrame(real, columns=list("abcde")).assign(y=np.arange(40) % 2)
    frame.to_parquet(tmp_path / "t.parquet")
    d = load_data(tmp_path / "t.parquet", label_column="y", keep_columns="e")  # kept, though it holds one value
    assert d.feature_names == list("abcde") and d.name == "t" and d.y_test is not None
    frame.assign(s=np.where(np.arange(40) % 3, "x", "z")).to_parquet(tmp_path / "s.parquet")
    assert load_data(tmp_path / "s.parquet", label_column="y").likelihood == "mixed:g4,b1,c"


@pytest.mark.parametrize("compress", [False, True])
def test_idx_file_with_sibling_labels(tmp_path, compress):
    gz = ".gz" if compress else ""
    images = np.random.default_rng(0).integers(0, 256, (25, 4, 3), dtype=np.uint8)
    images[:, 0, 0] = np.arange(25)  # pixel (0, 0) tells the sample apart
    write_idx(tmp_path / f"my-images-idx3-ubyte{gz}", images, compress)
    write_idx(tmp_path / f"my-labels-idx1-ubyte{gz}", np.arange(25, dtype=np.uint8) % 5, compress)
    d = load_data(tmp_path / f"my-images-idx3-ubyte{gz}")
    assert d.name == "my-images" and d.sample_shape == (1, 4, 3) and d.is_image and d.n_features == 12
    assert d.likelihood == "bernoulli" and float(d.train.max()) <= 1.0
    x = np.concatenate([d.train, d.val, d.test]) * 255
    ids = np.rint(x[:, 0]).astype(int)
    assert sorted(ids) == list(range(25)) and np.allclose(x, images.reshape(25, -1)[ids], atol=1e-3)
    assert np.array_equal(np.concatenate([d.y_train, d.y_val, d.y_test]), ids % 5)  # labels follow rows


def test_idx_float_data_not_scaled(tmp_path):
    write_idx(tmp_path / "f-idx2-ubyte", np.full((12, 3), 4.0, dtype=">f4"))
    d = load_data(tmp_path / "f-idx2-ubyte", likelihood="gaussian")
    assert d.sample_shape == (3,) and not d.is_image and float(d.mean[0]) == 4.0


@pytest.mark.skipif(not MNIST.is_dir(), reason="real MNIST not present")
def test_real_mnist_folder_uses_t10k_as_test():
    d = load_data(MNIST, max_samples=300, seed=1)
    assert d.name == "mnist" and d.sample_shape == (1, 28, 28) and d.extra["test_split"] == "given"
    assert (len(d.train), len(d.val), len(d.test)) == (270, 30, 300) and d.extra["n_source"] == 60000
    assert d.likelihood == "bernoulli" and float(d.train.min()) >= 0 and float(d.train.max()) <= 1
    assert d.y_test.dtype == np.int64 and len(set(d.y_test)) == 10
    with gzip.open(MNIST / "t10k-images-idx3-ubyte.gz") as f:
        t10k = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    rows = {r.tobytes() for r in t10k}
    assert all(np.rint(r * 255).astype(np.uint8).tobytes() in rows for r in d.test.numpy())


@pytest.mark.parametrize("mode, channels", [("L", 1), ("RGB", 3)])
def test_image_folder(tmp_path, mode, channels):
    write_images(tmp_path / "pics", 12, mode)
    d = load_data(tmp_path / "pics")
    assert d.name == "pics" and d.sample_shape == (channels, 4, 6) and d.is_image and total(d) == 12
    assert d.likelihood == "bernoulli" and d.y_train is None


def test_image_subfolders_give_labels(tmp_path):
    write_images(tmp_path / "pets", 6, sub="cat")
    write_images(tmp_path / "pets", 6, sub="dog")
    d = load_data(tmp_path / "pets")
    assert d.extra["label_names"] == ["cat", "dog"] and total(d) == 12
    assert sorted(np.concatenate([d.y_train, d.y_val, d.y_test])) == [0] * 6 + [1] * 6


# ----------------------------------------------------------------------------- split and likelihood


def test_split_is_deterministic_per_seed(real):
    a, b, c = load_data(real, seed=5), load_data(real, seed=5), load_data(real, seed=6)
    assert torch.equal(a.train, b.train) and a.fingerprint == b.fingerprint
    assert not torch.equal(a.test, c.test) and a.fingerprint != c.fingerprint
    assert (len(a.train), len(a.val), len(a.test)) == (32, 4, 4)


@pytest.mark.parametrize(
    "val, test, sizes", [(0.0, 0.0, (38, 1, 1)), (0.49, 0.49, (2, 19, 19)), (0.25, 0.1, (26, 10, 4))]
)
def test_split_sizes(real, val, test, sizes):
    d = load_data(real, val_fraction=val, test_fraction=test)
    assert (len(d.train), len(d.val), len(d.test)) == sizes


def test_max_samples(real):
    d = load_data(real, max_samples=20)
    assert total(d) == 20 and d.extra["n_source"] == 40
    raises(r"found 5 sample.*at least 10.*max_samples \(now 5\)", real, max_samples=5)


def row_ids(d: Data, part: torch.Tensor) -> np.ndarray:
    return np.rint(part.numpy()[:, 0] * d.std[0] + d.mean[0]).astype(int)


def test_standardization_uses_train_split_only():
    x = np.random.default_rng(1).normal(3.0, 2.0, (40, 3))
    x[:, 0] = np.arange(40)  # column 0 names the row
    x[:, 2] = 5.0  # constant in training: unit scale
    first = load_data(x)
    held_out = row_ids(first, first.test)[0]
    x[held_out, 1] = 1e4  # an outlier the training split never sees
    d = load_data(x)
    train = x[row_ids(d, d.train)]
    assert np.allclose(d.mean, train.mean(0), rtol=1e-5)
    assert np.allclose(d.std[:2], train.std(0)[:2], rtol=1e-4)
    assert d.std[2] == np.float32(1.0) and d.mean.dtype == d.std.dtype == np.float32
    assert abs(x[:, 1].mean() - d.mean[1]) > 100  # statistics of all rows would differ
    assert np.allclose(d.train.mean(0)[:2], 0, atol=1e-4)
    assert np.allclose(d.train.std(0, correction=0)[:2], 1, atol=1e-3)
    assert np.allclose(d.test.numpy() * d.std + d.mean, x[row_ids(d, d.test)], atol=1e-2)  # same statistics


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda r: (r.random((30, 4)) > 0.5).astype(np.float32), "bernoulli"),
        (lambda r: r.random((30, 4)), "bernoulli"),
        (lambda r: r.normal(size=(30, 4)), "gaussian"),
        (lambda r: r.integers(0, 255, (30, 4)), "gaussian"),
    ],
)
def test_likelihood_inference(make, expected):
    d = load_data(make(np.random.default_rng(0)))
    assert d.likelihood == expected and (d.mean is None) == (expected == "bernoulli")


def test_forced_likelihood(real):
    x = np.random.default_rng(0).random((30, 4))
    d = load_data(x, likelihood="gaussian")
    assert d.likelihood == "gaussian" and np.allclose(d.train.mean(0), 0, atol=1e-5)
    raises(r"bernoulli.*\[0, 1\].*likelihood='gaussian'", real, likelihood="bernoulli")


def test_fingerprint_covers_labels(tmp_path):
    np.savez(tmp_path / "a.npz", X=np.zeros((20, 2)), y=np.arange(20))
    np.savez(tmp_path / "b.npz", X=np.zeros((20, 2)), y=np.arange(20) + 1)
    assert load_data(tmp_path / "a.npz").fingerprint != load_data(tmp_path / "b.npz").fingerprint


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"val_fraction": 0.5}, "val_fraction=0.5"),
        ({"test_fraction": -0.1}, "test_fraction=-0.1"),
        ({"likelihood": "poisson"}, "'poisson'.*auto, bernoulli, gaussian"),
        ({"max_samples": 0}, "max_samples=0"),
        ({"max_samples": 2.5}, "max_samples=2.5"),
    ],
)
def test_bad_options(real, kw, match):
    raises(match, real, **kw)


def test_missing_source(tmp_path):
    msg = raises("nothere.csv", str(tmp_path / "nothere.csv"))
    assert "zdim datasets" in msg
    raises("'mnist'.*zdim datasets", "mnist")


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((0, 4)), r"0 samples x 4"),
        (np.zeros((20, 0)), r"20 samples x 0"),
        (np.zeros((1, 4)), r"found 1 sample.*at least 10"),
        (np.zeros(30), r"shape \(30,\)"),
        (np.array([["a"] * 3] * 20), "<U1"),
    ],
)
def test_bad_arrays(x, match):
    raises(match, x)
    assert MIN_SAMPLES == 10


def test_nan_and_inf(tmp_path, real):
    real[7, 2], real[30, 1], real[12, 0] = np.nan, np.inf, -np.inf
    raises(r"3 NaN or infinite.*row 7, column 2", real)
    pd.DataFrame(real, columns=list("abcde")).to_csv(tmp_path / "t.csv", index=False)
    raises(r"row 7, column 2 \('c'\)", tmp_path / "t.csv")


@pytest.mark.parametrize("text, line", [("a,b\n1,2\n3,4,5\n", 3), ("1,2,3\n4,5,6\n7,8\n1,2,3\n", 3)])
def test_ragged_csv(tmp_path, text, line):
    (tmp_path / "r.csv").write_text(text)
    raises(f"ragged.*line {line}", tmp_path / "r.csv")


def test_empty_csv(tmp_path):
    (tmp_path / "e.csv").write_text("")
    raises("e.csv.*empty", tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("a,b,c\n")
    raises(r"0 samples x 3", tmp_path / "h.csv")


def test_unknown_format(tmp_path):
    (tmp_path / "data.xlsx").write_text("x")
    msg = raises(r"'\.xlsx'", tmp_path / "data.xlsx")
    assert ".npy" in msg and ".parquet" in msg


def test_npz_ambiguous(tmp_path):
    np.savez(tmp_path / "a.npz", first=np.zeros((20, 2)), second=np.zeros((20, 2)))
    raises("'first', 'second'", tmp_path / "a.npz")


def test_corrupt_files(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    raises("bad.npy", tmp_path / "bad.npy")
    write_idx(tmp_path / "t-images-idx3-ubyte", np.zeros((12, 2, 2), np.uint8))
    (tmp_path / "t-images-idx3-ubyte").write_bytes((tmp_path / "t-images-idx3-ubyte").read_bytes()[:-3])
    raises("truncated", tmp_path / "t-images-idx3-ubyte")
    (tmp_path / "u-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04")
    raises("not an IDX file.*01020304", tmp_path / "u-images-idx3-ubyte")


def test_images_mixed_sizes_and_corrupt(tmp_path):
    write_images(tmp_path / "mixed", 11)
    Image.new("L", (5, 5)).save(tmp_path / "mixed" / "zz.png")
    raises(r"000.png is 6x4 but .*zz.png is 5x5", tmp_path / "mixed")
    write_images(tmp_path / "broken", 11)
    (tmp_path / "broken" / "005.png").write_bytes(b"garbage")
    raises("005.png.*corrupt", tmp_path / "broken")


def test_folder_without_data(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    raises("no recognizable data.*'notes.txt'", tmp_path)


def test_label_column_on_an_array(real):
    raises("label_column='y'", real, label_column="y")


def test_a_feature_constant_in_training_keeps_held_out_values_at_their_scale():
    x = np.random.default_rng(2).normal(0.0, 1.0, (200, 3)).astype(np.float32)
    x[:, 0] = np.arange(200)  # column 0 names the row
    d0 = load_data(x)
    x[row_ids(d0, d0.train), 2] = 7.0  # constant in training only; held-out rows keep N(0, 1) values
    d = load_data(x)
    assert d.std[2] == 1.0
    assert float(d.test[:, 2].abs().max()) < 20  # not (x - 7) / 1e-6


def test_data_records_the_readers_scale():
    digits = load_data("digits", max_samples=100)
    assert digits.scale == 16.0 and digits.preprocessing.scale == 16.0
    table = load_data(np.random.default_rng(0).normal(size=(50, 3)))
    assert table.scale == 1.0 and table.preprocessing.mean is not None
    counts = load_data(np.random.default_rng(0).poisson(300.0, size=(50, 3)), likelihood="nb")
    assert counts.scale == 1.0 and counts.preprocessing.is_identity


# ----------------------------------------------------------------------------- messages that name the right thing


def test_a_bad_test_split_is_named_as_the_test_split(tmp_path, capsys):
    from zdim.cli import main

    x = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    np.save(tmp_path / "train.npy", x)
    bad = x[:30].copy()
    bad[3, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    assert main(["sweep", str(tmp_path / "train.npy"), "--test", str(tmp_path / "nan.npy"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"test split {tmp_path / 'nan.npy'}: 1 NaN" in err and "train.npy" not in err


def test_cli_messages_name_flags_and_the_api_names_keywords(tmp_path, capsys):
    import pandas as pd

    import zdim
    from zdim.cli import main

    x = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    pd.DataFrame(x, columns=list("abcdef")).assign(lab=np.arange(200) % 3).to_csv(tmp_path / "t.csv", index=False)
    cases = [
        (["--layer", "counts"], "--layer 'counts' applies to AnnData (.h5ad) files, not to a npy: leave --layer out"),
        (["--label-column", "lab"], "--label-column 'lab' applies to tables"),
    ]
    for flags, needle in cases:
        assert main(["sweep", str(tmp_path / "x.npy"), *flags, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert needle in err and "=" not in err.split(": ", 2)[-1], err
    # --label-column with a --test file that has no columns: the test file is to blame, not the column
    args = ["sweep", str(tmp_path / "t.csv"), "--label-column", "lab", "--test", str(tmp_path / "x.npy"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--test {tmp_path / 'x.npy'}: a npy has no columns, so --label-column 'lab' cannot take its labels" in err
    with pytest.raises(DataError, match=r"^layer='counts' applies to AnnData .* leave layer out$"):
        zdim.load_data(x, layer="counts")


def test_a_semicolon_separated_csv_is_sniffed_or_named(tmp_path, capsys):
    """Issue 37: a CSV separated by semicolons (with decimal commas, as written in much of Europe) is read
    as such, and said; one whose lines no separator splits alike names the separator in its error."""
    import pandas as pd

    from zdim.cli import main

    x = np.random.default_rng(0).normal(size=(50, 4))
    frame = pd.DataFrame(x, columns=list("abcd"))
    frame.to_csv(tmp_path / "semi.csv", sep=";", decimal=",", index=False)
    with pytest.warns(DataNoteWarning, match="read as semicolon-separated, with decimal commas"):
        d = load_data(tmp_path / "semi.csv")
    assert d.feature_names == list("abcd") and d.likelihood == "gaussian"
    assert np.allclose(sorted(np.concatenate([d.train, d.val, d.test])[:, 0] * d.std[0] + d.mean[0]), sorted(x[:, 0]))
    text = (tmp_path / "semi.csv").read_text().splitlines()
    (tmp_path / "ragged.csv").write_text("\n".join([*text[:5], text[5].rsplit(";", 1)[0], *text[6:]]) + "\n")
    with pytest.raises(DataError, match="line 6 has 3 fields, expected 4, read as semicolon-separated"):
        load_data(tmp_path / "ragged.csv")
    (tmp_path / "one.csv").write_text("a;b\n" + "".join(f"{i};{i * 2};{i}\n" for i in range(20)))
    assert main(["sweep", str(tmp_path / "one.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ragged table: line 2 has 3 fields, expected 2, read as semicolon-separated" in err
