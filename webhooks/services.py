"""Writes about webhooks: endpoints and their signing secrets, emitting events into the outbox,
resending and recovering deliveries, test events, and the retention clean-up.

Endpoint management is Admin-only (`webhooks.manage`; API keys need the `webhooks:manage` scope, and
a test-mode key manages only test-mode endpoints) and every change is audited. `event_emit` is called
inside the transaction of the change it describes (the write spine's outbox); the deliveries it
creates are handed to Celery when that transaction commits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import Actor, audit_event_record
from rbac.permissions import has_permission
from webhooks import ssrf
from webhooks.catalogue import CATALOGUE, event_type_filter_valid
from webhooks.crypto import secret_decrypt, secret_encrypt
from webhooks.models import Attempt, Delivery, Endpoint, EndpointSecret, Event, WebhookSettings
from webhooks.signing import secret_new

MAX_ROTATION_OVERLAP = timedelta(days=7)
DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)
RETENTION_DAYS_RANGE = (1, 90)
ENDPOINTS_MAX = 50  # per workspace and mode
CUSTOM_HEADERS_MAX = 20
# Headers an endpoint may not set itself: the signature's, HTTP framing, and hop-by-hop ones.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "tessera-event-version",
        "te",
        "upgrade",
        "expect",
        "proxy-authorization",
    }
)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")


class WebhookError(Exception):
    """A webhook request that cannot be carried out; `field` names the input at fault (form field or
    API `param`), `code` is stable for the API's problem+json."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid"):
        super().__init__(message)
        self.message, self.field, self.code = message, field, code


class WebhookForbidden(WebhookError):
    def __init__(self, message: str = "Not allowed: this needs the webhooks.manage permission."):
        super().__init__(message, code="forbidden")


# --- checks -------------------------------------------------------------------------------------------


def _require(actor: Any, *, livemode: bool) -> None:
    if not has_permission(actor, "webhooks.manage"):
        raise WebhookForbidden()
    key_livemode = getattr(actor, "livemode", None)  # API keys: test keys manage test endpoints only
    if isinstance(key_livemode, bool) and key_livemode != livemode:
        raise WebhookForbidden("A test-mode key manages only test-mode endpoints (and a live key live ones).")


def _url_clean(url: str) -> str:
    url = (url or "").strip()
    if not url:
        raise WebhookError("Enter the URL that should receive the events.", field="url", code="required")
    if len(url) > Endpoint._meta.get_field("url").max_length:
        raise WebhookError("Use a URL of at most 2000 characters.", field="url")
    try:
        ssrf.url_check_static(url)
    except ssrf.AddressRefused as exc:
        from webhooks.inspector import inspector_url_is_own

        if not inspector_url_is_own(url):
            raise WebhookError(exc.reason, field="url", code="url_refused") from exc
    return url


def _event_types_clean(event_types: list[str] | None) -> list[str]:
    if event_types is None:
        return []
    if not isinstance(event_types, list | tuple) or not all(isinstance(t, str) for t in event_types):
        raise WebhookError("`event_types` must be a list of event type names.", field="event_types")
    chosen = list(dict.fromkeys(t.strip() for t in event_types if t.strip()))
    unknown = [t for t in chosen if not event_type_filter_valid(t)]
    if unknown:
        raise WebhookError(
            f"Unknown event type {unknown[0]!r}; see the event catalogue.", field="event_types", code="unknown_event"
        )
    return chosen


def _headers_clean(headers: dict | None) -> dict[str, str]:
    if not headers:
        return {}
    if not isinstance(headers, dict) or len(headers) > CUSTOM_HEADERS_MAX:
        raise WebhookError(f"`headers` must be an object of at most {CUSTOM_HEADERS_MAX} headers.", field="headers")
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise WebhookError(f"{name!r} is not a valid header name.", field="headers")
        if name.lower() in RESERVED_HEADERS:
            raise WebhookError(f"The {name} header is set by Tessera and cannot be overridden.", field="headers")
        if not isinstance(value, str) or len(value) > 1000 or any(c in value for c in "\r\n\x00"):
            raise WebhookError(f"The value of {name} must be one line of text (max 1000).", field="headers")
        out[name] = value
    return out


