"""Writes about webhook endpoints: creating, changing and deleting them, their signing secrets, and the
system disabling one that keeps failing. The rules of an endpoint's URL, headers, event filter and rate
are written once, here; the console's forms and the API both call them.

Endpoint management is Admin-only (`webhooks.manage`; API keys need the `webhooks:manage` scope, and
a test-mode key manages only test-mode endpoints) and every change is audited.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_event_record
from billing.entitlements import webhook_endpoints_check
from core import ssrf
from core.actors import Actor, Principal
from core.secrets_at_rest import secret_encrypt
from core.workspace_memo import workspace_memo_forget
from rbac.permissions import has_permission
from rbac.roles import Role
from tenants.runtime import workspace_current
from webhooks.catalogue import event_type_filter_valid
from webhooks.errors import EndpointDisabled, WebhookError, WebhookForbidden
from webhooks.inspector import inspector_url_is_own
from webhooks.models import Delivery, Endpoint, EndpointSecret
from webhooks.outbox import deliveries_enqueue_on_commit
from webhooks.restriction import HELD
from webhooks.selectors import endpoint_secrets_valid
from webhooks.signing import secret_new

__all__ = ["EndpointDisabled", "WebhookError", "WebhookForbidden"]

MAX_ROTATION_OVERLAP = timedelta(days=7)
DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)
URL_MAX = 2000
HEADERS_MAX = 20
HEADER_VALUE_MAX = 1000
RATE_LIMIT_MAX = 1000
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")  # an RFC 9110 token
# Set by Tessera or by the connection itself: a custom header may not replace or smuggle them (nor any
# `webhook-*` header: the signature's).
HEADERS_RESERVED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "expect",
        "user-agent",
        "tessera-event-version",
    }
)


# --- checks -------------------------------------------------------------------------------------------


def require_manage(actor: Actor | Principal, *, livemode: bool) -> None:
    """Webhooks are managed by Admins (and keys with `webhooks:manage`), each key in its own mode."""
    if not has_permission(actor, "webhooks.manage"):
        raise WebhookForbidden()
    key_livemode = getattr(actor, "livemode", None)  # API keys: test keys manage test endpoints only
    if isinstance(key_livemode, bool) and key_livemode != livemode:
        raise WebhookForbidden("A test-mode key manages only test-mode endpoints (and a live key live ones).")


def endpoint_url_check(url: str) -> str:
    """A full http(s) URL whose address Tessera may call (the SSRF guard's static check: no literal
    loopback, private or link-local address; names are checked again after DNS at delivery time), or
    this workspace's own inspector URL."""
    url = (url or "").strip()
    if not url:
        raise WebhookError("Enter the URL that should receive the webhooks.", param="url")
    if len(url) > URL_MAX:
        raise WebhookError(f"The URL is too long (at most {URL_MAX} characters).", param="url")
    if "\x00" in url:
        raise WebhookError("The URL cannot contain NUL characters.", param="url")
    bad_form = WebhookError("Enter a full http:// or https:// URL, e.g. https://example.com/webhooks.", param="url")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        well_formed = False
    else:
        well_formed = True
    parts = urlsplit(url)
    if not well_formed and (parts.scheme.lower() not in ("http", "https") or not parts.netloc):
        raise bad_form
    try:
        ssrf.url_check_static(url, https_required=settings.TESSERA_WEBHOOK_HTTPS_REQUIRED)
    except ssrf.AddressRefused as exc:
        # Checked whatever the URL's form: an address written as one number or in octal is refused
        # as the address it means, not as a typo.
        if not inspector_url_is_own(url):
            raise WebhookError(exc.reason, param="url", code="url_refused") from exc
    if not well_formed:
        raise bad_form
    return url


def _event_types_clean(event_types: list[str] | None) -> list[str]:
    if event_types is None:
        return []
    if not isinstance(event_types, list | tuple) or not all(isinstance(t, str) for t in event_types):
        raise WebhookError("`event_types` must be a list of event type names.", param="event_types")
    chosen = list(dict.fromkeys(t.strip() for t in event_types if t.strip()))
    unknown = [t for t in chosen if not event_type_filter_valid(t)]
    if unknown:
        raise WebhookError(f"Unknown event type {unknown[0]!r}; see the event catalogue.", param="event_types")
    return chosen


def endpoint_headers_check(headers: dict | None) -> dict[str, str]:
    """Custom headers an endpoint sends with every delivery: at most HEADERS_MAX RFC 9110 names with
    printable values, never a hop-by-hop header, one Tessera sets itself, or a `webhook-*` header."""
    if not headers:
        return {}
    if not isinstance(headers, dict):
        raise WebhookError("Headers must be an object of names and values.", param="headers")
    if len(headers) > HEADERS_MAX:
        raise WebhookError(f"At most {HEADERS_MAX} custom headers.", param="headers")
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in headers.items():
        if not isinstance(name, str) or not HEADER_NAME_RE.fullmatch(name):
            raise WebhookError(
                f"“{str(name)[:100]}” is not a valid header name (letters, digits and - only).", param="headers"
            )
        lower = name.lower()
        if lower.startswith("webhook-"):
            raise WebhookError(
                f"“{name}”: webhook-* headers are set by Tessera (the signature) and cannot be custom.", param="headers"
            )
        if lower in HEADERS_RESERVED:
            raise WebhookError(
                f"“{name}” is a connection-level header set by Tessera; it cannot be custom.", param="headers"
            )
        if lower in seen:
            raise WebhookError(f"“{name}” is given twice.", param="headers")
        seen.add(lower)
        if not isinstance(value, str):
            raise WebhookError(f"The value of “{name}” must be text.", param="headers")
        if len(value) > HEADER_VALUE_MAX:
            raise WebhookError(
                f"The value of “{name}” is too long (at most {HEADER_VALUE_MAX} characters).", param="headers"
            )
        if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
            raise WebhookError(
                f"The value of “{name}” cannot contain line breaks or control characters.", param="headers"
            )
        out[name] = value.strip()
    return out


