"""OpenID Connect per workspace, on mozilla-django-oidc: the backend, the log-in views and the session
refresh middleware read the current workspace's own provider (accounts.models.SSOConfig), never global
settings.

mozilla-django-oidc reads its configuration through `get_settings(name)`; here that answers from the
workspace's SSOConfig (the tenant middleware has chosen the workspace before any of these run). On top
of the library: the ID token is checked in full (issuer, audience, expiry, signature by a key of the
issuer's JWKS — cached — with an algorithm the issuer announced; `alg: none` never), every failure is
turned into a reason shown to the person and kept in the audit log (never a 500), and who the answer
logs in is decided by accounts.identity, shared with SAML.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import jwt
import requests
from django.contrib import auth
from django.core.exceptions import SuspiciousOperation
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.middleware import SessionRefresh
from mozilla_django_oidc.utils import absolutify, import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts.identity import IdPAssertion, SSOLoginRefused, sso_login_failure_record, sso_login_resolve
from accounts.models import SSOConfig, SSOGroupRole, User
from accounts.sso import sso_config_enabled
from core import ssrf
from core.secrets_at_rest import secret_decrypt

logger = logging.getLogger(__name__)

# Algorithms an ID token may be signed with (asymmetric only: the client secret never signs here).
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
JWKS_TTL = 600.0  # seconds a JWKS is trusted before it is read again
JWKS_REFETCH_MIN = 30.0  # an unknown `kid` re-reads the JWKS (key rotation), at most this often
HTTP_TIMEOUT = 10.0
DOCUMENT_MAX_BYTES = 1_000_000  # a discovery document or JWKS
CALLBACK_ROUTE = "accounts:oidc_callback"


class OIDCNotConfigured(Exception):
    pass


def oidc_config_active(request=None) -> SSOConfig | None:
    config = sso_config_enabled(request)
    if config is None or config.protocol != SSOConfig.Protocol.OIDC:
        return None
    if not config.issuer or not config.discovery.get("authorization_endpoint"):
        return None
    return config


def redirect_uri(request) -> str:
    """The callback URL to register at the IdP (exact match) for this workspace's host."""
    return absolutify(request, reverse(CALLBACK_ROUTE))


def _setting_from(config: SSOConfig | None, name: str, *default):
    """mozilla-django-oidc's settings, answered from the workspace's provider."""
    if config is not None:
        found = {
            "OIDC_OP_AUTHORIZATION_ENDPOINT": lambda: config.discovery.get("authorization_endpoint"),
            "OIDC_OP_TOKEN_ENDPOINT": lambda: config.discovery.get("token_endpoint"),
            "OIDC_OP_USER_ENDPOINT": lambda: config.discovery.get("userinfo_endpoint"),
            "OIDC_OP_JWKS_ENDPOINT": lambda: config.discovery.get("jwks_uri"),
            "OIDC_RP_CLIENT_ID": lambda: config.client_id,
            "OIDC_RP_CLIENT_SECRET": lambda: (
                secret_decrypt(config.client_secret_encrypted) if config.client_secret_encrypted else ""
            ),
            "OIDC_RP_SIGN_ALGO": lambda: "RS256",
            "OIDC_RP_SCOPES": lambda: config.scopes or "openid email profile",
        }.get(name)
        if found is not None:
            return found()
    elif name.startswith(("OIDC_OP_", "OIDC_RP_")):
        raise OIDCNotConfigured(name)
    return import_from_settings(name, *default)


# --- discovery and keys ---------------------------------------------------------------------------


class DiscoveryError(Exception):
    """The issuer's discovery document or keys could not be read or are unusable; says why."""


@dataclass(frozen=True)
class DiscoveryResult:
    document: dict
    key_count: int
    algorithms: list[str]
    end_session: bool


