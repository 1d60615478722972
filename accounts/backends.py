"""Password authentication by e-mail (case-insensitive) for active users of the current schema (not in
SSO-only mode, except for its break-glass Admins)."""

from django.contrib.auth.backends import ModelBackend

from accounts.models import User
from accounts.sso import sso_only_applies


class EmailPasswordBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        email = (username or kwargs.get("email") or "").strip()
        if not email or not password:
            return None
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            User().set_password(password)  # same cost as a real check: no user-enumeration by timing
            return None
        if user.check_password(password) and self.user_can_authenticate(user) and not sso_only_applies(user):
            return user
        return None

    def get_user(self, user_id):
        user = User.objects.filter(pk=user_id).first()
        return user if user is not None and self.user_can_authenticate(user) else None

    # Django's permission API is unused: rbac.permissions is the one matrix.
    def get_all_permissions(self, user_obj, obj=None):
        return set()

    def has_perm(self, user_obj, perm, obj=None):
        return False


def login_throttle_username(request, credentials: dict | None = None) -> str:
    """The e-mail django-axes counts failed log-ins under: the same however its letters are cased."""
    source = credentials if credentials else getattr(request, "POST", {})
    return str(source.get("username") or source.get("email") or "").strip().lower()


class SAMLSessionBackend(EmailPasswordBackend):
    """The backend a SAML log-in is recorded under (accounts.saml_views logs the person in after the
    assertion is verified). It authenticates nothing itself; it only reads the session's member back,
    and tells mozilla-django-oidc's session refresh that this session is not an OpenID one."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        return None


class WorkspaceOIDCBackendOnDemand:
    """The OpenID Connect backend as settings list it: it loads accounts.oidc (mozilla-django-oidc with
    requests, PyJWT and cryptography, about 20 MB resident) only for what needs it, an OpenID callback
    or a session that one began. A password log-in asks every backend and must not pay for it; nor
    must the desktop's always-on process, where SSO is rare."""

    def authenticate(self, request, **kwargs):
        if request is None or not request.GET.get("code") or not request.GET.get("state") or "nonce" not in kwargs:
            return None  # not an OpenID Connect callback
        from accounts.oidc import WorkspaceOIDCBackend

        return WorkspaceOIDCBackend().authenticate(request, **kwargs)

    def get_user(self, user_id):
        from accounts.oidc import WorkspaceOIDCBackend

        return WorkspaceOIDCBackend().get_user(user_id)
