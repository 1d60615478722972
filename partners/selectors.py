"""Reads about API keys and their usage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db.models import QuerySet, Sum

from partners.models import ApiKey, ApiUsage

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