def _document_get(url: str, what: str) -> dict:
    """A JSON document from the IdP, through the SSRF guard (public addresses only, unless allowed)."""
    try:
        fetched = ssrf.url_get(url, timeout=HTTP_TIMEOUT, max_bytes=DOCUMENT_MAX_BYTES, accept="application/json")
    except ssrf.AddressRefused as exc:
        raise DiscoveryError(f"{what} at {url} is not allowed: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise DiscoveryError(f"{url} could not be reached ({exc.__class__.__name__}).") from exc
    if fetched.status != 200:
        raise DiscoveryError(f"{url} answered HTTP {fetched.status}, not {what}.")
    try:
        document = json.loads(fetched.body)
    except ValueError as exc:
        raise DiscoveryError(f"{url} did not answer JSON.") from exc
    if not isinstance(document, dict):
        raise DiscoveryError(f"{url} did not answer a JSON object.")
    return document


def oidc_discover(issuer: str) -> DiscoveryResult:
    """Read `<issuer>/.well-known/openid-configuration` and its JWKS, as "Test connection" shows them.
    The issuer and every endpoint it names must be public addresses (core.ssrf): a workspace's Admin
    cannot point Tessera's servers at its internal network or the cloud's metadata service."""
    issuer = issuer.strip().rstrip("/")
    url = issuer + "/.well-known/openid-configuration"
    document = _document_get(url, "the discovery document")
    if document.get("issuer", "").rstrip("/") != issuer:
        raise DiscoveryError(
            f"The discovery document names the issuer {document.get('issuer')!r}, not {issuer!r}: "
            "enter the issuer URL exactly as the provider states it."
        )
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not document.get(k)]
    if missing:
        raise DiscoveryError(f"The discovery document lacks {', '.join(missing)}.")
    for name in ("token_endpoint", "userinfo_endpoint", "end_session_endpoint"):
        if document.get(name):
            try:
                ssrf.target_resolve(str(document[name]))
            except ssrf.AddressRefused as exc:
                raise DiscoveryError(f"The provider's {name} is not allowed: {exc.reason}") from exc
    algorithms = [
        a for a in document.get("id_token_signing_alg_values_supported", ["RS256"]) if a in SIGNING_ALGORITHMS
    ]
    if not algorithms:
        raise DiscoveryError("The provider signs ID tokens with no algorithm Tessera accepts (RS256, ES256, …).")
    keys = _jwks_fetch(document["jwks_uri"])
    return DiscoveryResult(document, len(keys.keys), algorithms, bool(document.get("end_session_endpoint")))


_jwks_cache: dict[str, tuple[float, jwt.PyJWKSet]] = {}
_jwks_lock = threading.Lock()


def _jwks_fetch(uri: str) -> jwt.PyJWKSet:
    document = _document_get(uri, "the provider's keys (JWKS)")
    try:
        keys = jwt.PyJWKSet.from_dict(document)
    except (ValueError, jwt.PyJWKSetError) as exc:
        raise DiscoveryError(f"The provider's keys (JWKS) could not be read at {uri}.") from exc
    with _jwks_lock:
        _jwks_cache[uri] = (time.monotonic(), keys)
    return keys


def _jwk_for(uri: str, kid: str | None, alg: str) -> jwt.PyJWK:
    now = time.monotonic()
    cached = _jwks_cache.get(uri)
    keys = cached[1] if cached and now - cached[0] < JWKS_TTL else _jwks_fetch(uri)
    found = _jwk_pick(keys, kid, alg)
    if found is None and (cached is None or now - cached[0] >= JWKS_REFETCH_MIN):
        found = _jwk_pick(_jwks_fetch(uri), kid, alg)  # the provider may have rotated its keys
    if found is None:
        raise SuspiciousOperation("The ID token is signed by a key the identity provider does not publish.")
    return found


def _jwk_pick(keys: jwt.PyJWKSet, kid: str | None, alg: str) -> jwt.PyJWK | None:
    for key in keys.keys:
        if kid is not None and key.key_id != kid:
            continue
        if key.algorithm_name and key._jwk_data.get("alg") and key._jwk_data["alg"] != alg:
            continue
        return key
    return None


# --- the backend ----------------------------------------------------------------------------------

_http = threading.local()


def _idp_session() -> requests.Session:
    """This thread's HTTP session to identity providers: the connection to the token and userinfo
    endpoints is kept alive between log-ins (a TCP and TLS handshake less per log-in)."""
    session = getattr(_http, "session", None)
    if session is None:
        session = _http.session = requests.Session()
    return session


class SSOFailure(Exception):
    def __init__(self, reason: str, code: str):
        super().__init__(reason)
        self.reason, self.code = reason, code


class WorkspaceOIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, on the current workspace's provider (read when a callback comes)."""

    def __init__(self, *args, **kwargs):
        self.config: SSOConfig | None = None
        self.UserModel = User

    def get_settings(self, name, *default):
        return _setting_from(self.config, name, *default)

    def _configure(self, request) -> None:
        self.config = oidc_config_active(request)
        if self.config is None:
            raise SSOFailure("Single sign-on is not set up for this workspace.", "not_configured")
        for name in (
            "OIDC_OP_TOKEN_ENDPOINT",
            "OIDC_OP_USER_ENDPOINT",
            "OIDC_OP_JWKS_ENDPOINT",
            "OIDC_RP_CLIENT_ID",
            "OIDC_RP_CLIENT_SECRET",
            "OIDC_RP_SIGN_ALGO",
        ):
            setattr(self, name, self.get_settings(name, None))
        self.OIDC_RP_IDP_SIGN_KEY = None

    def authenticate(self, request, **kwargs):
        if request is None or not request.GET.get("code") or not request.GET.get("state") or "nonce" not in kwargs:
            return None  # not an OpenID Connect callback (a password log-in asks every backend)
        try:
            self._configure(request)
            return super().authenticate(request, **kwargs)
        except SSOFailure as exc:
            request.sso_failure = exc
        except SSOLoginRefused as exc:
            request.sso_failure = SSOFailure(exc.message, exc.code)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            error = _oauth_error(exc.response)
            request.sso_failure = SSOFailure(
                f"The identity provider refused the sign-in code (HTTP {status} {error}).".replace(" )", ")"),
                "code_refused",
            )
        except requests.RequestException as exc:
            request.sso_failure = SSOFailure(
                f"The identity provider could not be reached ({exc.__class__.__name__}).", "idp_unreachable"
            )
        except jwt.ExpiredSignatureError:
            request.sso_failure = SSOFailure("The identity provider's ID token has expired.", "token_expired")
        except jwt.InvalidAudienceError:
            request.sso_failure = SSOFailure(
                "The ID token was issued for another application (wrong audience).", "wrong_audience"
            )
        except jwt.InvalidIssuerError:
            request.sso_failure = SSOFailure(
                "The ID token was issued by another identity provider than this workspace's.", "wrong_issuer"
            )
        except jwt.InvalidSignatureError:
            request.sso_failure = SSOFailure(
                "The ID token's signature does not match the identity provider's keys.", "bad_signature"
            )
        except (jwt.InvalidTokenError, SuspiciousOperation, DiscoveryError, ValueError) as exc:
            request.sso_failure = SSOFailure(str(exc) or "The ID token is not valid.", "invalid_token")
        return None

    def verify_token(self, token, **kwargs):
        """The ID token checked in full: alg announced by the issuer, key from its JWKS, iss, aud, exp,
        iat, azp and the nonce of this log-in (mozilla-django-oidc checks only signature and nonce)."""
        if not token:
            raise SuspiciousOperation("The identity provider returned no ID token.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise SuspiciousOperation("The ID token is not a signed JWT.") from exc
        alg = header.get("alg")
        allowed = [
            a
            for a in self.config.discovery.get("id_token_signing_alg_values_supported", ["RS256"])
            if a in SIGNING_ALGORITHMS
        ]
        if alg not in allowed:
            raise SuspiciousOperation(f"The ID token is signed with {alg!r}, which is not accepted.")
        key = _jwk_for(self.OIDC_OP_JWKS_ENDPOINT, header.get("kid"), alg)
        payload = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=self.OIDC_RP_CLIENT_ID,
            issuer=self.config.issuer.rstrip("/"),
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            leeway=30,
        )
        audiences = payload["aud"] if isinstance(payload["aud"], list) else [payload["aud"]]
        if len(audiences) > 1 and payload.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("The ID token was issued for another application (azp).")
        nonce = kwargs.get("nonce")
        if "nonce" in kwargs and (not nonce or payload.get("nonce") != nonce):
            raise SuspiciousOperation("The ID token does not belong to this sign-in (nonce mismatch: a replay?).")
        return payload

    def get_token(self, payload):
        """The token request, as mozilla-django-oidc makes it but on a kept-alive connection, with a
        timeout (the library's default has none), and following no redirect (the SSRF guard vetted
        the token endpoint when it was discovered, not wherever it might redirect)."""
        response = _idp_session().post(
            self.OIDC_OP_TOKEN_ENDPOINT, data=payload, timeout=HTTP_TIMEOUT, allow_redirects=False
        )
        self.raise_token_response_error(response)
        return response.json()

    def get_userinfo(self, access_token, id_token, payload):
        """The ID token's claims, completed by the userinfo endpoint when the provider has one and the
        ID token lacks a claim this log-in uses (its `sub` must be the ID token's). A provider that
        puts them in the ID token saves a round trip per log-in (bench/sso)."""
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT and access_token and self._claims_missing(claims):
            response = _idp_session().get(
                self.OIDC_OP_USER_ENDPOINT,
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=HTTP_TIMEOUT,
                allow_redirects=False,
            )
            response.raise_for_status()
            info = response.json()
            if not isinstance(info, dict) or info.get("sub") != payload.get("sub"):
                raise SuspiciousOperation("The userinfo answer is about someone else (sub mismatch).")
            claims.update(info)
        return claims

    def _claims_missing(self, claims: dict) -> bool:
        config = self.config
        needed = [config.claim_email or "email", config.claim_name or "name"]
        if (config.claim_email or "email") == "email":
            needed.append("email_verified")
        if config.claim_groups and SSOGroupRole.objects.exists():  # groups decide nothing without a mapping
            needed.append(config.claim_groups)
        return any(name not in claims for name in needed)

    def get_or_create_user(self, access_token, id_token, payload):
        claims = self.get_userinfo(access_token, id_token, payload)
        config = self.config
        groups = claims.get(config.claim_groups) if config.claim_groups else None
        if isinstance(groups, str):
            groups = [groups]
        verified = claims.get("email_verified")
        assertion = IdPAssertion(
            issuer=config.issuer.rstrip("/"),
            subject=str(claims.get("sub") or ""),
            email=str(claims.get(config.claim_email or "email") or ""),
            email_verified=verified is True or str(verified).lower() == "true",
            name=str(claims.get(config.claim_name or "name") or ""),
            groups=[str(g) for g in groups] if isinstance(groups, list) else None,
            protocol=SSOConfig.Protocol.OIDC,
        )
        return sso_login_resolve(config=config, assertion=assertion)

    def get_user(self, user_id):
        user = self.UserModel.objects.filter(pk=user_id).first()
        return user if user is not None and user.is_active else None

    def get_all_permissions(self, user_obj, obj=None):
        return set()

    def has_perm(self, user_obj, perm, obj=None):
        return False