def _rate_limit_clean(value: int | None) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise WebhookError(
            "The rate limit must be between 1 and 10000 requests a second.", field="rate_limit_per_second"
        )
    return value


def _text_clean(value: str | None, *, field: str, max_length: int) -> str:
    value = (value or "").strip()
    if len(value) > max_length or "\x00" in value:
        raise WebhookError(f"Use at most {max_length} characters (no NUL).", field=field)
    return value


def _facts(endpoint: Endpoint) -> dict:
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "livemode": endpoint.livemode,
        "rate_limit_per_second": endpoint.rate_limit_per_second,
        "headers": sorted(endpoint.headers),  # names only: values may hold credentials
    }


# --- endpoints ----------------------------------------------------------------------------------------


def endpoint_create(
    *,
    actor: Any,
    url: str,
    livemode: bool = True,
    description: str = "",
    event_types: list[str] | None = None,
    rate_limit_per_second: int | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[Endpoint, str]:
    """A new, enabled endpoint and its signing secret (`whsec_…`).

    `event_types` empty or None: every event; entries are catalogue names or `group.*` wildcards.
    The secret is stored encrypted; it is returned here and can be shown again with
    `endpoint_secret_reveal`. Raises WebhookError (bad input, URL refused) or WebhookForbidden.
    """
    _require(actor, livemode=livemode)
    url = _url_clean(url)
    description = _text_clean(description, field="description", max_length=500)
    event_types = _event_types_clean(event_types)
    rate_limit_per_second = _rate_limit_clean(rate_limit_per_second)
    headers = _headers_clean(headers)
    secret = secret_new()
    with transaction.atomic():
        if Endpoint.objects.filter(livemode=livemode).count() >= ENDPOINTS_MAX:
            raise WebhookError(f"A workspace has at most {ENDPOINTS_MAX} endpoints per mode.", code="limit")
        endpoint = Endpoint.objects.create(
            url=url,
            livemode=livemode,
            description=description,
            event_types=event_types,
            rate_limit_per_second=rate_limit_per_second,
            headers=headers,
            created_by=actor if getattr(actor, "email", None) else None,
        )
        EndpointSecret.objects.create(endpoint=endpoint, secret_encrypted=secret_encrypt(secret))
        audit_event_record(
            action="webhook_endpoint.created", actor=actor, target=endpoint, changes={"after": _facts(endpoint)}
        )
    return endpoint, secret


_UNSET: Any = object()


def endpoint_update(
    *,
    actor: Any,
    endpoint: Endpoint,
    url: str = _UNSET,
    description: str = _UNSET,
    event_types: list[str] | None = _UNSET,
    enabled: bool = _UNSET,
    rate_limit_per_second: int | None = _UNSET,
    headers: dict[str, str] | None = _UNSET,
) -> Endpoint:
    """Change the given attributes (leave out what stays). Enabling a disabled endpoint clears its
    `disabled_reason`/`disabled_at` and failure streak; its failed deliveries stay failed until
    recovered (`deliveries_recover`). Disabling by hand fails nothing: pending deliveries wait, and go
    out when the endpoint is enabled again."""
    _require(actor, livemode=endpoint.livemode)
    changes: dict[str, Any] = {}
    if url is not _UNSET:
        changes["url"] = _url_clean(url)
    if description is not _UNSET:
        changes["description"] = _text_clean(description, field="description", max_length=500)
    if event_types is not _UNSET:
        changes["event_types"] = _event_types_clean(event_types)
    if rate_limit_per_second is not _UNSET:
        changes["rate_limit_per_second"] = _rate_limit_clean(rate_limit_per_second)
    if headers is not _UNSET:
        changes["headers"] = _headers_clean(headers)
    if enabled is not _UNSET:
        if not isinstance(enabled, bool):
            raise WebhookError("`enabled` must be true or false.", field="enabled")
        changes["enabled"] = enabled
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = _facts(endpoint)
        for name, value in changes.items():
            setattr(endpoint, name, value)
        if changes.get("enabled") is True:
            endpoint.disabled_reason, endpoint.disabled_at, endpoint.failing_since = "", None, None
        elif changes.get("enabled") is False and not endpoint.disabled_at:
            endpoint.disabled_reason, endpoint.disabled_at = "Disabled by an Admin", timezone.now()
        endpoint.save()
        after = _facts(endpoint)
        if before != after:
            diff = {k: after[k] for k in after if before[k] != after[k]}
            audit_event_record(
                action="webhook_endpoint.updated",
                actor=actor,
                target=endpoint,
                changes={"before": {k: before[k] for k in diff}, "after": diff},
            )
    if changes.get("enabled") is True:  # deliveries paused while it was off go out now
        paused = Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.PENDING)
        ids = list(paused.values_list("pk", flat=True))
        paused.update(next_attempt_at=timezone.now(), locked_until=None)
        deliveries_enqueue_on_commit(ids)
    return endpoint


