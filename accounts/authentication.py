"""JWT authentication that binds a token to the tenant of the host it is presented on."""

from rest_framework import exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.settings import api_settings

from accounts.tokens import TENANT_CLAIM
from config.problems import Problem


def _tenant_mismatch() -> Problem:
    return Problem(
        status_code=403,
        code="token_tenant_mismatch",
        detail="This token was issued for another tenant.",
    )


class TenantJWTAuthentication(JWTAuthentication):
    """simplejwt's signature and expiry checks, plus the tenant checks simplejwt lacks.

    - the token's ``tenant`` claim must equal ``request.tenant`` (403 ``token_tenant_mismatch``),
      checked before any database access;
    - the user is loaded only within that tenant and must be active (403 ``user_inactive``).
    An inactive tenant never gets here: the tenant middleware refuses its hosts.
    """

    def authenticate(self, request):
        header = self.get_header(request)
        if header is None:
            return None
        raw_token = self.get_raw_token(header)
        if raw_token is None:
            return None
        token = self.get_validated_token(raw_token)

        tenant = getattr(request, "tenant", None)
        if tenant is None or token.get(TENANT_CLAIM) != tenant.schema_name:
            raise _tenant_mismatch()
        try:
            user_id = token[api_settings.USER_ID_CLAIM]
        except KeyError as exc:
            raise exceptions.AuthenticationFailed(
                "Token contained no recognizable user identification", code="token_not_valid"
            ) from exc
        user = self.user_model.objects.filter(pk=user_id).first()
        if user is None:
            raise exceptions.AuthenticationFailed("User not found.", code="user_not_found")
        if user.tenant_id != tenant.pk:
            raise _tenant_mismatch()
        if not user.is_active:
            raise Problem(status_code=403, code="user_inactive", detail="This user is inactive.")
        return user, token
