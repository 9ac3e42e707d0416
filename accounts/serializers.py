"""Token endpoints that only issue, refresh and revoke tokens for the host's own tenant.

Every body is a JSON object of exactly the documented fields (``core.serializers``): an
unknown field is a 400, so a client learns at once that it was not used. The read-only
fields are the answers' keys, for the OpenAPI schema.
"""

from django.contrib.auth import authenticate
from rest_framework import exceptions, serializers
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import RefreshToken

from accounts import throttling
from accounts.authentication import tenant_mismatch, user_for_tenant
from accounts.tokens import TENANT_CLAIM, tokens_for
from core.problems import ProblemCode
from core.serializers import StrictSerializer

# A JWT of ours is a few hundred bytes; anything much longer is not one.
_TOKEN_MAX_LENGTH = 4096
_ACCESS_HELP = "JWT for `Authorization: Bearer …` on this tenant's host; short-lived."


class TenantTokenObtainPairSerializer(StrictSerializer):
    """``{username, password}`` → ``{access, refresh}`` for a user of ``request.tenant``.

    A user of another tenant gets the same 401 as a wrong password, so a login form can't
    be used to discover which usernames exist elsewhere. Each attempt reserves a unit of the
    username's budget before the password is checked (``accounts.throttling``; a successful
    login gives it back), and a spent budget is refused with 429.
    """

    # Stripped in ``validate``, as Django's login form strips it (a space pasted around a
    # username still logs in), but never to blank: a username of whitespace is one that
    # matches no user (401), as the schema's "any non-empty string" says, not a blank
    # field (400).
    username = serializers.CharField(max_length=150, trim_whitespace=False, write_only=True)
    password = serializers.CharField(max_length=1024, trim_whitespace=False, write_only=True)
    access = serializers.CharField(read_only=True, help_text=_ACCESS_HELP)
    refresh = serializers.CharField(
        read_only=True,
        help_text="JWT for /api/auth/token/refresh and /api/auth/logout; single use.",
    )

    def validate(self, attrs):
        request = self.context["request"]
        username = attrs["username"].strip() or attrs["username"]
        reservation = throttling.reserve_username(username)  # before the password hash
        user = authenticate(request=request, username=username, password=attrs["password"])
        if user is None or user.tenant_id != request.tenant.pk:
            raise exceptions.AuthenticationFailed(
                "No active account found with the given credentials.",
                code=ProblemCode.INVALID_CREDENTIALS,
            )
        reservation.refund()
        refresh = tokens_for(user)
        return {"access": str(refresh.access_token), "refresh": str(refresh)}


def _refresh_token_of_this_tenant(raw: str, request) -> RefreshToken:
    """The valid, unrevoked refresh token ``raw`` of ``request.tenant``: 401 if it is not a
    valid refresh token (forged, expired, revoked, an access token…), 403 if it was issued
    for another tenant."""
    try:
        refresh = RefreshToken(raw)
    except TokenError as exc:
        raise InvalidToken({"detail": str(exc), "code": ProblemCode.TOKEN_NOT_VALID}) from None
    if refresh.get(TENANT_CLAIM) != request.tenant.schema_name:
        raise tenant_mismatch()
    return refresh


class TenantTokenRefreshSerializer(StrictSerializer):
    """``{refresh}`` → ``{access, refresh}``: a new access token and a **rotated** refresh
    token; the one sent is revoked (blacklisted), so it cannot be used twice.

    The rotated token keeps the ``exp`` of the one sent, so a chain of refreshes ends
    ``JWT_REFRESH_TOKEN_SECONDS`` after the login however often it is refreshed, and the
    access token never outlives it: the session then needs the password again.

    Refused: a token of another tenant (403 ``token_tenant_mismatch``), a user who was
    deactivated (403 ``user_inactive``), moved to another tenant (403
    ``token_tenant_mismatch``) or deleted (401), and a token already used (401): the
    revocation is one ``INSERT`` guarded by a unique constraint, so of two concurrent
    refreshes with the same token only one wins.
    """

    refresh = serializers.CharField(
        max_length=_TOKEN_MAX_LENGTH,
        trim_whitespace=False,
        help_text="Sent: the refresh token, revoked by this call. Returned: its replacement.",
    )
    access = serializers.CharField(read_only=True, help_text=_ACCESS_HELP)

    def validate(self, attrs):
        request = self.context["request"]
        refresh = _refresh_token_of_this_tenant(attrs["refresh"], request)
        user_for_tenant(refresh.get(api_settings.USER_ID_CLAIM), request.tenant)

        _, revoked_now = refresh.blacklist()
        if not revoked_now:  # a concurrent refresh with this token got there first
            raise InvalidToken(
                {"detail": "Token is blacklisted", "code": ProblemCode.TOKEN_NOT_VALID}
            )
        refresh.set_jti()
        refresh.set_iat()  # "exp" is kept: the chain's end was fixed at the login
        access = refresh.access_token
        access["exp"] = min(access["exp"], refresh["exp"])
        return {"access": str(access), "refresh": str(refresh)}


class LogoutSerializer(StrictSerializer):
    """``{refresh}``: revoke this refresh token of the host's tenant."""

    refresh = serializers.CharField(max_length=_TOKEN_MAX_LENGTH, trim_whitespace=False)

    def validate(self, attrs):
        return {"token": _refresh_token_of_this_tenant(attrs["refresh"], self.context["request"])}

    def save(self):
        self.validated_data["token"].blacklist()
