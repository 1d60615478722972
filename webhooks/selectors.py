"""Reads of webhooks for the console and the API: endpoints with their health, the delivery log and its
filters, the inspector's bins and what they received, the workspace's webhook settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from urllib.parse import urlsplit

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
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


def _percentile(values: list[int], p: float) -> int | None:
    """Nearest-rank percentile of sorted `values` (None when there are none)."""
    if not values:
        return None
    return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]


def webhook_delivery_panels(*, date_from: date, date_to: date, tz) -> list[dict]:
    """The built-in "Webhook deliveries" dashboard (analytics.builtin lists it through
    settings.TESSERA_ANALYTICS_BUILTIN_DASHBOARDS): attempts per day that succeeded (2xx) or failed, and
    per endpoint its deliveries, success rate, latency (p50/p95 of the attempts' durations) and failures,
    over the local days `date_from`..`date_to` of the time zone `tz`."""
    start = datetime.combine(date_from, time(), tz)
    end = datetime.combine(date_to + timedelta(days=1), time(), tz)
    attempts = Attempt.objects.filter(started_at__gte=start, started_at__lt=end)
    per_day = {
        row["day"]: row
        for row in attempts.annotate(day=TruncDate("started_at", tzinfo=tz))
        .values("day")
        .annotate(total=Count("pk"), ok=Count("pk", filter=_success()))
    }
    days = [date_from + timedelta(days=n) for n in range((date_to - date_from).days + 1)]
    per_endpoint = {
        row["delivery__endpoint_id"]: row
        for row in attempts.values("delivery__endpoint_id").annotate(
            total=Count("pk"), ok=Count("pk", filter=_success())
        )
    }
    durations: dict[str, list[int]] = {}
    for endpoint_id, ms in (
        attempts.exclude(duration_ms=None).order_by("duration_ms").values_list("delivery__endpoint_id", "duration_ms")
    ):
        durations.setdefault(endpoint_id, []).append(ms)
    deliveries = {
        row["endpoint_id"]: row
        for row in Delivery.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("endpoint_id")
        .annotate(
            total=Count("pk"),
            succeeded=Count("pk", filter=Q(status=Delivery.Status.SUCCEEDED)),
            failed=Count("pk", filter=Q(status=Delivery.Status.FAILED)),
            pending=Count("pk", filter=Q(status=Delivery.Status.PENDING)),
        )
    }
    ids = set(per_endpoint) | set(deliveries)
    endpoints = sorted(Endpoint.objects.filter(pk__in=ids), key=lambda e: (e.url, e.pk))
    last_failure = {}
    for endpoint in endpoints:
        failure = (
            attempts.filter(delivery__endpoint_id=endpoint.pk)
            .exclude(_success())
            .order_by("-started_at", "-pk")
            .values_list("response_status", "error")
            .first()
        )
        if failure:
            last_failure[endpoint.pk] = failure[1] or f"HTTP {failure[0]}"
    total = sum(r["total"] for r in per_endpoint.values())
    ok = sum(r["ok"] for r in per_endpoint.values())
    table, labels, p50s, p95s = [], [], [], []
    for e in endpoints:
        a, d = per_endpoint.get(e.pk, {"total": 0, "ok": 0}), deliveries.get(e.pk, {})
        p50, p95 = _percentile(durations.get(e.pk, []), 50), _percentile(durations.get(e.pk, []), 95)
        label = e.url if e.livemode else f"{e.url} (test)"
        labels.append(label)
        p50s.append(p50)
        p95s.append(p95)
        table.append(
            [
                label,
                "enabled" if e.enabled else f"disabled: {e.disabled_reason or 'by hand'}",
                d.get("total", 0),
                d.get("succeeded", 0),
                d.get("failed", 0),
                d.get("pending", 0),
                a["total"],
                a["total"] - a["ok"],
                f"{a['ok'] / a['total']:.1%}" if a["total"] else "—",
                "—" if p50 is None else p50,
                "—" if p95 is None else p95,
                last_failure.get(e.pk, ""),
            ]
        )
    return [
        {
            "title": "Success rate",
            "kind": "number",
            "number": {
                "text": f"{ok / total:.1%}" if total else "—",
                "label": f"of {total:,} attempts answered 2xx; {total - ok:,} failed",
            },
            "columns": ["Attempts", "Succeeded", "Failed"],
            "rows": [[total, ok, total - ok]],
        },
        {
            "title": "Attempts per day",
            "kind": "bar",
            "stacked": True,
            "labels": [d.isoformat() for d in days],
            "series": [
                {"label": "Succeeded", "data": [per_day.get(d, {}).get("ok", 0) for d in days]},
                {
                    "label": "Failed",
                    "data": [per_day.get(d, {}).get("total", 0) - per_day.get(d, {}).get("ok", 0) for d in days],
                },
            ],
            "columns": ["Day", "Succeeded", "Failed"],
            "rows": [
                [
                    d.isoformat(),
                    per_day.get(d, {}).get("ok", 0),
                    per_day.get(d, {}).get("total", 0) - per_day.get(d, {}).get("ok", 0),
                ]
                for d in days
            ],
        },
        {
            "title": "Latency per endpoint (ms)",
            "kind": "bar",
            "labels": labels,
            "series": [{"label": "p50", "data": p50s}, {"label": "p95", "data": p95s}],
            "columns": ["Endpoint", "p50 ms", "p95 ms"],
            "rows": [
                [label, "—" if a is None else a, "—" if b is None else b]
                for label, a, b in zip(labels, p50s, p95s, strict=True)
            ],
        },
        {
            "title": "Endpoints",
            "kind": "table",
            "columns": [
                "Endpoint",
                "State",
                "Deliveries",
                "Delivered",
                "Gave up",
                "Pending",
                "Attempts",
                "Failed attempts",
                "Success rate",
                "p50 ms",
                "p95 ms",
                "Last failure",
            ],
            "rows": table,
        },
    ]
