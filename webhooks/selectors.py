"""Reads of webhooks for the console and the API: endpoints with their health, the delivery log and its
filters, the inspector's bins and what they received, the workspace's webhook settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from core.secrets_at_rest import secret_decrypt
from webhooks.models import Attempt, Delivery, Endpoint, InspectorBin, InspectorRequest, WebhookSettings

HEALTH_WINDOW = timedelta(hours=24)
LAST_ATTEMPTS = 10


def endpoint_list(*, livemode: bool | None = None) -> QuerySet[Endpoint]:
    qs = Endpoint.objects.all()
    if livemode is not None:
        qs = qs.filter(livemode=livemode)
    return qs.order_by("-created_at", "-id")


def endpoint_get(*, endpoint_id: str, livemode: bool | None = None) -> Endpoint | None:
    return endpoint_list(livemode=livemode).filter(pk=endpoint_id).first()


@dataclass
class EndpointHealth:
    """Attempts of the last HEALTH_WINDOW: how many got a 2xx, and the latest ones (newest first)."""

    attempts: int = 0
    succeeded: int = 0
    last_attempts: list[Attempt] = field(default_factory=list)
    pending: int = 0

    @property
    def success_rate(self) -> float | None:
        return None if not self.attempts else self.succeeded / self.attempts

    @property
    def success_percent(self) -> int | None:
        rate = self.success_rate
        return None if rate is None else round(rate * 100)


def _success() -> Q:
    return Q(response_status__gte=200, response_status__lt=300)


def endpoint_health(endpoints: list[Endpoint], *, now: datetime | None = None) -> dict[str, EndpointHealth]:
    """Health of each endpoint (two aggregate queries, plus one for each endpoint's last attempts)."""
    ids = [e.pk for e in endpoints]
    since = (now or timezone.now()) - HEALTH_WINDOW
    out = {pk: EndpointHealth() for pk in ids}
    rows = (
        Attempt.objects.filter(delivery__endpoint_id__in=ids, started_at__gte=since)
        .values("delivery__endpoint_id")
        .annotate(total=Count("pk"), ok=Count("pk", filter=_success()))
    )
    for row in rows:
        health = out[row["delivery__endpoint_id"]]
        health.attempts, health.succeeded = row["total"], row["ok"]
    pending = (
        Delivery.objects.filter(endpoint_id__in=ids, status=Delivery.Status.PENDING)
        .values("endpoint_id")
        .annotate(n=Count("pk"))
    )
    for row in pending:
        out[row["endpoint_id"]].pending = row["n"]
    for pk in ids:
        out[pk].last_attempts = list(
            Attempt.objects.filter(delivery__endpoint_id=pk)
            .select_related("delivery")
            .order_by("-started_at", "-pk")[:LAST_ATTEMPTS]
        )
    return out


def delivery_list(
    *,
    livemode: bool | None = None,
    endpoint: Endpoint | None = None,
    status: str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Delivery]:
    """The delivery log, newest first, filtered by any of its arguments."""
    qs = Delivery.objects.select_related("event", "endpoint")
    if livemode is not None:
        qs = qs.filter(livemode=livemode)
    if endpoint is not None:
        qs = qs.filter(endpoint=endpoint)
    if status:
        qs = qs.filter(status=status)
    if event_type:
        if event_type.endswith(".*"):
            qs = qs.filter(event__type__startswith=event_type[:-1])
        else:
            qs = qs.filter(event__type=event_type)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs.order_by("-created_at", "-pk")


def delivery_get(*, delivery_id: int, livemode: bool | None = None) -> Delivery | None:
    return delivery_list(livemode=livemode).filter(pk=delivery_id).first()


def delivery_attempts(delivery: Delivery) -> list[Attempt]:
    return list(delivery.attempt_log.order_by("-number", "-pk"))


def webhook_settings_get() -> WebhookSettings:
    """The workspace's settings row (its defaults until an Admin changes them)."""
    row = WebhookSettings.objects.order_by("pk").first()
    return row if row is not None else WebhookSettings()


def inspector_bin_list() -> QuerySet[InspectorBin]:
    return InspectorBin.objects.annotate(received=Count("requests")).order_by("-created_at", "-pk")


def inspector_bin_get(*, pk: int) -> InspectorBin | None:
    return InspectorBin.objects.filter(pk=pk).first()


def inspector_requests(bin: InspectorBin, *, limit: int = 100) -> list[InspectorRequest]:
    return list(bin.requests.order_by("-received_at", "-pk")[:limit])


def endpoint_secrets_expiring(endpoint: Endpoint, *, now: datetime | None = None) -> list[tuple[str, datetime | None]]:
    """(secret, expires at) of the secrets to sign with now, newest first (two during a rotation's overlap)."""
    now = now or timezone.now()
    rows = [s for s in endpoint.secrets.all() if s.expires_at is None or s.expires_at > now]
    rows.sort(key=lambda s: s.created_at, reverse=True)
    return [(secret_decrypt(s.secret_encrypted), s.expires_at) for s in rows]


def endpoint_secrets_valid(endpoint: Endpoint, *, now: datetime | None = None) -> list[str]:
    """The secrets to sign with now, newest first (two during a rotation's overlap)."""
    return [secret for secret, _ in endpoint_secrets_expiring(endpoint, now=now)]


def endpoints_enabled(*, livemode: bool) -> list[Endpoint]:
    """The enabled endpoints of a mode, as much of them as event_emit needs to choose its audience."""
    return list(
        Endpoint.objects.filter(livemode=livemode, enabled=True).only("pk", "event_types", "enabled", "livemode")
    )


def compliance_subprocessors_section(*, date_from: datetime, date_to: datetime) -> dict:
    """The compliance report's sub-processors: the webhook endpoints record data is sent to, by host
    (privacy.reports lists this section through settings.TESSERA_COMPLIANCE_REPORT_SECTIONS)."""
    endpoints = Endpoint.objects.filter(created_at__lte=date_to).order_by("created_at")
    return {
        "title": "Webhook destinations (sub-processors)",
        "columns": ["host", "url", "mode", "events", "enabled", "created"],
        "rows": [
            [
                urlsplit(e.url).hostname or "",
                e.url,
                "live" if e.livemode else "test",
                " ".join(e.event_types) or "all",
                "yes" if e.enabled else "no",
                e.created_at.date().isoformat(),
            ]
            for e in endpoints
        ],
    }


def endpoints_live_count() -> int:
    """Live-mode webhook endpoints: the billing page's usage (the limit applies to each mode)."""
    return Endpoint.objects.filter(livemode=True).count()
