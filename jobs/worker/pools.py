"""The worker's pools: runner threads serving some queues, with their own concurrency and
claims, and how ``run_worker --queues`` names them."""

import dataclasses
import queue


@dataclasses.dataclass(eq=False)
class Pool:
    """Runner threads serving some queues, with their own concurrency and claims."""

    queues: tuple[str, ...]
    concurrency: int
    work: queue.Queue = dataclasses.field(default_factory=queue.Queue)
    recent_duration: float | None = None  # moving average of handler run times, seconds
    # Jobs may be claimable in its queues: its last claim filled every free thread, or since
    # then a NOTIFY for one of its queues, the poll interval, a reaper's requeue or an
    # outcome written for one of its runs. A pool without sends no claim when another
    # pool's thread frees up.
    maybe_work: bool = True
    # time.monotonic() when a rate budget that held back its last claim's jobs has a token
    # again (flow control): it claims then, without waiting for the poll interval.
    retry_at: float | None = None


def parse_pools(queues, concurrency: int) -> list[Pool]:
    """Pools from queue specs: ``"name:N"`` is a pool of N threads for that queue; plain
    names share one pool of ``concurrency`` threads. Raises ``ValueError`` for a queue
    named twice, an empty name or a count below 1."""
    shared, pools, seen = [], [], set()
    for spec in queues:
        name, sep, count = spec.strip().partition(":")
        name = name.strip()
        if not name or name in seen:
            raise ValueError(f"queue {name!r} is empty or named twice")
        seen.add(name)
        if not sep:
            shared.append(name)
            continue
        if not count.strip().isdigit() or int(count) < 1:
            raise ValueError(f"queue {name!r}: the concurrency must be a whole number >= 1")
        pools.append(Pool(queues=(name,), concurrency=int(count)))
    if shared:
        pools.insert(0, Pool(queues=tuple(shared), concurrency=max(1, concurrency)))
    if not pools:
        raise ValueError("no queue to take jobs from")
    return pools