def endpoint_delete(*, actor: Any, endpoint: Endpoint) -> None:
    """Delete the endpoint with its secrets, deliveries and their attempt log."""
    _require(actor, livemode=endpoint.livemode)
    with transaction.atomic():
        audit_event_record(
            action="webhook_endpoint.deleted", actor=actor, target=endpoint, changes={"before": _facts(endpoint)}
        )
        endpoint.delete()


def endpoint_secrets_expiring(endpoint: Endpoint, *, now: datetime | None = None) -> list[tuple[str, datetime | None]]:
    """(secret, expires at) of the secrets to sign with now, newest first (two during a rotation's overlap)."""
    now = now or timezone.now()
    rows = [s for s in endpoint.secrets.all() if s.expires_at is None or s.expires_at > now]
    rows.sort(key=lambda s: s.created_at, reverse=True)
    return [(secret_decrypt(s.secret_encrypted), s.expires_at) for s in rows]


def endpoint_secrets_valid(endpoint: Endpoint, *, now: datetime | None = None) -> list[str]:
    """The secrets to sign with now, newest first (two during a rotation's overlap)."""
    return [secret for secret, _ in endpoint_secrets_expiring(endpoint, now=now)]


def endpoint_secret_reveal(*, actor: Any, endpoint: Endpoint) -> str:
    """The current (newest) signing secret, for the console's "reveal" button."""
    _require(actor, livemode=endpoint.livemode)
    secrets_now = endpoint_secrets_valid(endpoint)
    if not secrets_now:
        raise WebhookError("This endpoint has no valid secret; rotate it.", code="no_secret")
    return secrets_now[0]


def endpoint_secret_rotate(*, actor: Any, endpoint: Endpoint, overlap: timedelta = DEFAULT_ROTATION_OVERLAP) -> str:
    """A new signing secret, returned once here. Deliveries are signed with the old and the new secret
    until `overlap` has passed (at most 7 days; zero ends the old secret at once)."""
    _require(actor, livemode=endpoint.livemode)
    if not isinstance(overlap, timedelta) or overlap < timedelta(0) or overlap > MAX_ROTATION_OVERLAP:
        raise WebhookError("Choose an overlap between none and 7 days.", field="overlap")
    secret = secret_new()
    now = timezone.now()
    cutoff = now + overlap
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        for old in endpoint.secrets.all():
            if old.expires_at is None or old.expires_at > cutoff:
                old.expires_at = cutoff
                old.save(update_fields=["expires_at"])
        endpoint.secrets.filter(expires_at__lte=now - MAX_ROTATION_OVERLAP).delete()  # long dead
        EndpointSecret.objects.create(endpoint=endpoint, secret_encrypted=secret_encrypt(secret))
        endpoint.save(update_fields=["updated_at"])  # workers keep decrypted secrets until the row changes
        audit_event_record(
            action="webhook_endpoint.secret_rotated",
            actor=actor,
            target=endpoint,
            changes={
                "after": {"old_secrets_expire_at": cutoff.isoformat(), "overlap_seconds": int(overlap.total_seconds())}
            },
        )
    return secret


