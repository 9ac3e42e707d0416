"""Periodic platform work that registers itself with the worker, so the engine never
names the features that do it (Procrastinate's periodic deferrer, Zulip's
``@assign_queue``).

A feature decorates a function taking no argument with ``@periodic("name")`` in a module
its ``AppConfig.ready`` imports; every worker calls each registered function once per
reaper round (at start-up, then every ``JOBS_REAP_INTERVAL``), after the reaper, in the
order they registered. A function must be safe to run from many workers at once (lock or
``SKIP LOCKED``) and quick; an exception it raises reaches the worker's claim loop, which
treats a database error as an outage (reconnect, retry) like its own.
"""

from collections.abc import Callable

_registered: dict[str, Callable[[], object]] = {}


def periodic(name: str) -> Callable[[Callable[[], object]], Callable[[], object]]:
    """Register the decorated function as the periodic work ``name`` (registering a name
    again replaces it: a module imported twice registers once)."""

    def register(function: Callable[[], object]) -> Callable[[], object]:
        _registered[name] = function
        return function

    return register


def registered() -> dict[str, Callable[[], object]]:
    """The periodic work by name, in registration order."""
    return dict(_registered)


def run_registered() -> None:
    """Run every registered function once (the worker's reaper round)."""
    for function in list(_registered.values()):
        function()
