"""Token endpoints (login, refresh, logout), open to anonymous clients of a tenant host."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework_simplejwt.settings import api_settings

from accounts import throttling
from accounts.serializers import (
    LogoutSerializer,
    TenantTokenObtainPairSerializer,
    TenantTokenRefreshSerializer,
)
from core import openapi


class _TokenView(GenericAPIView):
    """Anonymous POST endpoints whose serializer's ``validated_data`` is the answer."""

    authentication_classes = ()
    permission_classes = ()

    def get_authenticate_header(self, request):
        # A 401 stays a 401 (DRF turns it into 403 when no header can be named).
        return f'{api_settings.AUTH_HEADER_TYPES[0]} realm="api"'

    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data)


@extend_schema_view(post=extend_schema(operation_id="login"))
@extend_schema(
    summary="Log in",
    description=(
        "Tokens for a user of this host's tenant. Limited per client IP (every attempt) and "
        "per username (failed attempts, across all tenants' hosts): 429 with Retry-After."
    ),
    request=TenantTokenObtainPairSerializer,
    responses={
        200: TenantTokenObtainPairSerializer,
        **openapi.problems(400, 401, 403, 404, 413, 415, 429),
    },
    auth=[],
    tags=["auth"],
)
class TokenObtainView(_TokenView):
    """``POST /api/auth/token``: ``{username, password}`` → ``{access, refresh}``."""

    serializer_class = TenantTokenObtainPairSerializer

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        throttling.check_client_ip(request)  # before the body is parsed: every try counts


@extend_schema_view(post=extend_schema(operation_id="refreshToken"))
@extend_schema(
    summary="Refresh tokens",
    description=(
        "A new access token and a new refresh token; the refresh token sent is revoked and "
        "answers 401 if used again. The new tokens expire no later than the one sent: a "
        "session ends a refresh-token lifetime after the login, however often it refreshes."
    ),
    request=TenantTokenRefreshSerializer,
    responses={
        200: TenantTokenRefreshSerializer,
        **openapi.problems(400, 401, 403, 404, 413, 415),
    },
    auth=[],
    tags=["auth"],
)
class TokenRefreshTenantView(_TokenView):
    """``POST /api/auth/token/refresh``: ``{refresh}`` → ``{access, refresh}`` (rotated) on
    the token's tenant host."""

    serializer_class = TenantTokenRefreshSerializer


@extend_schema_view(post=extend_schema(operation_id="logout"))
@extend_schema(
    summary="Log out",
    description=(
        "Revokes the refresh token (204). Access tokens already issued stay valid until they "
        "expire (minutes)."
    ),
    request=LogoutSerializer,
    responses={
        204: openapi.NO_CONTENT,
        **openapi.problems(400, 401, 403, 404, 413, 415),
    },
    auth=[],
    tags=["auth"],
)
class LogoutView(_TokenView):
    """``POST /api/auth/logout``: ``{refresh}`` → 204; the refresh token is revoked."""

    serializer_class = LogoutSerializer

    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(status=status.HTTP_204_NO_CONTENT)
