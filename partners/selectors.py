"""Reads about API keys and their usage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db.models import QuerySet, Sum

from billing.entitlements import api_rate_limits
from partners.models import ApiKey, ApiUsage
from partners.usage import usage_flush
from tenants.runtime import workspace_current

USAGE_DAYS = 30


@dataclass(frozen=True)
class UsageDay:
    day: date
    calls: int
    errors: int


def api_key_list() -> QuerySet[ApiKey]:
    return ApiKey.objects.select_related("created_by", "rotated_to").order_by("-created_at", "-pk")


def _days(days: int, today: date | None) -> list[date]:
    today = today or datetime.now(UTC).date()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def api_usage_by_day(*, key: ApiKey | None = None, days: int = USAGE_DAYS, today: date | None = None) -> list[UsageDay]:
    """Calls and errors per UTC day, oldest first, every day present (zero when unused)."""
    span = _days(days, today)
    rows = ApiUsage.objects.filter(day__gte=span[0], day__lte=span[-1])
    if key is not None:
        rows = rows.filter(key=key)
    totals = {row["day"]: row for row in rows.values("day").annotate(calls_sum=Sum("calls"), errors_sum=Sum("errors"))}
    return [
        UsageDay(d, totals[d]["calls_sum"] if d in totals else 0, totals[d]["errors_sum"] if d in totals else 0)
        for d in span
    ]


def api_usage_by_key(*, days: int = USAGE_DAYS, today: date | None = None) -> dict[int, tuple[int, int]]:
    """Key id -> (calls, errors) over the last `days` UTC days."""
    span = _days(days, today)
    rows = (
        ApiUsage.objects.filter(day__gte=span[0], day__lte=span[-1])
        .values("key_id")
        .annotate(calls_sum=Sum("calls"), errors_sum=Sum("errors"))
    )
    return {row["key_id"]: (row["calls_sum"], row["errors_sum"]) for row in rows}


def compliance_api_keys_section(*, date_from: datetime, date_to: datetime) -> dict:
    """The compliance report's API keys: every key that existed in the period, with its age and last use
    (privacy.reports lists this section through settings.TESSERA_COMPLIANCE_REPORT_SECTIONS)."""
    now = datetime.now(UTC)
    keys = ApiKey.objects.filter(created_at__lte=date_to).exclude(revoked_at__lt=date_from).order_by("created_at")
    return {
        "title": "API keys",
        "columns": ["name", "prefix", "mode", "scopes", "created", "age (days)", "last used", "status"],
        "rows": [
            [
                k.name,
                k.prefix,
                k.mode,
                " ".join(k.scopes),
                k.created_at.date().isoformat(),
                str((now - k.created_at).days),
                k.last_used_at.date().isoformat() if k.last_used_at else "never",
                k.status,
            ]
            for k in keys
        ],
    }


def _key_label(key: ApiKey) -> str:
    return f"{key.name} ({key.prefix}…)"


def api_usage_panels(*, date_from: date, date_to: date, tz) -> list[dict]:
    """The built-in "API usage" dashboard (analytics.builtin lists it through
    settings.TESSERA_ANALYTICS_BUILTIN_DASHBOARDS): calls per key and UTC day with the rate limit a key
    may sustain drawn in, and per key its busiest day against that limit. `tz` is unused: usage is
    counted per UTC day."""
    usage_flush()  # the calls counted since the last flush, as the keys page does
    days = [date_from + timedelta(days=n) for n in range((date_to - date_from).days + 1)]
    rows = ApiUsage.objects.filter(day__gte=date_from, day__lte=date_to).values_list("key_id", "day", "calls", "errors")
    per_key: dict[int, dict[date, tuple[int, int]]] = {}
    for key_id, day, calls, errors in rows:
        per_key.setdefault(key_id, {})[day] = (calls, errors)
    keys = {k.pk: k for k in ApiKey.objects.filter(pk__in=list(per_key))}
    limit = api_rate_limits(workspace_current())["key"]
    per_day_limit = round(limit.rate * 86400)
    totals = {pk: (sum(c for c, _ in d.values()), sum(e for _, e in d.values())) for pk, d in per_key.items()}
    ranked = sorted(keys.values(), key=lambda k: (-totals[k.pk][0], k.pk))
    calls, errors = sum(t[0] for t in totals.values()), sum(t[1] for t in totals.values())
    table = []
    for key in ranked:
        busiest = max(per_key[key.pk].items(), key=lambda item: (item[1][0], item[0]))
        k_calls, k_errors = totals[key.pk]
        table.append(
            [
                _key_label(key),
                key.mode,
                key.status,
                k_calls,
                k_errors,
                f"{k_errors / k_calls:.1%}" if k_calls else "—",
                busiest[0].isoformat(),
                busiest[1][0],
                f"{busiest[1][0] / per_day_limit:.2%}" if per_day_limit else "—",
            ]
        )
    return [
        {
            "title": "API calls",
            "kind": "number",
            "number": {"text": f"{calls:,}", "label": f"calls, {errors:,} answered with an error"},
            "columns": ["Calls", "Errors"],
            "rows": [[calls, errors]],
        },
        {
            "title": "Calls per key per day (UTC)",
            "kind": "line",
            "labels": [d.isoformat() for d in days],
            "series": [
                {"label": _key_label(k), "data": [per_key[k.pk].get(d, (0, 0))[0] for d in days]} for k in ranked[:8]
            ],
            "reference": {
                "label": f"Rate limit per key: {limit.rate:g}/s = {per_day_limit:,} calls a day",
                "value": per_day_limit,
            },
            "columns": ["Day", *[_key_label(k) for k in ranked]],
            "rows": [[d.isoformat(), *[per_key[k.pk].get(d, (0, 0))[0] for k in ranked]] for d in days],
        },
        {
            "title": "Keys against their limit",
            "kind": "table",
            "columns": [
                "Key",
                "Mode",
                "Status",
                "Calls",
                "Errors",
                "Error rate",
                "Busiest day",
                "Calls that day",
                "Of the daily limit",
            ],
            "rows": table,
        },
    ]
