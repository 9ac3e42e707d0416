"""The authentication API's OpenAPI part: the bearer scheme (registered on import, from
``AccountsConfig.ready``). The token endpoints' shapes are their serializers'."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class TenantJWTScheme(SimpleJWTScheme):
    """``Authorization: Bearer <access token>``, valid on its own tenant's host only."""

    target_class = "accounts.authentication.TenantJWTAuthentication"
    name = "jwtAuth"
