"""What the console's home page shows: the workspace's counts, its recent activity, the health of its
phone sync and webhooks, and the getting-started steps, each ticked off by what the workspace has done
(not by a flag someone sets). Cheap queries only: big collections' counts are estimates, as elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Max, Q
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation, User
from audit.registry import action_label
from audit.selectors import audit_event_list
from core.request_context import console_livemode
from partners.models import ApiKey
from rbac.permissions import has_permission
from records.query import collection_record_counts
from records.selectors import collection_list
from sync.models import Device
from webhooks.models import Delivery, Endpoint

RECENT_EVENTS = 8


@dataclass(frozen=True)
class Step:
    label: str
    done: bool
    url: str
    action: str
    allowed: bool  # the person may take this step (else it is shown without a link)


def home_context(user) -> dict:
    live = console_livemode()  # test mode: the sandbox's collections and endpoints
    collections = list(collection_list(livemode=live))
    counts = collection_record_counts(collections)
    records = sum(n for n, _ in counts.values())
    estimated = any(est for _, est in counts.values())
    members = User.objects.filter(is_active=True).count()
    day_ago = timezone.now() - timedelta(days=1)
    # One statement per table, each count a filtered aggregate (a log-in lands here: bench/sso).
    devices = Device.objects.filter(revoked_at=None).aggregate(
        paired=Count("pk"), seen_today=Count("pk", filter=Q(last_seen_at__gte=day_ago)), last_seen=Max("last_seen_at")
    )
    endpoints = Endpoint.objects.filter(livemode=live).aggregate(
        on=Count("pk", filter=Q(enabled=True)),
        off=Count("pk", filter=Q(enabled=False)),
        failing=Count("pk", filter=Q(enabled=True, failing_since__isnull=False)),
    )
    context = {
        "counts": {
            "collections": len(collections),
            "records": f"{'about ' if estimated else ''}{records:,}",
            "members": members,
            "devices": devices["paired"],
        },
        "top_collections": sorted(collections, key=lambda c: -counts[c.pk][0])[:5],
        "sync": {
            "devices": devices["paired"],
            "seen_today": devices["seen_today"],
            "last_seen": devices["last_seen"],
        },
        "webhooks": {
            "endpoints": endpoints["on"],
            "disabled": endpoints["off"],
            "failing": endpoints["failing"],
            "failed_today": Delivery.objects.filter(
                livemode=live, status=Delivery.Status.FAILED, created_at__gte=day_ago
            ).count(),
        },
        "activity": [],
        "steps": [],
    }
    for c in context["top_collections"]:
        c.record_count_label = f"{counts[c.pk][0]:,}"
    if has_permission(user, "audit.view"):
        context["activity"] = [
            {"event": e, "label": action_label(e.action)} for e in audit_event_list()[:RECENT_EVENTS]
        ]
    imported = audit_event_list(action="records.imported").exists()
    invited = members > 1 or Invitation.objects.exists()
    api_called = ApiKey.objects.exclude(last_used_at=None).exists()
    steps = [
        Step(
            "Create a collection",
            bool(collections),
            reverse("records:collections"),
            "Create one",
            has_permission(user, "collections.manage"),
        ),
        Step(
            "Import records from a spreadsheet (CSV)",
            imported,
            reverse("records:import", args=[collections[0].slug]) if collections else reverse("records:collections"),
            "Import",
            has_permission(user, "records.edit"),
        ),
        Step(
            "Invite a colleague",
            invited,
            reverse("accounts:members"),
            "Invite",
            has_permission(user, "members.manage"),
        ),
        Step(
            "Make your first API call",
            api_called,
            reverse("partners:api_keys"),
            "Get an API key",
            has_permission(user, "api_keys.manage"),
        ),
        Step(
            "Pair a phone", devices["paired"] > 0, reverse("sync:devices"), "Pair", has_permission(user, "devices.pair")
        ),
    ]
    context["steps"] = steps
    context["steps_done"] = sum(s.done for s in steps)
    return context