def _oauth_error(response) -> str:
    """The OAuth `error` code of a token endpoint's refusal, if its body says one."""
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        return ""
    return str(body.get("error", ""))[:80] if isinstance(body, dict) else ""


# --- the views ------------------------------------------------------------------------------------


def sso_failure_page(request, reason: str, *, code: str, status: int = 403, email: str = "", protocol: str = "oidc"):
    """A clear refusal page (and its audit event); never a 500."""
    sso_login_failure_record(reason=f"{code}: {reason}", email=email, protocol=protocol)
    return render(request, "accounts/sso_failed.html", {"reason": reason, "code": code}, status=status)


class WorkspaceOIDCRequestView(OIDCAuthenticationRequestView):
    """Start a log-in at the workspace's provider: state, nonce and PKCE kept in the session."""

    def __init__(self, *args, **kwargs):
        self.config = oidc_config_active()

    def get_settings(self, name, *default):
        return _setting_from(self.config, name, *default)

    @property
    def OIDC_OP_AUTH_ENDPOINT(self):
        return self.get_settings("OIDC_OP_AUTHORIZATION_ENDPOINT")

    @property
    def OIDC_RP_CLIENT_ID(self):
        return self.get_settings("OIDC_RP_CLIENT_ID")

    def get(self, request):
        if self.config is None:
            return sso_failure_page(
                request, "Single sign-on is not set up for this workspace.", code="not_configured", status=404
            )
        return super().get(request)

    def get_extra_params(self, request):
        hint = request.GET.get("login_hint", "")[:254]
        return {"login_hint": hint} if hint else {}


