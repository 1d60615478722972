"""Reads about devices for the console: the device list with each device's sync lag."""

from __future__ import annotations

from django.db.models import Count, Q

from records.models import Record
from sync.models import Device, DeviceCheckpoint, PairingCode


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
    from django.utils import timezone

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
