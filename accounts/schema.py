"""The authentication API's OpenAPI parts: the bearer scheme and the token pair."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers


class TenantJWTScheme(SimpleJWTScheme):
    """``Authorization: Bearer <access token>``, valid on its own tenant's host only."""

    target_class = "accounts.authentication.TenantJWTAuthentication"
    name = "jwtAuth"


TokenPairSerializer = inline_serializer(
    "TokenPair",
    {
        "access": serializers.CharField(
            help_text="JWT for `Authorization: Bearer …` on this tenant's host (5 minutes)."
        ),
        "refresh": serializers.CharField(
            help_text="JWT for /api/auth/token/refresh and /api/auth/logout; single use."
        ),
    },
)
