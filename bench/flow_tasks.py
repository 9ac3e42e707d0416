"""Job handlers of make bench's flow-control part (bench/flow.py), registered as job types
by bench/flow_settings.py: a no-op and a job that holds its worker slot for a while."""

import time

from django.tasks import task


@task(takes_context=True)
def noop(context, **payload):
    """``bench.noop``, ``bench.rated``, ``bench.limited``: returns at once, writes nothing."""
    return {}


@task(takes_context=True)
def hold(context, seconds: float = 1.0, **payload):
    """``bench.second``: holds its worker slot for ``seconds`` (default one), as a call to a
    slow provider would, then returns."""
    time.sleep(seconds)
    return {}
