"""JWTs bound to a tenant: every access and refresh token carries a ``tenant`` claim.

Issuing a token writes nothing: simplejwt's blacklist app would record every refresh token
it issues (``OutstandingToken``, the token's full text), which costs a write per login and
keeps usable refresh tokens in the database. Revocation does not need that record: a
token is recorded only when it is revoked (rotation or logout), as a blacklisted ``jti``.

A login's refresh token expires ``JWT_REFRESH_TOKEN_SECONDS`` after it, and so does every
token rotated from it (``TenantTokenRefreshSerializer``): a session has an absolute end.
"""

from rest_framework_simplejwt.tokens import BlacklistMixin, RefreshToken

TENANT_CLAIM = "tenant"


def tokens_for(user) -> RefreshToken:
    """A refresh token for ``user`` (its ``.access_token`` inherits the tenant claim)."""
    # Token.for_user, skipping BlacklistMixin.for_user's OutstandingToken row (see above).
    refresh = super(BlacklistMixin, RefreshToken).for_user(user)
    refresh[TENANT_CLAIM] = user.tenant.schema_name
    return refresh
