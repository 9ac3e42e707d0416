"""JWTs bound to a tenant: every access and refresh token carries a ``tenant`` claim."""

from rest_framework_simplejwt.tokens import RefreshToken

TENANT_CLAIM = "tenant"


def tokens_for(user) -> RefreshToken:
    """A refresh token for ``user`` (its ``.access_token`` inherits the tenant claim)."""
    refresh = RefreshToken.for_user(user)
    refresh[TENANT_CLAIM] = user.tenant.schema_name
    return refresh