def endpoint_disable_for_failures(*, endpoint: Endpoint, reason: str) -> bool:
    """The system disables a failing endpoint (410 Gone, or failing for days): sets the fields the
    console banner reads, fails its pending deliveries, audits, and e-mails the workspace's Admins
    on commit. Returns False if it was already disabled."""
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        if not endpoint.enabled:
            return False
        now = timezone.now()
        endpoint.enabled = False
        endpoint.disabled_reason = reason[:200]
        endpoint.disabled_at = now
        endpoint.save(update_fields=["enabled", "disabled_reason", "disabled_at", "updated_at"])
        Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.FAILED,
            last_error="Endpoint disabled: " + reason[:150],
            completed_at=now,
            locked_until=None,
        )
        audit_event_record(
            action="webhook_endpoint.disabled",
            actor=Actor.system("webhook delivery"),
            target=endpoint,
            changes={"after": {"enabled": False, "reason": reason}},
        )
        transaction.on_commit(lambda: _admins_tell_disabled(endpoint))
    return True


def _admins_tell_disabled(endpoint: Endpoint) -> None:
    from django.core.mail import send_mail

    from accounts.models import User
    from rbac.roles import Role
    from tenants.runtime import tenant_current

    admins = list(User.objects.filter(role=Role.ADMIN, is_active=True).values_list("email", flat=True))
    if not admins:
        return
    workspace = tenant_current().name
    mode = "" if endpoint.livemode else " (test mode)"
    send_mail(
        subject=f"[{workspace}] Webhook endpoint disabled: {endpoint.url}",
        message=(
            f"Tessera stopped sending webhooks{mode} to\n\n    {endpoint.url}\n\n"
            f"Reason: {endpoint.disabled_reason}.\n\n"
            "Events that could not be delivered are kept. Once the receiving server works again, enable the "
            "endpoint in Settings → Webhooks and recover the failed deliveries of the time window you need.\n"
        ),
        from_email=None,
        recipient_list=admins,
        fail_silently=True,
    )


# --- events (the outbox) ------------------------------------------------------------------------------


def _timestamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def endpoints_enabled(*, livemode: bool) -> list[Endpoint]:
    """The enabled endpoints of a mode, as much of them as event_emit needs to choose its audience."""
    return list(
        Endpoint.objects.filter(livemode=livemode, enabled=True).only("pk", "event_types", "enabled", "livemode")
    )


def event_emit(*, type: str, data: dict, livemode: bool, endpoints: list[Endpoint] | None = None) -> Event | None:
    """Write one event and a pending delivery per enabled endpoint of the same mode that subscribes
    to `type`, in the caller's transaction; the deliveries go to Celery on commit.

    `endpoints` narrows the audience (test events go to one endpoint). Returns None, writing
    nothing, when no endpoint wants the event.
    """
    if type not in CATALOGUE:
        raise ValueError(f"{type!r} is not in webhooks.catalogue.CATALOGUE")
    candidates = endpoints if endpoints is not None else endpoints_enabled(livemode=livemode)
    wanted = [e for e in candidates if e.enabled and e.livemode == livemode and e.wants(type)]
    if not wanted:
        return None
    now = timezone.now()
    # No savepoint inside the caller's transaction (two statements less per event): if writing the event
    # fails, the change it describes must not commit either.
    with transaction.atomic(savepoint=False):
        event = Event.objects.create(
            type=type,
            livemode=livemode,
            created_at=now,
            payload={"type": type, "timestamp": _timestamp(now), "data": data},
        )
        deliveries = Delivery.objects.bulk_create(
            [Delivery(event=event, endpoint=e, livemode=livemode, next_attempt_at=now, created_at=now) for e in wanted]
        )
        pairs = [(d.endpoint_id, d.pk) for d in deliveries]
        if any(pk is None for _, pk in pairs):  # backends that do not return keys from bulk inserts
            pairs = list(Delivery.objects.filter(event=event).values_list("endpoint_id", "pk"))
        endpoints_wake_on_commit(dict(pairs))
    return event


