"""Domain errors of the job queue; ``config.errors`` maps them onto HTTP problems."""


class JobNotFound(Exception):
    """No job with this id in this tenant (also when it exists in another tenant)."""


class InvalidTransition(Exception):
    """The job is not in a state that allows the requested change."""


class UnknownJobType(Exception):
    """No job type is registered under this public name."""


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used with a different request."""
