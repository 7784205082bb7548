"""A throwaway PostgreSQL cluster on loopback, for tests/test_postgres.py and benchmarks/bench_kill.py.

``throwaway_postgres()`` runs ``initdb`` and ``pg_ctl start`` from /usr/lib/postgresql/*/bin (as the
postgres user when run as root), yields the cluster's URL as a user would write it, and stops and
deletes the cluster afterwards. ``Unavailable`` says why no cluster could be started.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Unavailable(RuntimeError):
    """No PostgreSQL cluster here: the reason (a missing driver or binaries, a failed initdb or start)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A fresh cluster on 127.0.0.1 for the duration of the block: ``postgresql://postgres@127.0.0.1:PORT/postgres``."""
    if importlib.util.find_spec("psycopg2") is None:
        raise Unavailable("psycopg2 is not installed: pip install 'zdim[postgres]'")
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        raise Unavailable(
            "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (apt-get install postgresql)"
        )
    bindir = Path(bins[-1]).parent
    root = os.geteuid() == 0
    if root and shutil.which("runuser") is None:
        raise Unavailable("running as root without runuser: cannot run initdb as the postgres user")
    as_pg = ["runuser", "-u", "postgres", "--"] if root else []
    tmp = tempfile.mkdtemp(prefix="zdim-pg-")
    if root:
        shutil.chown(tmp, "postgres")
    data, port = os.path.join(tmp, "data"), _free_port()

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*as_pg, *cmd], capture_output=True, text=True, timeout=120)

    try:
        r = run(str(bindir / "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        if r.returncode != 0:
            raise Unavailable(f"initdb failed: {r.stderr.strip()[-300:]}")
        options = f"-h 127.0.0.1 -p {port} -k {tmp}"
        r = run(
            str(bindir / "pg_ctl"), "-D", data, "-l", os.path.join(tmp, "log"), "-w", "-t", "60", "-o", options, "start"
        )
        if r.returncode != 0:
            raise Unavailable(f"PostgreSQL did not start: {r.stderr.strip()[-300:]}")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(str(bindir / "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