def event_body(event: Event) -> str:
    """The request body: the envelope as compact JSON, identical bytes on every attempt."""
    return json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def deliveries_enqueue_on_commit(ids: list[int]) -> None:
    """Hand the deliveries to Celery when the current transaction commits, from inside the workspace
    they belong to (the task carries it), wherever the commit itself happens."""
    if not ids:
        return
    from tenants.runtime import tenant_context, tenant_current_or_none
    from webhooks.tasks import deliveries_enqueue

    tenant = tenant_current_or_none()

    def enqueue() -> None:
        if tenant is None:
            deliveries_enqueue(ids)
            return
        with tenant_context(tenant):
            deliveries_enqueue(ids)

    transaction.on_commit(enqueue)


def endpoints_wake_on_commit(first_of: dict[str, int]) -> None:
    """On commit, wake each endpoint (endpoint id → one of its new deliveries): a task delivers every due
    delivery of it (webhooks.tasks.endpoints_wake), from inside the workspace. The endpoints of one
    transaction are woken together (a bulk write of many records wakes each endpoint once)."""
    if not first_of:
        return
    from django.db import connection

    from tenants.runtime import tenant_current_or_none

    tenant = tenant_current_or_none()
    pending: dict = getattr(connection, "_webhooks_wake", None) or {}
    if not connection.run_on_commit:  # nothing registered in this transaction: what is left was rolled back
        pending = {}
    for endpoint_id, delivery_id in first_of.items():
        pending.setdefault((tenant, endpoint_id), delivery_id)
    connection._webhooks_wake = pending
    # One callback per call, so a rolled-back savepoint cannot take the wake-up of the rest with it; the
    # first to run wakes everything pending, the others find nothing left.
    transaction.on_commit(lambda: _endpoints_wake_pending(connection))


def _endpoints_wake_pending(connection) -> None:
    from tenants.runtime import tenant_context
    from webhooks.tasks import endpoints_wake

    pending, connection._webhooks_wake = getattr(connection, "_webhooks_wake", None) or {}, {}
    by_tenant: dict = {}
    for (tenant, endpoint_id), delivery_id in pending.items():
        by_tenant.setdefault(tenant, {})[endpoint_id] = delivery_id
    for tenant, first_of in by_tenant.items():
        if tenant is None:
            endpoints_wake(first_of)
            continue
        with tenant_context(tenant):
            endpoints_wake(first_of)


# --- resend, recover, test --------------------------------------------------------------------------


def _requeue(deliveries, now: datetime) -> list[int]:
    ids = [d.pk for d in deliveries]
    for d in deliveries:
        Delivery.objects.filter(pk=d.pk).update(
            status=Delivery.Status.PENDING,
            next_attempt_at=now,
            locked_until=None,
            completed_at=None,
            schedule_start=d.attempts,
        )
    return ids


def delivery_resend(*, actor: Any, delivery: Delivery) -> Delivery:
    """Send this delivery's event to its endpoint again now (whatever its status); a failure retries
    on the full schedule again."""
    _require(actor, livemode=delivery.livemode)
    if not delivery.event.payload:
        raise WebhookError(
            "This event's payload is past the retention period and cannot be sent again.", code="expired"
        )
    if not delivery.endpoint.enabled:
        raise WebhookError("Enable the endpoint first.", code="endpoint_disabled")
    now = timezone.now()
    with transaction.atomic():
        ids = _requeue([delivery], now)
        audit_event_record(
            action="webhook_delivery.resent",
            actor=actor,
            target=("delivery", delivery.pk, f"{delivery.event_id} → {delivery.endpoint.url}"),
        )
        deliveries_enqueue_on_commit(ids)
    delivery.refresh_from_db()
    return delivery


