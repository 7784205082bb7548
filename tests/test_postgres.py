"""Two sweep workers on one study in a real PostgreSQL server (a throwaway cluster on loopback)."""

from __future__ import annotations

import optuna
import pytest

from zdim.files import read_json
from zdim.sweeps.records.studies import storage_url

from .kill_scenario import POINTS, kill_round
from .pg_cluster import Unavailable, throwaway_postgres
from .test_scale import SMALL, nlls, records_per_key, zdim

pytestmark = pytest.mark.slow  # a PostgreSQL server per test session: `make test-fast` leaves it out


@pytest.fixture
def postgres_url():
    try:
        with throwaway_postgres() as url:
            yield url  # as a user would write it
    except Unavailable as e:
        pytest.skip(str(e))


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


def test_a_worker_killed_at_any_moment_loses_no_point_of_a_postgres_study(tmp_path, postgres_url):
    """Two run directories on one fresh PostgreSQL study each round; the first is killed -9 just after
    taking its first trial (reaped), then once it saved its second but before it told it (left unreaped);
    its --resume and the other worker end with 12 of 12 points complete, each recorded once, none
    trained twice, no finished folder retrained (benchmarks/bench_kill.py runs more rounds and moments)."""
    for n, (moment, finished) in enumerate((("start", 0), ("saved", 1))):
        r = kill_round(tmp_path / f"round{n}", postgres_url, f"kill{n}", finished=finished, moment=moment, reap=n == 0)
        assert not r.errors, (moment, r.errors)
        assert r.complete == {"a": POINTS, "b": POINTS}, (moment, r)
        assert r.recorded == POINTS and r.duplicates == 0, (moment, r)
        assert not r.twice and not r.retrained, (moment, r)
        assert r.ok, (moment, r)
