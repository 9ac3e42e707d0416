"""Worker writes as tests make them one job at a time."""

from jobs import services


def job_complete(*, job_id, worker_id: str, result) -> bool:
    """Record one handler's result as the worker's outcome writer records a batch
    (``services.jobs_complete``); False when ``worker_id`` no longer owns the job or its
    cancellation was requested."""
    return job_id in services.jobs_complete(worker_id=worker_id, results=[(job_id, result)])
