"""`Authorization: Bearer tsk_…` for the REST API. Keys live in the tenant's own data, so a key of
tenant A is simply unknown on tenant B's host."""

from __future__ import annotations

import hashlib

from django.http import HttpRequest
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from partners import keycache
from partners.models import ApiKey

KEY_PREFIXES = ("tsk_live_", "tsk_test_")


def key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _key_read(tenant_id, digest: str, generation: str | None) -> ApiKey | None:
    """From the database; remembered for later requests when `generation` (read before) is known."""
    key = ApiKey.objects.filter(key_hash=digest).first()
    if key is not None and generation is not None and tenant_id is not None:
        keycache.entry_put(tenant_id, digest, key, generation)
    return key


def api_key_lookup(request: HttpRequest, raw: str) -> ApiKey | None:
    """The key whose raw value is `raw`, active or not. Looked up once per request: the rate
    limiter (partners.ratelimit) asks before the view runs, authentication again inside it. A key this
    process remembers (partners.keycache) costs no query; the rate limiter then confirms it
    (api_key_confirm) before anything relies on it."""
    digest = key_hash(raw)
    memo = getattr(request, "_tessera_api_key", None)
    if memo is not None and memo[0] == digest:
        return memo[1]
    tenant = getattr(request, "tenant", None)
    tenant_id = tenant.pk if tenant is not None else None
    entry = keycache.entry_get(tenant_id, digest) if tenant_id is not None else None
    if entry is not None:
        key, generation = entry
    else:
        generation = keycache.generation_read(tenant_id) if tenant_id is not None else None
        key = _key_read(tenant_id, digest, generation)
    request._tessera_api_key = (digest, key, generation, entry is None)
    return key


def api_key_confirm(request: HttpRequest, generation: str | None) -> ApiKey | None:
    """Read the request's key again unless the workspace's key generation is still `generation` (as
    read by the rate limiter, after the key was): a key revoked or rotated meanwhile is seen at once."""
    memo = getattr(request, "_tessera_api_key", None)
    if memo is None or memo[1] is None:
        return None
    digest, key, known, fresh = memo
    if generation == known and (generation is not None or fresh):
        return key  # remembered and still current, or read in this request with no generation to go by
    tenant_id = request.tenant.pk
    keycache.entry_drop(tenant_id, digest)
    key = _key_read(tenant_id, digest, generation)
    request._tessera_api_key = (digest, key, generation, True)
    return key


def api_key_from_request(request: HttpRequest) -> ApiKey | None:
    """The active key named by the request's `Authorization: Bearer` header, or None."""
    header = get_authorization_header(request).split()
    if len(header) != 2 or header[0].lower() != b"bearer":
        return None
    try:
        raw = header[1].decode()
    except UnicodeDecodeError:
        return None
    if not raw.startswith(KEY_PREFIXES):
        return None
    key = api_key_lookup(request, raw)
    return key if key is not None and key.is_active else None


class ApiKeyAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use `Bearer <api key>`.")
        try:
            raw = header[1].decode()
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid API key.") from exc
        if not raw.startswith(KEY_PREFIXES):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        key = api_key_lookup(getattr(request, "_request", request), raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if not key.is_active:
            raise exceptions.AuthenticationFailed(f"This API key is {key.status}.")
        _touch(key, request)
        return key, key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


def _touch(key: ApiKey, request) -> None:
    """Record last use, at most once a minute per key (a write per request would cost throughput)."""
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ip = request.META.get("REMOTE_ADDR")
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now, last_used_ip=ip)
        key.last_used_at, key.last_used_ip = now, ip
