"""A global limit's running units, as PostgreSQL sees them, sampled for a whole scenario.

``RunningUnits`` is a thread that asks the database host directly (not through the pooler,
not through a worker host's link) every ``interval`` seconds, in one statement and so one
snapshot: the units of the limit held by processing jobs (the engine's own count, as
admission's ``flow_admit`` of migration 0030 makes it), how many of those one worker
process holds, and how many jobs of the type wait. Each sample carries the test's
``time.monotonic()`` when it was taken, to be set against the moments of a cut and a mend.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

from tests.cluster.stack import DATABASE, Cluster

_SAMPLE = """
SELECT
  (SELECT coalesce(sum(held.units), 0) FROM job_queue r,
          unnest(r.limit_keys, r.limit_units) AS held(key, units)
   WHERE r.status = 'processing' AND held.key = %(key)s),
  (SELECT coalesce(sum(held.units), 0) FROM job_queue r,
          unnest(r.limit_keys, r.limit_units) AS held(key, units)
   WHERE r.status = 'processing' AND held.key = %(key)s AND r.worker_id LIKE %(worker)s),
  (SELECT count(*) FROM job_queue WHERE status = 'pending' AND type = %(type)s)
"""


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic() when the statement was sent
    running: int  # units of the limit held by processing jobs
    on_watched: int  # of which held by the watched worker process
    waiting: int  # pending jobs of the type


class RunningUnits:
    """Samples of the limit ``key`` consumed by ``job_type``; ``watched_pid``: the worker
    process whose share is counted apart. A context manager: sampling runs inside it; a
    failed sample fails the test on exit."""

    def __init__(
        self, cluster: Cluster, key: str, job_type: str, *, watched_pid: int, interval: float
    ):
        self.cluster = cluster
        self.params = {"key": key, "type": job_type, "worker": f"%-{watched_pid}-%"}
        self.interval = interval
        self.samples: list[Sample] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RunningUnits:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self.errors, self.errors[:3]

    def _run(self) -> None:
        try:
            with self.cluster.postgres.connect(database=DATABASE) as connection:
                while not self._stop.is_set():
                    at = time.monotonic()
                    running, on_watched, waiting = connection.execute(
                        _SAMPLE, self.params
                    ).fetchone()
                    with self._lock:
                        self.samples.append(Sample(at, running, on_watched, waiting))
                    self._stop.wait(max(0.0, at + self.interval - time.monotonic()))
        except BaseException as exc:  # reported by __exit__
            self.errors.append(exc)

    def between(self, start: float, end: float = float("inf")) -> list[Sample]:
        with self._lock:
            return [sample for sample in self.samples if start <= sample.at < end]

    def first(self, start: float, predicate) -> Sample | None:
        """The first sample taken from ``start`` on that satisfies ``predicate``."""
        return next((sample for sample in self.between(start) if predicate(sample)), None)

    def timeline(self, origin: float, start: float, end: float = float("inf")) -> str:
        """The samples from ``start`` to ``end``, as ``+seconds since origin: running
        (watched) waiting``, for a failure's message."""
        return ", ".join(
            f"{sample.at - origin:+.2f}: {sample.running} ({sample.on_watched}) {sample.waiting}"
            for sample in self.between(start, end)
        )

    def widest_gap(self) -> float:
        with self._lock:
            times = [sample.at for sample in self.samples]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)
