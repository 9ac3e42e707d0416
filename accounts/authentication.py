"""JWT authentication that binds a token to the tenant of the host it is presented on.

The token's user is read from a cached record (this process's memory, else Redis:
``core.row_cache``), so a warm poll pays no round trip for it. The record is dropped
whenever the user is saved or deleted (signals below, connected in ``AccountsConfig.ready``),
in every process, so a deactivated user is refused on the next request. It holds no
password hash (the field is deferred), and it expires after ``AUTH_USER_CACHE_SECONDS`` to
bound changes made by bulk UPDATEs, which send no signal.
"""

import time

from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework import exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings

from accounts.tokens import TENANT_CLAIM, is_job_read_token
from core import row_cache
from core.problems import Problem, ProblemCode


def _user_key(user_id) -> str:
    return f"api-user:{user_id}"


def cached_user(user_id):
    """The active-or-not user ``user_id`` (password deferred), or None if it doesn't exist."""
    return row_cache.read_through(
        _user_key(user_id),
        lambda: get_user_model().objects.defer("password").filter(pk=user_id).first(),
        settings.AUTH_USER_CACHE_SECONDS,
        label="user",
    )


def forget_user(sender, instance, **kwargs) -> None:
    """Signal receiver: drop the cached record of a saved or deleted user at once, and keep
    it out for a moment once the transaction commits (``core.row_cache.forget``)."""
    row_cache.forget([_user_key(instance.pk)], label="user")


def tenant_mismatch() -> Problem:
    return Problem(
        status_code=403,
        code=ProblemCode.TOKEN_TENANT_MISMATCH,
        detail="This token was issued for another tenant.",
    )


def user_for_tenant(user_id, tenant):
    """The token's user, refused unless it exists (401 ``user_not_found``), belongs to
    ``tenant`` (403 ``token_tenant_mismatch``) and is active (403 ``user_inactive``).
    Shared by API authentication and token refresh."""
    user = cached_user(user_id)
    if user is None:
        raise exceptions.AuthenticationFailed("User not found.", code=ProblemCode.USER_NOT_FOUND)
    if user.tenant_id != tenant.pk:
        raise tenant_mismatch()
    if not user.is_active:
        raise Problem(
            status_code=403, code=ProblemCode.USER_INACTIVE, detail="This user is inactive."
        )
    return user


# Access tokens this process has verified, by their exact bytes: the signature of the same
# bytes cannot stop verifying, so only the expiry is checked again. Access tokens are never
# revoked one by one (only refresh tokens are blacklisted), so nothing else can change.
_VERIFIED_MAX = 10_000
_verified: dict[bytes, tuple[float, object]] = {}  # raw token → (exp, validated token)


def _validated_token(authentication, raw_token: bytes):
    entry = _verified.get(raw_token)
    if entry is not None and time.time() < entry[0]:
        return entry[1]
    token = JWTAuthentication.get_validated_token(authentication, raw_token)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[raw_token] = (float(token["exp"]), token)
    return token


class TenantJWTAuthentication(JWTAuthentication):
    """simplejwt's signature and expiry checks, plus the tenant checks simplejwt lacks.

    - the token's ``tenant`` claim must equal ``request.tenant`` (403 ``token_tenant_mismatch``),
      checked before any database access;
    - the user must belong to that tenant and be active (``user_for_tenant``).
    An inactive tenant never gets here: the tenant middleware refuses its hosts.
    A token verified once is not verified again by this process until it expires.
    A job read token (``accounts.tokens.JobReadToken``) is no user's credential: it is
    answered as no token at all (None), never as an invalid one, so everywhere a read token
    does not apply the answer is exactly the anonymous one.
    """

    def get_validated_token(self, raw_token):
        return _validated_token(self, raw_token)

    def authenticate(self, request):
        header = self.get_header(request)
        if header is None:
            return None
        raw_token = self.get_raw_token(header)
        if raw_token is None:
            return None
        try:
            token = self.get_validated_token(raw_token)
        except InvalidToken:
            if is_job_read_token(raw_token):  # only looked at once a token fails (no cost)
                return None
            raise

        tenant = getattr(request, "tenant", None)
        if tenant is None or token.get(TENANT_CLAIM) != tenant.schema_name:
            raise tenant_mismatch()
        try:
            user_id = token[api_settings.USER_ID_CLAIM]
        except KeyError as exc:
            raise exceptions.AuthenticationFailed(
                "Token contained no recognizable user identification",
                code=ProblemCode.TOKEN_NOT_VALID,
            ) from exc
        return user_for_tenant(user_id, tenant), token