def _rate_limit_clean(value: int | None) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= RATE_LIMIT_MAX:
        raise WebhookError(
            f"The rate limit must be between 1 and {RATE_LIMIT_MAX} deliveries a second.", param="rate_limit_per_second"
        )
    return value


def _text_clean(value: str | None, *, field: str, max_length: int) -> str:
    value = (value or "").strip()
    if "\x00" in value:
        raise WebhookError(f"The {field} cannot contain NUL characters.", param=field)
    if len(value) > max_length:
        raise WebhookError(f"Use at most {max_length} characters.", param=field)
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
    actor: Actor | Principal,
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
    require_manage(actor, livemode=livemode)
    url = endpoint_url_check(url)
    description = _text_clean(description, field="description", max_length=500)
    event_types = _event_types_clean(event_types)
    rate_limit_per_second = _rate_limit_clean(rate_limit_per_second)
    headers = endpoint_headers_check(headers)
    secret = secret_new()
    with transaction.atomic():
        webhook_endpoints_check(workspace_current(), existing=Endpoint.objects.filter(livemode=livemode).count())
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
        workspace_memo_forget(workspace_current().pk)  # the outbox's remembered endpoints
        audit_event_record(
            action="webhook_endpoint.created", actor=actor, target=endpoint, changes={"after": _facts(endpoint)}
        )
    return endpoint, secret


_UNSET: Any = object()


def endpoint_update(
    *,
    actor: Actor | Principal,
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
    require_manage(actor, livemode=endpoint.livemode)
    changes: dict[str, Any] = {}
    if url is not _UNSET:
        changes["url"] = endpoint_url_check(url)
    if description is not _UNSET:
        changes["description"] = _text_clean(description, field="description", max_length=500)
    if event_types is not _UNSET:
        changes["event_types"] = _event_types_clean(event_types)
    if rate_limit_per_second is not _UNSET:
        changes["rate_limit_per_second"] = _rate_limit_clean(rate_limit_per_second)
    if headers is not _UNSET:
        changes["headers"] = endpoint_headers_check(headers)
    if enabled is not _UNSET:
        if not isinstance(enabled, bool):
            raise WebhookError("`enabled` must be true or false.", param="enabled")
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
        workspace_memo_forget(workspace_current().pk)  # the outbox's remembered endpoints
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
        # (not those held while their record's processing is restricted: webhooks.restriction)
        paused = Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.PENDING).exclude(last_error=HELD)
        ids = list(paused.values_list("pk", flat=True))
        paused.update(next_attempt_at=timezone.now(), locked_until=None)
        deliveries_enqueue_on_commit(ids)
    return endpoint


def endpoint_delete(*, actor: Actor | Principal, endpoint: Endpoint) -> None:
    """Delete the endpoint with its secrets, deliveries and their attempt log."""
    require_manage(actor, livemode=endpoint.livemode)
    with transaction.atomic():
        audit_event_record(
            action="webhook_endpoint.deleted", actor=actor, target=endpoint, changes={"before": _facts(endpoint)}
        )
        endpoint.delete()
        workspace_memo_forget(workspace_current().pk)  # the outbox's remembered endpoints


def endpoint_secret_reveal(*, actor: Actor | Principal, endpoint: Endpoint) -> str:
    """The current (newest) signing secret, for the console's "reveal" button."""
    require_manage(actor, livemode=endpoint.livemode)
    secrets_now = endpoint_secrets_valid(endpoint)
    if not secrets_now:
        raise WebhookError("This endpoint has no valid secret; rotate it.", code="conflict", status=409)
    return secrets_now[0]


def endpoint_secret_rotate(
    *, actor: Actor | Principal, endpoint: Endpoint, overlap: timedelta = DEFAULT_ROTATION_OVERLAP
) -> str:
    """A new signing secret, returned once here. Deliveries are signed with the old and the new secret
    until `overlap` has passed (at most 7 days; zero ends the old secret at once)."""
    require_manage(actor, livemode=endpoint.livemode)
    if not isinstance(overlap, timedelta) or overlap < timedelta(0) or overlap > MAX_ROTATION_OVERLAP:
        raise WebhookError("Choose an overlap between none and 7 days.", param="overlap")
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
        workspace_memo_forget(workspace_current().pk)  # the outbox's remembered endpoints
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
    admins = list(User.objects.filter(role=Role.ADMIN, is_active=True).values_list("email", flat=True))
    if not admins:
        return
    workspace = workspace_current().name
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
