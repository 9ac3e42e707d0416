"""JWTs bound to a tenant: every access and refresh token carries a ``tenant`` claim.

Issuing a token writes nothing: simplejwt's blacklist app would record every refresh token
it issues (``OutstandingToken``, the token's full text), which costs a write per login and
keeps usable refresh tokens in the database. Revocation does not need that record: a
token is recorded only when it is revoked (rotation or logout), as a blacklisted ``jti``.

A login's refresh token expires ``JWT_REFRESH_TOKEN_SECONDS`` after it, and so does every
token rotated from it (``TenantTokenRefreshSerializer``): a session has an absolute end.

A job read token (``JobReadToken``) is a third kind: it names a job, not a user, and is
signed for an audience of its own (``read_token_audience()``), so no check of a user's
token (access or refresh) can accept it, and it accepts no user's token.
"""

from datetime import timedelta

import jwt
from django.conf import settings
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import BlacklistMixin, RefreshToken, Token

TENANT_CLAIM = "tenant"
JOB_CLAIM = "job"


def tokens_for(user) -> RefreshToken:
    """A refresh token for ``user`` (its ``.access_token`` inherits the tenant claim)."""
    # Token.for_user, skipping BlacklistMixin.for_user's OutstandingToken row (see above).
    refresh = super(BlacklistMixin, RefreshToken).for_user(user)
    refresh[TENANT_CLAIM] = user.tenant.schema_name
    return refresh


def read_token_audience() -> str:
    """The ``aud`` of job read tokens: the users' audience with a suffix, so the two kinds
    never verify as each other."""
    return f"{settings.JWT_AUDIENCE}:job-read"


class JobReadToken(Token):
    """A token that reads one job: claims ``tenant`` (schema name), ``job`` (its id),
    ``jti``, ``iat``, ``exp`` (``JWT_READ_TOKEN_MINUTES`` after issue), ``iss`` and the
    read audience; no user. Built with ``for_job``; ``JobReadToken(raw)`` verifies the
    signature, expiry, issuer, audience and type (``TokenError`` otherwise)."""

    token_type = "job_read"  # noqa: S105 (a claim value, not a secret)

    @property
    def lifetime(self) -> timedelta:
        return timedelta(minutes=settings.JWT_READ_TOKEN_MINUTES)

    def get_token_backend(self) -> TokenBackend:
        return TokenBackend(
            api_settings.ALGORITHM,
            api_settings.SIGNING_KEY,
            audience=read_token_audience(),
            issuer=api_settings.ISSUER,
            leeway=api_settings.LEEWAY,
        )

    @classmethod
    def for_job(cls, *, tenant_schema: str, job_id) -> "JobReadToken":
        token = cls()
        token[TENANT_CLAIM] = tenant_schema
        token[JOB_CLAIM] = str(job_id)
        return token


def is_job_read_token(raw) -> bool:
    """Whether ``raw`` says it is a job read token (its unverified ``aud``). Decides only
    which check a token goes to, never whether it is valid."""
    try:
        claims = jwt.decode(raw, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return False
    return isinstance(claims, dict) and claims.get("aud") == read_token_audience()
