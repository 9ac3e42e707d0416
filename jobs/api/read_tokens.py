"""Job read tokens: ``POST /api/jobs?read_token=true`` answers with a ``Job-Read-Token``
header, a token that reads that one job and nothing else, for an email link, an embedded
widget or a second device (``accounts.tokens.JobReadToken``: the tenant, the job, expiry
``JWT_READ_TOKEN_MINUTES`` after issue, an audience of its own).

What it authorizes is decided here only (``JobReadTokenAuthentication``, installed on the
job's poll and stream views): a ``GET`` or ``HEAD`` of ``/api/jobs/{id}`` (poll, long poll)
or ``/api/jobs/{id}/events`` (stream) on its tenant's host, for the job it names, while that
job exists and the token has not expired. Any other request with it (another job, endpoint,
method or host; expired, tampered, its job deleted) is answered exactly as one without a
token: the users' authentication takes a read token for no token (``accounts.authentication``)
and this class, after it, returns None too. It comes second so that a user's poll, the hot
path, is not slowed by it.

The reader is ``request.user`` (``JobReader``): its ``pk``, ``job:<id>``, is the identity of
the rate limit and of the cap on concurrent waits, so every read token of a job shares one
budget (a replayed submit mints another token, never another budget), apart from any
user's. A stream or long poll checks the token's expiry and the tenant again while it lasts
(``jobs.api.realtime.grants``); the job cannot be deleted meanwhile: only final jobs are
deleted, and a stream ends at the final state while a long poll never waits on it.
"""

import uuid
from dataclasses import dataclass

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError

from accounts.tokens import JOB_CLAIM, TENANT_CLAIM, JobReadToken, is_job_read_token
from core import openapi
from core.serializers import MAX_REPORTED_ERRORS
from jobs import selectors
from jobs.exceptions import JobNotFound

READ_TOKEN_HEADER = "Job-Read-Token"  # noqa: S105 (names, not secrets)
READ_TOKEN_PARAMETER = "read_token"  # noqa: S105

# The submit's query parameter and response header, in its OpenAPI operation.
SUBMIT_PARAMETERS = [
    OpenApiParameter(
        READ_TOKEN_PARAMETER,
        str,
        OpenApiParameter.QUERY,
        enum=["true", "false"],
        description="`true`: answer with a `Job-Read-Token` for this job (another value: 400).",
    ),
    openapi.header(
        READ_TOKEN_HEADER,
        "With `?read_token=true`: a token that reads this job only, as "
        "`Authorization: Bearer <token>` on this host: `GET /api/jobs/{id}` (with `?wait=`) "
        "and `GET /api/jobs/{id}/events`. It expires JWT_READ_TOKEN_MINUTES after issue "
        "(its `exp`); anywhere else it is answered as no token.",
        [200, 202],
    ),
]


@dataclass(frozen=True)
class JobReader:
    """Who a read token authorizes: a reader of job ``job_id``, no user."""

    job_id: uuid.UUID
    is_authenticated = True

    @property
    def pk(self) -> str:
        """The rate-limit and wait-slot identity (a user's is its integer id)."""
        return f"job:{self.job_id}"


def wants_read_token(query_params) -> bool:
    """Whether a submit asks for a read token: ``?read_token=true``; ``false`` or absent:
    no; any other value, and any other query parameter (the submit takes no other), is 400
    ``invalid``, as an unknown body field is."""
    unknown = sorted(set(query_params) - {READ_TOKEN_PARAMETER})
    if unknown:
        raise serializers.ValidationError(
            {name: ["Unknown parameter."] for name in unknown[:MAX_REPORTED_ERRORS]}
        )
    value = query_params.get(READ_TOKEN_PARAMETER)
    if value not in (None, "true", "false"):
        raise serializers.ValidationError({READ_TOKEN_PARAMETER: ["Must be true or false."]})
    return value == "true"


def read_token_for(request, job) -> str:
    """A read token of ``job`` on the request's tenant host."""
    return str(JobReadToken.for_job(tenant_schema=request.tenant.schema_name, job_id=job.id))


class JobReadTokenAuthentication(JWTAuthentication):
    """Authenticates a read token for exactly the reads it grants (module docstring);
    returns None for every other request and every other token. Runs after the users'
    authentication, which answers for users' tokens and passes read tokens on."""

    def authenticate(self, request):
        header = self.get_header(request)
        raw_token = self.get_raw_token(header) if header is not None else None
        if raw_token is None or not is_job_read_token(raw_token):
            return None
        try:
            token = JobReadToken(raw_token)
        except TokenError:
            return None
        job_id = _requested_job(request)
        tenant = getattr(request, "tenant", None)
        if (
            job_id is None
            or tenant is None
            or token.get(TENANT_CLAIM) != tenant.schema_name
            or token.get(JOB_CLAIM) != str(job_id)
            or not _exists(tenant, job_id)
        ):
            return None
        return JobReader(job_id=job_id), token


class JobReadTokenScheme(SimpleJWTScheme):
    """The OpenAPI security scheme of read tokens (registered by defining it): a bearer JWT,
    offered beside ``jwtAuth`` on the operations that accept it."""

    target_class = "jobs.api.read_tokens.JobReadTokenAuthentication"
    name = "jobReadToken"

    def get_security_requirement(self, auto_schema):
        """Offered where the token applies, as ``_requested_job`` decides: a ``GET`` of the
        job's poll or stream."""
        if (
            auto_schema.method == "GET"
            and "{id}" in auto_schema.path
            and _reads_the_job(auto_schema.view)
        ):
            return super().get_security_requirement(auto_schema)
        return None

    def get_security_definition(self, auto_schema):
        return {
            **super().get_security_definition(auto_schema),
            "description": "A submit's `Job-Read-Token`: reads that one job (getJob, its long "
            "poll and streamJobEvents) on its tenant's host until it expires.",
        }


def _reads_the_job(view) -> bool:
    """Whether ``view`` reads the job itself: the job's poll (``JobViewSet.retrieve``) or
    its stream (``JobEventsView``, which has no action); never another action on the job,
    such as its logs."""
    return getattr(view, "action", None) in (None, "retrieve")


def _requested_job(request) -> uuid.UUID | None:
    """The job a ``GET`` or ``HEAD`` of the job's poll or stream names in its path (the
    view's ``pk``), else None."""
    if request.method not in ("GET", "HEAD"):
        return None
    if not _reads_the_job((request.parser_context or {}).get("view")):
        return None
    raw = (request.parser_context or {}).get("kwargs", {}).get("pk")
    try:
        return uuid.UUID(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def _exists(tenant, job_id: uuid.UUID) -> bool:
    try:
        selectors.job_get(tenant=tenant, job_id=job_id)
    except JobNotFound:
        return False
    return True
