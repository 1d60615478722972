"""The base of every /api/v1 view: who is calling, which data set they act on (live or test), and
the permission each HTTP method needs."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from api.problems import ApiProblem
from core.actors import Actor, ActorType
from core.bounded_json import JsonTooDeep, json_depth_check
from rbac.permissions import PERMISSIONS, SCOPE_PERMISSIONS, has_permission

SAFE_ALIASES = {"HEAD": "GET"}


class ApiJSONParser(JSONParser):
    """JSON of at most DATA_UPLOAD_MAX_MEMORY_SIZE, nested at most core.bounded_json.MAX_DEPTH deep
    (deeper ends every recursive walk after it in a 500), minus what no database can store as text:
    unpaired UTF-16 surrogates (`"\\ud800"`)."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        length = request.META.get("CONTENT_LENGTH") if request is not None else None
        if length and length.isdigit() and int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise ApiProblem(
                413,
                "payload_too_large",
                f"The body is too large (at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 2**20} MB).",
            )
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - {JsonTooDeep()}") from None
        try:
            json_depth_check(data)
        except JsonTooDeep as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if not _encodable(data):
            raise ParseError("JSON parse error - texts must be valid Unicode (no unpaired surrogates).")
        return data


def _encodable(value) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    return True


class MergePatchParser(ApiJSONParser):
    """RFC 7396 bodies (`application/merge-patch+json`) are JSON too."""

    media_type = "application/merge-patch+json"


def caller_of(request: Request) -> Actor:
    """Who is calling: the API key the request authenticated with, else the console user."""
    auth = getattr(request, "auth", None)
    return Actor.of(auth if auth is not None and hasattr(auth, "as_actor") else request.user)


def livemode_of(request: Request) -> bool:
    """Test keys act on the sandbox data set (livemode=False); live keys and the console on live data."""
    actor = caller_of(request)
    return actor.livemode if actor.type == ActorType.API_KEY and actor.livemode is not None else True


def api_key_of(request: Request):
    """The API key the request authenticated with (None for the console's session)."""
    auth = getattr(request, "auth", None)
    return auth if caller_of(request).type == ActorType.API_KEY else None


class MethodPermission(BasePermission):
    """`view.permissions` maps each HTTP method to the rbac permission it needs (a role for console
    users, a scope for API keys: rbac.permissions.SCOPE_PERMISSIONS)."""

    message = "Not allowed."

    def has_permission(self, request, view) -> bool:
        method = SAFE_ALIASES.get(request.method, request.method)
        permission = view.permissions.get(method)
        if permission is None:
            return True  # OPTIONS, or a method the view does not serve (405 follows)
        if not has_permission(request.user, permission):
            self.message = _forbidden_message(request, permission)
            return False
        return True


def _forbidden_message(request, permission: str) -> str:
    if api_key_of(request) is not None:
        scopes = sorted(s for s, perms in SCOPE_PERMISSIONS.items() if permission in perms)
        return f"This API key lacks the scope this needs: {' or '.join(scopes)}."
    return f"Your role does not allow this ({permission})."


class ApiView(APIView):
    """Subclasses set `permissions = {"GET": "records.view", "POST": "records.edit", ...}`."""

    permissions: dict[str, str] = {}
    permission_classes = [IsAuthenticated, MethodPermission]
    parser_classes = [ApiJSONParser]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        unknown = set(cls.permissions.values()) - PERMISSIONS
        if unknown:
            raise KeyError(f"{cls.__name__}: unknown permissions {unknown}")

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        for name, values in request.query_params.lists():
            if "\x00" in name or any("\x00" in v for v in values):
                raise ApiProblem(400, "invalid_request", "Query parameters cannot contain NUL characters.", param=name)

    @property
    def livemode(self) -> bool:
        return livemode_of(self.request)

    def query_params_check(self, allowed: set[str]) -> None:
        """Refuse unknown query parameters instead of silently ignoring them (a typo'd filter would
        otherwise return everything)."""
        for name in self.request.query_params:
            if name not in allowed:
                raise ApiProblem(400, "unknown_parameter", f"Unknown query parameter `{name}`.", param=name)
