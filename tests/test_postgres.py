"""Two sweep workers on one study in a real PostgreSQL server (a throwaway cluster on loopback)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest

from zdim.files import read_json
from zdim.studies import storage_url

from .test_scale import SMALL, nlls, records_per_key, zdim

pytestmark = pytest.mark.slow  # a PostgreSQL server per test session: `make test-fast` leaves it out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed: pip install 'zdim[postgres]'")
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    bindir = Path(bins[-1]).parent
    root = os.geteuid() == 0
    if root and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot run initdb as the postgres user")
    as_pg = ["runuser", "-u", "postgres", "--"] if root else []
    tmp = tempfile.mkdtemp(prefix="zdim-pg-")
    if root:
        shutil.chown(tmp, "postgres")
    data, port = os.path.join(tmp, "data"), _free_port()

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_pg, *cmd], capture_output=True, text=True, timeout=120)

    r = run(str(bindir / "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip(f"initdb failed: {r.stderr.strip()[-300:]}")
    r = run(
        str(bindir / "pg_ctl"),
        "-D",
        data,
        "-l",
        os.path.join(tmp, "log"),
        "-w",
        "-t",
        "60",
        "-o",
        f"-h 127.0.0.1 -p {port} -k {tmp}",
        "start",
    )
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {r.stderr.strip()[-300:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"  # as a user would write it
    finally:
        run(str(bindir / "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


def test_two_workers_share_a_postgres_study(tmp_path, postgres_url):
    optuna.create_study(storage=storage_url(postgres_url), study_name="pg")  # schema first, then the race
    grid = ["--dims", "1-3", "--seeds", "2", "--storage", postgres_url, "--study", "pg"]
    ps = [zdim("sweep", *SMALL, *grid, "--out", str(tmp_path / m)) for m in ("a", "b")]
    for p in ps:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="pg", storage=storage_url(postgres_url))
    counts = records_per_key(study)
    assert len(counts) == 6 and set(counts.values()) == {1}  # each trial ran exactly once
    assert nlls(tmp_path / "a") == nlls(tmp_path / "b")
    assert (
        read_json(tmp_path / "a" / "recommendation.json")["dim"]
        == read_json(tmp_path / "b" / "recommendation.json")["dim"]
    )