def deliveries_recover(*, actor: Any, endpoint: Endpoint, since: datetime, until: datetime | None = None) -> int:
    """Queue again every failed delivery of `endpoint` created in [since, until) (until: now).
    Returns how many. The endpoint must be enabled."""
    _require(actor, livemode=endpoint.livemode)
    now = timezone.now()
    until = until or now
    if since >= until:
        raise WebhookError("The start of the window must be before its end.", field="since")
    if since < now - timedelta(days=RETENTION_DAYS_RANGE[1]):
        raise WebhookError("Recover at most 90 days back.", field="since")
    if not Endpoint.objects.filter(pk=endpoint.pk, enabled=True).exists():
        raise WebhookError("Enable the endpoint first.", code="endpoint_disabled")
    with transaction.atomic():
        failed = list(
            Delivery.objects.select_for_update()
            .filter(endpoint=endpoint, status=Delivery.Status.FAILED, created_at__gte=since, created_at__lt=until)
            .exclude(event__payload={})
            .only("pk", "attempts")
        )
        ids = _requeue(failed, now)
        audit_event_record(
            action="webhook_deliveries.recovered",
            actor=actor,
            target=endpoint,
            changes={"after": {"since": since.isoformat(), "until": until.isoformat(), "deliveries": len(ids)}},
        )
        deliveries_enqueue_on_commit(ids)
    return len(ids)


def test_event_send(*, actor: Any, endpoint: Endpoint) -> Delivery:
    """Send a `test.ping` event to this endpoint only (even if its filter leaves test.ping out)."""
    _require(actor, livemode=endpoint.livemode)
    if not endpoint.enabled:
        raise WebhookError("Enable the endpoint first.", code="endpoint_disabled")
    data = {"object": "test", "message": "Hello from Tessera", "endpoint": endpoint.pk}
    now = timezone.now()
    with transaction.atomic():
        event = Event.objects.create(
            type="test.ping",
            livemode=endpoint.livemode,
            created_at=now,
            payload={"type": "test.ping", "timestamp": _timestamp(now), "data": data},
        )
        delivery = Delivery.objects.create(
            event=event, endpoint=endpoint, livemode=endpoint.livemode, next_attempt_at=now, created_at=now
        )
        deliveries_enqueue_on_commit([delivery.pk])
    return delivery


test_event_send.__test__ = False  # not a pytest test, despite the name


# --- settings and retention ----------------------------------------------------------------------------


def webhook_settings_get() -> WebhookSettings:
    obj, _ = WebhookSettings.objects.get_or_create(pk=1)
    return obj


def webhook_settings_update(*, actor: Any, retention_days: int) -> WebhookSettings:
    """Payload retention (1–90 days): older event payloads and attempt bodies are erased daily."""
    if not has_permission(actor, "webhooks.manage"):
        raise WebhookForbidden()
    low, high = RETENTION_DAYS_RANGE
    if isinstance(retention_days, bool) or not isinstance(retention_days, int) or not low <= retention_days <= high:
        raise WebhookError(f"Keep payloads between {low} and {high} days.", field="retention_days")
    with transaction.atomic():
        obj = webhook_settings_get()
        before = obj.retention_days
        if before != retention_days:
            obj.retention_days = retention_days
            obj.save(update_fields=["retention_days"])
            audit_event_record(
                action="webhook_settings.changed",
                actor=actor,
                target=("webhook_settings", 1, "Webhook settings"),
                changes={"before": {"retention_days": before}, "after": {"retention_days": retention_days}},
            )
    return obj


@dataclass(frozen=True)
class RetentionResult:
    events_erased: int
    attempts_erased: int


def webhook_retention_clean(*, now: datetime | None = None) -> RetentionResult:
    """Erase payloads older than the workspace's retention: event bodies (the delivery log keeps
    status and timing) and the request/response bodies of attempts. Pending deliveries keep theirs."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=webhook_settings_get().retention_days)
    pending = Delivery.objects.filter(status=Delivery.Status.PENDING).values("event_id")
    events = Event.objects.filter(created_at__lt=cutoff).exclude(payload={}).exclude(pk__in=pending).update(payload={})
    attempts = (
        Attempt.objects.filter(started_at__lt=cutoff)
        .exclude(request_body="", response_body="")
        .update(request_body="", response_body="")
    )
    return RetentionResult(events_erased=events, attempts_erased=attempts)
