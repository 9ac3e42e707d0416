"""The count every cluster scenario ends with, from what PostgreSQL recorded.

For the jobs of a scenario: how each ended (``job_queue``), how many final transitions each
had (``fault_finals``, written by a trigger), how many times its handler ran and with which
attempt (``fault_executions``, written by the handler at its end), how each earlier attempt
was closed (``job_attempt``: a lost lease, or a failure the handler raised, e.g. the
database gone mid-run), and where the handler's tenant writes landed (each run first writes
a ``Document`` titled ``<submitting tenant>:<job id>:<attempt>``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tests.cluster.stack import TENANTS, Cluster

_PER_JOB = """
SELECT j.id::text, j.status, j.attempts, j.result,
       (SELECT count(*) FROM fault_finals f WHERE f.job_id = j.id),
       (SELECT count(*) FROM fault_executions e WHERE e.job_id = j.id),
       (SELECT count(DISTINCT attempt) FROM fault_executions e WHERE e.job_id = j.id),
       (SELECT count(*) FROM job_attempt a WHERE a.job_id = j.id AND a.outcome = 'lost'),
       (SELECT count(*) FROM job_attempt a WHERE a.job_id = j.id AND a.outcome = 'retrying')
FROM job_queue j WHERE j.id = ANY(%s::uuid[])
"""


@dataclass
class Ledger:
    jobs: int
    completed: int
    lost: int  # submitted, and not completed
    ended_twice: int
    executions: int
    executions_beyond_first: int
    lost_leases: int
    failed_attempts: int  # the handler raised (the database was gone), retried
    unexplained_retries: int  # an attempt after the first with no lost lease or failure before
    same_attempt_twice: int  # a handler execution, or a tenant row, twice for one attempt
    result_not_from_owner: int  # completed with the result of a run that did not own it
    tenant_rows: int
    misplaced_rows: int

    def __str__(self) -> str:
        return ", ".join(f"{name} {value}" for name, value in asdict(self).items())

    def assert_exact(self) -> None:
        """Every job completed and ended exactly once; nothing ran twice unexplained; every
        tenant write in its own schema."""
        assert (self.completed, self.lost, self.ended_twice) == (self.jobs, 0, 0), self
        assert (self.unexplained_retries, self.same_attempt_twice) == (0, 0), self
        assert self.result_not_from_owner == 0, self
        assert self.tenant_rows >= self.executions, self  # every execution wrote its row
        assert self.misplaced_rows == 0, self


def count(cluster: Cluster, job_ids: list[str]) -> Ledger:
    rows = cluster.sql(_PER_JOB, [job_ids])
    assert len(rows) == len(job_ids)
    beyond_first = unexplained = same_attempt_twice = not_owner = lost = failed = 0
    for _id, status, attempts, result, _finals, runs, distinct, lost_here, failed_here in rows:
        lost += lost_here
        failed += failed_here
        beyond_first += max(0, runs - 1)
        # Every attempt after the first needs an earlier one that lost its lease or failed.
        unexplained += max(0, attempts - 1 - lost_here - failed_here)
        same_attempt_twice += runs - distinct
        if status == "completed" and result != {"attempt": attempts}:
            not_owner += 1
    wanted = set(job_ids)
    tenant_rows = misplaced = 0
    for schema in TENANTS:
        titles = [
            title.split(":")
            for (title,) in cluster.sql(f'SELECT title FROM "{schema}".documents_document')  # noqa: S608
        ]
        mine = [(tenant, job, attempt) for tenant, job, attempt in titles if job in wanted]
        tenant_rows += len(mine)
        misplaced += sum(1 for tenant, _job, _attempt in mine if tenant != schema)
        same_attempt_twice += len(mine) - len(set(mine))
    return Ledger(
        jobs=len(job_ids),
        completed=sum(1 for row in rows if row[1] == "completed"),
        lost=sum(1 for row in rows if row[1] != "completed"),
        ended_twice=sum(1 for row in rows if row[4] > 1),
        executions=sum(row[5] for row in rows),
        executions_beyond_first=beyond_first,
        lost_leases=lost,
        failed_attempts=failed,
        unexplained_retries=unexplained,
        same_attempt_twice=same_attempt_twice,
        result_not_from_owner=not_owner,
        tenant_rows=tenant_rows,
        misplaced_rows=misplaced,
    )
