"""Domain errors of the job queue, each with the problem the API answers it with."""

from core.problems import DomainError, ProblemCode


class JobNotFound(DomainError):
    """No job with this id in this tenant (also when it exists in another tenant)."""

    status_code = 404
    code = ProblemCode.NOT_FOUND
    public_detail = "Not found."


class InvalidTransition(DomainError):
    """The job is not in a state that allows the requested change."""

    status_code = 409
    code = ProblemCode.INVALID_TRANSITION


class UnknownJobType(Exception):
    """No job type is registered under this public name."""


class IdempotencyConflict(DomainError):
    """The Idempotency-Key was already used with a different request."""

    status_code = 422
    code = ProblemCode.IDEMPOTENCY_KEY_REUSED
    public_detail = "This Idempotency-Key was already used with a different request."


class JobQuotaExceeded(DomainError):
    """The tenant already has as many unfinished jobs as ``JOBS_MAX_UNFINISHED_PER_TENANT``
    allows (or the jobs submitted would take it beyond)."""

    status_code = 409
    code = ProblemCode.JOB_QUOTA_EXCEEDED

    def __init__(self, quota: int):
        super().__init__(
            f"A tenant may have at most {quota} unfinished jobs, and these would go beyond: "
            "submit again once some have ended."
        )
