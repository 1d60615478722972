"""Writes about API keys: create (the raw key is returned once), revoke, rotate with an overlap
window, and recording expiry. Every one is Admin-only (`api_keys.manage`) and audited."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_event_record
from core.actors import Actor, Principal
from core.errors import ServiceError
from core.events import DomainEvent, event_emit, target_of
from partners.auth import key_hash
from partners.models import SCOPES, ApiKey
from rbac.permissions import permission_check

RAW_KEY_PREFIX = {ApiKey.Mode.LIVE: "tsk_live_", ApiKey.Mode.TEST: "tsk_test_"}
MAX_ROTATION_OVERLAP = timedelta(days=30)
# Keys that expired longer ago than this are not looked at again by api_key_expire_due.
EXPIRY_LOOKBACK = timedelta(days=7)


class ApiKeyError(ServiceError):
    """A request about API keys that cannot be carried out; `param` names the form field at fault."""


def api_key_object(key: ApiKey) -> dict:
    """An API key as events carry it (never its secret)."""
    data = {"object": "api_key", "id": str(key.pk), "name": key.name, "prefix": key.prefix, "mode": key.mode}
    if key.rotated_to_id is not None:
        data["rotated_to"] = str(key.rotated_to_id)
        data["expires_at"] = key.expires_at.isoformat() if key.expires_at else None
    return data


def _key_event_emit(type: str, actor: Actor | Principal, key: ApiKey, *, changes: dict) -> None:
    event_emit(
        DomainEvent(
            type=type,
            actor=Actor.of(actor),
            livemode=key.livemode,
            data={"object": api_key_object(key)},
            target=target_of(key),
            changes=changes,
        )
    )


def api_key_display_prefix(raw: str) -> str:
    """What the console shows to recognise a key: its first 13 and last 4 characters."""
    return f"{raw[:13]}…{raw[-4:]}"


def _raw_key_new(mode: str) -> str:
    return RAW_KEY_PREFIX[mode] + secrets.token_urlsafe(32)


def _scopes_clean(scopes: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(scopes or []))
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise ApiKeyError(f"Unknown scope: {', '.join(unknown)}.", param="scopes")
    if not chosen:
        raise ApiKeyError("Choose at least one scope.", param="scopes")
    return [s for s in SCOPES if s in chosen]  # the canonical order, whatever order they came in


def _key_facts(key: ApiKey) -> dict:
    return {
        "name": key.name,
        "mode": key.mode,
        "prefix": key.prefix,
        "scopes": key.scopes,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
    }


def _key_insert(*, name: str, mode: str, scopes: list[str], expires_at: datetime | None, created_by) -> tuple:
    raw = _raw_key_new(mode)
    key = ApiKey.objects.create(
        name=name,
        mode=mode,
        prefix=api_key_display_prefix(raw),
        key_hash=key_hash(raw),
        scopes=scopes,
        expires_at=expires_at,
        created_by=created_by if getattr(created_by, "email", None) else None,
    )
    return key, raw


def api_key_create(
    *, actor, name: str, mode: str, scopes: Iterable[str], expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """A new key and its raw value. The raw value is never stored: show it once, then it is gone."""
    permission_check(actor, "api_keys.manage")
    name = (name or "").strip()
    if not name:
        raise ApiKeyError("Give the key a name, e.g. the integration that will use it.", param="name")
    if len(name) > ApiKey._meta.get_field("name").max_length:
        raise ApiKeyError("Use at most 100 characters.", param="name")
    if mode not in ApiKey.Mode.values:
        raise ApiKeyError("Choose test or live.", param="mode")
    scopes = _scopes_clean(scopes)
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiKeyError("The expiry must be in the future.", param="expires_at")
    with transaction.atomic():
        key, raw = _key_insert(name=name, mode=mode, scopes=scopes, expires_at=expires_at, created_by=actor)
        _key_event_emit("api_key.created", actor, key, changes={"after": _key_facts(key)})
    return key, raw


def api_key_revoke(*, actor: Actor | Principal, key: ApiKey) -> ApiKey:
    """Stop the key at once. Revoking a revoked key changes nothing."""
    permission_check(actor, "api_keys.manage")
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().get(pk=key.pk)
        if key.revoked_at is not None:
            return key
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        _key_event_emit("api_key.revoked", actor, key, changes={"after": {"status": "revoked"}})
    return key


def api_key_rotate(*, actor: Actor | Principal, key: ApiKey, overlap: timedelta) -> tuple[ApiKey, str]:
    """Replace `key` with a new one (same name, mode and scopes). The old key keeps working for
    `overlap` so deployments can switch over, then stops; `rotated_to` links old to new."""
    permission_check(actor, "api_keys.manage")
    if overlap < timedelta(0) or overlap > MAX_ROTATION_OVERLAP:
        raise ApiKeyError("Choose an overlap between none and 30 days.", param="overlap")
    now = timezone.now()
    with transaction.atomic():
        old = ApiKey.objects.select_for_update().get(pk=key.pk)
        if not old.is_active:
            raise ApiKeyError(f"This key is {old.status}; create a new key instead.", code="inactive")
        if old.rotated_to_id is not None:
            raise ApiKeyError("This key was already rotated; rotate its replacement instead.", code="rotated")
        # The replacement keeps the lifetime the old key was given; rotating changes the secret only.
        new, raw = _key_insert(
            name=old.name, mode=old.mode, scopes=list(old.scopes), expires_at=old.expires_at, created_by=actor
        )
        old_expiry = old.expires_at
        cutoff = now + overlap
        old.expires_at = cutoff if old_expiry is None else min(old_expiry, cutoff)
        old.rotated_to = new
        old.save(update_fields=["expires_at", "rotated_to"])
        _key_event_emit(
            "api_key.rotated",
            actor,
            old,
            changes={
                "before": {"expires_at": old_expiry.isoformat() if old_expiry else None},
                "after": {
                    "expires_at": old.expires_at.isoformat(),
                    "rotated_to": new.pk,
                    "new_prefix": new.prefix,
                    "overlap_seconds": int(overlap.total_seconds()),
                },
            },
        )
    key.expires_at, key.rotated_to = old.expires_at, new
    return new, raw


def api_key_expire_due(*, now: datetime | None = None) -> list[ApiKey]:
    """Record `api_key.expired` once for every key whose expiry has passed (a periodic task calls
    this). Expiry itself needs no write: authentication compares `expires_at` with the clock."""
    now = now or timezone.now()
    due = list(
        ApiKey.objects.filter(revoked_at__isnull=True, expires_at__lte=now, expires_at__gt=now - EXPIRY_LOOKBACK)
    )
    if not due:
        return []
    recorded = set(
        AuditEvent.objects.filter(
            action="api_key.expired", target_type="apikey", target_id__in=[str(k.pk) for k in due]
        ).values_list("target_id", flat=True)
    )
    expired = [k for k in due if str(k.pk) not in recorded]
    with transaction.atomic():
        for key in expired:
            audit_event_record(
                action="api_key.expired",
                actor=Actor.system("key expiry"),
                target=key,
                changes={"after": {"expires_at": key.expires_at.isoformat(), "rotated_to": key.rotated_to_id}},
            )
    return expired
