"""Token endpoints (login and refresh), open to anonymous clients of a tenant host."""

from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView


class TokenObtainView(TokenObtainPairView):
    """``POST /api/auth/token``: ``{username, password}`` → ``{access, refresh}``."""

    authentication_classes = ()


class TokenRefreshTenantView(TokenRefreshView):
    """``POST /api/auth/token/refresh``: ``{refresh}`` → ``{access}`` on the token's tenant host."""

    authentication_classes = ()
