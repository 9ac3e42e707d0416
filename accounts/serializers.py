"""Token endpoints that only issue and refresh tokens for the host's own tenant."""

from django.contrib.auth import authenticate
from rest_framework import exceptions, serializers
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.tokens import TENANT_CLAIM, tokens_for
from config.problems import Problem


class TenantTokenObtainPairSerializer(serializers.Serializer):
    """``{username, password}`` → ``{access, refresh}`` for a user of ``request.tenant``.

    A user of another tenant gets the same 401 as a wrong password, so a login form can't
    be used to discover which usernames exist elsewhere.
    """

    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=1024, trim_whitespace=False)

    def validate(self, attrs):
        request = self.context["request"]
        user = authenticate(request=request, username=attrs["username"], password=attrs["password"])
        if user is None or user.tenant_id != request.tenant.pk:
            raise exceptions.AuthenticationFailed(
                "No active account found with the given credentials.",
                code="invalid_credentials",
            )
        refresh = tokens_for(user)
        return {"access": str(refresh.access_token), "refresh": str(refresh)}


class TenantTokenRefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh, refused when the refresh token belongs to another tenant."""

    def validate(self, attrs):
        request = self.context["request"]
        refresh = RefreshToken(attrs["refresh"])
        if refresh.get(TENANT_CLAIM) != request.tenant.schema_name:
            raise Problem(
                status_code=403,
                code="token_tenant_mismatch",
                detail="This token was issued for another tenant.",
            )
        return super().validate(attrs)
