"""zdim sets OpenMP's wait policy to passive on import (threads that spin collapse on shared cores)."""

import os
import subprocess
import sys

CODE = "import zdim, os; print(os.environ['OMP_WAIT_POLICY'])"


def _policy(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_sets_passive_wait_policy_when_unset():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy(env) == "PASSIVE"


def test_a_policy_the_user_set_wins():
    assert _policy(dict(os.environ, OMP_WAIT_POLICY="ACTIVE")) == "ACTIVE"
