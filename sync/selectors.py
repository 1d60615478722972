"""Reads about devices for the console: the device list with each device's sync lag."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from audit.models import AuditEvent
from records.models import Record
from sync.models import Device, DeviceCheckpoint, PairingCode
from sync.services import SEEN_EVERY


def device_list() -> list[Device]:
    """Every device, newest first, each with `lag`: how many records changed since its last pull
    (summed over the collections it synced; None before its first pull)."""
    devices = list(Device.objects.select_related("user", "paired_by"))
    checkpoints = list(DeviceCheckpoint.objects.filter(device__in=devices).select_related("collection"))
    behind = {}
    for cp in checkpoints:
        behind[cp.pk] = Record.objects.filter(collection_id=cp.collection_id, livemode=True, seq__gt=cp.seq).count()
    by_device: dict[int, list] = {}
    for cp in checkpoints:
        cp.behind = behind[cp.pk]
        by_device.setdefault(cp.device_id, []).append(cp)
    for device in devices:
        device.synced = sorted(by_device.get(device.pk, []), key=lambda cp: cp.collection.slug)
        device.lag = sum(cp.behind for cp in device.synced) if device.synced else None
    return devices


def pairing_active_count() -> int:
    return PairingCode.objects.filter(used_at=None, expires_at__gt=timezone.now()).count()


def device_counts() -> dict[str, int]:
    return Device.objects.aggregate(total=Count("pk"), active=Count("pk", filter=Q(revoked_at=None)))


def devices_paired_count() -> int:
    """Paired devices not revoked: what the plan's `devices` limit counts."""
    return Device.objects.filter(revoked_at=None).count()


def member_devices_for_subject(user_id: int) -> dict:
    """A member's phones as a data-subject access package shows them (privacy.selectors lists this
    through settings.TESSERA_SUBJECT_DATA_SOURCES)."""
    return {
        "devices": [
            {
                "name": d.name,
                "role": d.role,
                "client_version": d.client_version,
                "paired_at": d.created_at.isoformat(),
                "last_seen_at": d.last_seen_at.isoformat() if d.last_seen_at else None,
                "last_seen_ip": d.last_seen_ip,
                "revoked_at": d.revoked_at.isoformat() if d.revoked_at else None,
            }
            for d in Device.objects.filter(user_id=user_id).order_by("created_at")
        ]
    }


# A connected phone is marked seen at most once a minute (sync.services.SEEN_EVERY) on its heartbeats;
# seen within twice that, it counts as online.
ONLINE_WITHIN = 2 * SEEN_EVERY
RECORD_WRITES = ("record.created", "record.updated", "record.deleted")


def sync_status_panels(*, date_from: date, date_to: date, tz) -> list[dict]:
    """The built-in "Sync status" dashboard (analytics.builtin lists it through
    settings.TESSERA_ANALYTICS_BUILTIN_DASHBOARDS): devices online now, each device's last sync and how
    far behind it is, and the records phones sent (their writes, from the audit log) per local day of
    `tz` from `date_from` to `date_to`."""
    now = timezone.now()
    start = datetime.combine(date_from, time(), tz)
    end = datetime.combine(date_to + timedelta(days=1), time(), tz)
    devices = device_list()
    active = [d for d in devices if d.revoked_at is None]
    online = [d for d in active if d.last_seen_at is not None and now - d.last_seen_at <= ONLINE_WITHIN]
    writes = AuditEvent.objects.filter(
        actor_type=AuditEvent.ActorType.DEVICE, action__in=RECORD_WRITES, occurred_at__gte=start, occurred_at__lt=end
    )
    per_day = {
        row["day"]: row["n"]
        for row in writes.annotate(day=TruncDate("occurred_at", tzinfo=tz)).values("day").annotate(n=Count("pk"))
    }
    per_device = {row["actor_id"]: row["n"] for row in writes.values("actor_id").annotate(n=Count("pk"))}
    days = [date_from + timedelta(days=n) for n in range((date_to - date_from).days + 1)]
    rows = []
    for d in devices:
        last_sync = max((cp.updated_at for cp in d.synced), default=None)
        rows.append(
            [
                d.name,
                d.user.email,
                d.status,
                "online" if d in online else "offline",
                d.last_seen_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if d.last_seen_at else "never",
                last_sync.astimezone(tz).strftime("%Y-%m-%d %H:%M") if last_sync else "never",
                per_device.get(str(d.pk), 0),
                "—" if d.lag is None else d.lag,
            ]
        )
    return [
        {
            "title": "Devices online",
            "kind": "number",
            "number": {
                "text": f"{len(online):,}",
                "label": f"of {len(active):,} paired devices (seen in the last 2 minutes)",
            },
            "columns": ["Online", "Paired"],
            "rows": [[len(online), len(active)]],
        },
        {
            "title": "Records sent by phones per day",
            "kind": "bar",
            "labels": [d.isoformat() for d in days],
            "series": [{"label": "Records written", "data": [per_day.get(d, 0) for d in days]}],
            "columns": ["Day", "Records written"],
            "rows": [[d.isoformat(), per_day.get(d, 0)] for d in days],
        },
        {
            "title": "Devices",
            "kind": "table",
            "columns": ["Device", "Member", "Status", "Now", "Last seen", "Last sync", "Records sent", "Behind"],
            "rows": rows,
        },
    ]