class WorkspaceOIDCCallbackView(OIDCAuthenticationCallbackView):
    """Where the provider sends the person back: log in, or a page that says why not."""

    def get_settings(self, name, *default):
        return import_from_settings(name, *default)

    def get(self, request):
        error = request.GET.get("error")
        state = request.GET.get("state")
        states = request.session.get("oidc_states") or {}
        if not error and (not request.GET.get("code") or not state):
            return sso_failure_page(request, "This sign-in link is incomplete.", code="bad_request", status=400)
        if not error and state not in states:
            return sso_failure_page(
                request,
                "This sign-in was not started here, or was already used (unknown or replayed state). Start again.",
                code="bad_state",
                status=400,
            )
        response = super().get(request)
        if error:
            description = request.GET.get("error_description", "")[:200]
            return sso_failure_page(
                request,
                f"The identity provider did not sign you in ({error}{': ' + description if description else ''}).",
                code="idp_error",
            )
        if getattr(self, "user", None) is None or not self.user.is_active:
            failure = getattr(request, "sso_failure", None) or SSOFailure("The sign-in was refused.", "refused")
            return sso_failure_page(request, failure.reason, code=failure.code)
        return response

    def login_success(self):
        response = super().login_success()
        self.request.session["sso_logged_in_at"] = timezone.now().isoformat()
        return response


def oidc_logout_url(request) -> str | None:
    """Where log-out sends a person who signed in with the provider: its end_session_endpoint (ending
    the IdP's session too), or None when the provider has none."""
    id_token = request.session.get("oidc_id_token")
    if not id_token:
        return None
    config = oidc_config_active()
    endpoint = config.discovery.get("end_session_endpoint") if config else None
    if not endpoint:
        return None
    params = {
        "id_token_hint": id_token,
        "client_id": config.client_id,
        "post_logout_redirect_uri": absolutify(request, reverse("accounts:login")),
    }
    return f"{endpoint}?{urlencode(params)}"


class WorkspaceSessionRefresh(SessionRefresh):
    """mozilla-django-oidc's session refresh, per workspace: when the ID token's time is up, the person
    is sent to the provider with `prompt=none`; if the provider no longer knows them, the callback
    gets `login_required` and the session ends."""

    def __init__(self, get_response):
        self._config_cache = threading.local()
        super(SessionRefresh, self).__init__(get_response)  # MiddlewareMixin only: no settings read now
        self.OIDC_EXEMPT_URLS = import_from_settings("OIDC_EXEMPT_URLS", [])
        self.OIDC_STATE_SIZE = 32
        self.OIDC_AUTHENTICATION_CALLBACK_URL = CALLBACK_ROUTE
        self.OIDC_USE_NONCE = True
        self.OIDC_NONCE_SIZE = 32

    @property
    def _config(self):
        return getattr(self._config_cache, "config", None)

    def get_settings(self, name, *default):
        return _setting_from(self._config, name, *default)

    @property
    def OIDC_OP_AUTHORIZATION_ENDPOINT(self):
        return self.get_settings("OIDC_OP_AUTHORIZATION_ENDPOINT")

    @property
    def OIDC_RP_CLIENT_ID(self):
        return self.get_settings("OIDC_RP_CLIENT_ID")

    @property
    def OIDC_RP_SCOPES(self):
        return self.get_settings("OIDC_RP_SCOPES", "openid email")

    def process_request(self, request):
        if not self.is_refreshable_url(request):
            return None
        if request.session.get("oidc_id_token_expiration", 0) > time.time():
            return None
        self._config_cache.config = oidc_config_active()
        try:
            if self._config is None:  # SSO was switched off since: the session ends with it
                auth.logout(request)
                return None
            return super().process_request(request)
        finally:
            self._config_cache.config = None

    def is_refreshable_url(self, request):
        """A GET of a session the workspace's OpenID provider began (accounts.middleware.OIDCSessionRefresh
        sends only those here; the session names the on-demand backend, which mozilla-django-oidc's own
        check, a subclass of its backend, would not recognise)."""
        return (
            request.method == "GET"
            and request.user.is_authenticated
            and request.path not in self.exempt_urls
            and not any(pattern.match(request.path) for pattern in self.exempt_url_patterns)
        )

    @property
    def exempt_urls(self):
        return {
            reverse("accounts:oidc_login"),
            reverse(CALLBACK_ROUTE),
            reverse("accounts:logout"),
            *[u for u in self.OIDC_EXEMPT_URLS if isinstance(u, str)],
        }
