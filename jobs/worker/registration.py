"""What a worker registers about itself in the worker registry (``services.WorkerCard``):
its host, process id, pools and the version of the code it runs."""

import functools
import os
import shutil
import socket
import subprocess
import tomllib

from django.conf import settings

from jobs.services import WorkerCard
from jobs.worker.pools import Pool


@functools.cache
def code_version() -> str:
    """The project's version (``pyproject.toml``), with the commit of its git checkout when
    it is one (``0.1.0+698fb6b2a8d7``); ``unknown`` without a ``pyproject.toml``."""
    try:
        with (settings.BASE_DIR / "pyproject.toml").open("rb") as file:
            version = tomllib.load(file)["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        version = "unknown"
    git = shutil.which("git")
    if git is None:
        return version
    try:
        commit = subprocess.run(  # noqa: S603 - git found on PATH, constant arguments
            [git, "rev-parse", "--short=12", "HEAD"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version  # not a checkout (an image without .git), or git failed
    return f"{version}+{commit}" if commit else version


def worker_card(worker_id: str, pools: list[Pool]) -> WorkerCard:
    """This process's card, for a worker with ``pools``."""
    return WorkerCard(
        worker_id=worker_id,
        host=socket.gethostname(),
        pid=os.getpid(),
        pools={",".join(pool.queues): pool.concurrency for pool in pools},
        version=code_version(),
    )
