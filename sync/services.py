"""Writes about devices: start a pairing, exchange its code or PIN for a device token, revoke a
device (its open sockets close at once), and remember when a device was seen and how far it synced.
Pairing and revoking are audited."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, GenericIPAddressField, Q, Value, When
from django.utils import timezone

from audit.services import audit_event_record, audit_subjects_erase
from billing import entitlements
from core.actors import Actor, Principal
from core.errors import ServiceError, Throttled
from core.events import DomainEvent, event_emit, target_of
from core.token_buckets import Limit, bucket_name, buckets_take
from rbac.permissions import has_permission, permission_check, role_permissions
from rbac.roles import Role
from sync.fanout import device_disconnect
from sync.models import Device, DeviceCheckpoint, DeviceWrite, PairingCode

logger = logging.getLogger(__name__)

PAIRING_TTL = timedelta(minutes=10)
TOKEN_PREFIX = "tsd_"
CODE_PREFIX = "tpc_"
PIN_DIGITS = 8
# How often a device's `last_seen_at` is written while it stays connected.
SEEN_EVERY = timedelta(seconds=60)


class SyncError(ServiceError):
    """A pairing or device request that cannot be carried out (mapped to problem+json or a form error)."""

    status = 400


def device_object(device: Device) -> dict:
    """A device as events carry it (never its token)."""
    return {
        "object": "device",
        "id": str(device.pk),
        "name": device.name,
        "role": device.role,
        "user": device.user.email,
    }


def _device_event_emit(type: str, actor, device: Device, *, changes: dict) -> None:
    event_emit(
        DomainEvent(
            type=type,
            actor=Actor.of(actor),
            data={"object": device_object(device)},
            target=target_of(device),
            changes=changes,
            # its name (often its owner's) and owner's address: sealed under the phone, erased with its member
            personal_subject=f"device:{device.pk}",
        )
    )


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def pin_hash(pin: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), b"tessera-pairing-pin:" + pin.encode(), hashlib.sha256).hexdigest()


def role_within(role: str, *holders: str) -> bool:
    """Whether `role` allows nothing that one of the `holders` roles does not."""
    return all(role_permissions(role) <= role_permissions(h) for h in holders)


def pairing_for_allowed(actor, user) -> bool:
    """Whether `actor` may pair a device that acts as `user`: themselves, anyone for those who
    manage devices (Admins), else members whose role allows nothing beyond the actor's."""
    return user.pk == actor.pk or has_permission(actor, "devices.manage") or role_within(user.role, actor.role)


def device_effective_role(device: Device) -> str:
    """The device's role, never stronger than its user's role today (a demoted user's phone is demoted)."""
    if role_within(device.role, device.user.role):
        return device.role
    if role_within(device.user.role, device.role):
        return device.user.role
    return Role.VIEWER


# --- pairing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairingStarted:
    pairing: PairingCode
    code: str  # for the QR image
    pin: str  # to type


def pairing_start(*, actor: Actor | Principal, user=None, role: str | None = None) -> PairingStarted:
    """A new single-use pairing for `user` (default: the actor) with `role` (default: the user's role,
    at most Manager). The raw code and PIN are returned once and stored only as hashes."""
    permission_check(actor, "devices.pair")
    entitlements.devices_check()
    user = user or actor
    if role is None:
        role = user.role if role_within(user.role, Role.MANAGER) else Role.MANAGER
        if not role_within(role, actor.role, user.role):
            role = Role.VIEWER
    if role not in Role.values:
        raise SyncError("Choose a role for the device.", param="role")
    if not user.is_active:
        raise SyncError("This member is not active.", param="user")
    if not pairing_for_allowed(actor, user):
        # A device acts as its member (audit, records' authors): a Manager must not get a phone
        # that speaks for an Admin, even with a Manager's rights.
        raise SyncError(
            f"You can pair phones only for yourself and members whose role is within yours ({user.email} is a "
            f"{user.get_role_display()}).",
            param="user",
            status=403,
            code="forbidden",
        )
    if not role_within(role, actor.role):
        raise SyncError("A device cannot get more rights than you have.", param="role", status=403, code="forbidden")
    if not role_within(role, user.role):
        raise SyncError(
            f"{user.email} is a {user.get_role_display()}: the device cannot have more rights.", param="role"
        )
    for _ in range(5):  # the PIN space is small: retry the rare clash with another live pairing
        code = CODE_PREFIX + secrets.token_urlsafe(24)
        pin = f"{secrets.randbelow(10**PIN_DIGITS):0{PIN_DIGITS}d}"
        try:
            with transaction.atomic():
                PairingCode.objects.filter(used_at=None, expires_at__lte=timezone.now() - PAIRING_TTL).delete()
                pairing = PairingCode.objects.create(
                    code_hash=token_hash(code),
                    pin_hash=pin_hash(pin),
                    role=role,
                    user=user,
                    created_by=actor,
                    expires_at=timezone.now() + PAIRING_TTL,
                )
                audit_event_record(
                    action="pairing.started",
                    actor=actor,
                    target=("pairing", pairing.pk, user.email),
                    changes={"after": {"user": user.email, "role": role, "expires_at": pairing.expires_at.isoformat()}},
                )
            return PairingStarted(pairing, code, pin)
        except IntegrityError:
            continue
    raise SyncError("Could not start a pairing; try again.", status=503, code="try_again")


# Guessing: failed attempts per client address and per workspace (all addresses together), with one
# budget for PINs and another for QR codes, so that anyone spending the workspace's PIN budget with
# wrong PINs cannot deny the QR path too. A workspace sees at most 30 wrong PINs at once and then one
# per 10 s: over a pairing's 10 minutes that is under 100 guesses of 10^8. A QR code (32 random
# bytes) cannot be guessed at all; its budget only slows one address sending garbage.
def _guess_limits(kind: str) -> dict:
    if kind == "pin":
        return {"ip": Limit(rate=1 / 60, burst=10), "workspace": Limit(rate=1 / 10, burst=30)}
    return {"ip": Limit(rate=1 / 60, burst=10)}


def _guess_buckets(tenant, ip: str | None, kind: str) -> list:
    limits = _guess_limits(kind)
    names = {
        "ip": bucket_name(f"{{w{tenant.pk}}}", "pair", kind, "ip", ip or "unknown"),
        "workspace": bucket_name(f"{{w{tenant.pk}}}", "pair", kind, "workspace"),
    }
    return [(names[scope], limit) for scope, limit in limits.items()]


def _guess_allowed(tenant, ip: str | None, kind: str) -> int | None:
    """None if another guess may be tried now, else the seconds to wait."""
    buckets = _guess_buckets(tenant, ip, kind)
    try:
        _, levels = buckets_take(buckets, cost=0)
    except Exception:
        logger.exception("pairing rate limiter unavailable; attempt let through")
        return None
    waits = [int((1 - level) / limit.rate) + 1 for (_, limit), level in zip(buckets, levels, strict=True) if level < 1]
    return max(waits) if waits else None


def _guess_failed(tenant, ip: str | None, kind: str) -> None:
    try:
        buckets_take(_guess_buckets(tenant, ip, kind), cost=1)
    except Exception:
        logger.exception("pairing rate limiter unavailable")


def pairing_exchange(
    *,
    tenant,
    code: str | None = None,
    pin: str | None = None,
    name: str,
    client_version: str = "",
    ip: str | None = None,
) -> tuple[Device, str]:
    """Trade a pairing's code (from the QR image) or PIN for a new device and its raw token (once)."""
    name = (name or "").strip()
    client_version = (client_version or "").strip()
    if not name or len(name) > 100:
        raise SyncError("`name` is required: what the device is called (max 100 characters).", param="name")
    if len(client_version) > 100:
        raise SyncError("`client_version` is at most 100 characters.", param="client_version")
    if bool(code) == bool(pin):
        raise SyncError("Send either `code` (from the QR code) or `pin` (8 digits).", param="code")
    kind = "pin" if pin is not None else "code"
    wait = _guess_allowed(tenant, ip, kind)
    if wait is not None:
        raise Throttled(f"Too many wrong pairing codes. Retry in {wait} s.", retry_after=wait)
    if pin is not None and not (isinstance(pin, str) and len(pin) == PIN_DIGITS and pin.isascii() and pin.isdigit()):
        _guess_failed(tenant, ip, kind)
        raise SyncError(f"The PIN has {PIN_DIGITS} digits.", param="pin", code="pairing_code_invalid")
    if code is not None and not isinstance(code, str):
        raise SyncError("`code` must be a string.", param="code")
    lookup = {"pin_hash": pin_hash(pin)} if pin is not None else {"code_hash": token_hash(code)}
    with transaction.atomic():
        pairing = PairingCode.objects.select_for_update().select_related("user").filter(**lookup).first()
        now = timezone.now()
        if pairing is None:
            failure = ("This pairing code is not known.", "pairing_code_invalid")
        elif pairing.used_at is not None:
            failure = ("This pairing code was used already: start a new pairing.", "pairing_code_used")
        elif pairing.expires_at <= now:
            failure = ("This pairing code has expired: start a new pairing.", "pairing_code_expired")
        elif not pairing.user.is_active:
            failure = ("The member this pairing was for is no longer active.", "pairing_code_invalid")
        else:
            failure = None
        if failure is None:
            entitlements.devices_check(tenant)  # the plan may have changed since the pairing began
            raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
            device = Device.objects.create(
                name=name,
                user=pairing.user,
                role=pairing.role,
                token_hash=token_hash(raw),
                token_prefix=raw[:8],
                client_version=client_version,
                paired_by=pairing.created_by,
                last_seen_at=now,
                last_seen_ip=ip,
            )
            # The PIN is free again for later pairings (the QR code keeps saying "used").
            pairing.used_at, pairing.device, pairing.pin_hash = now, device, f"used:{pairing.pk}"
            pairing.save(update_fields=["used_at", "device", "pin_hash"])
            _device_event_emit(
                "device.paired",
                device,
                device,
                changes={
                    "after": {
                        "name": name,
                        "user": pairing.user.email,
                        "role": device.role,
                        "client_version": client_version,
                        "by": "pin" if pin is not None else "code",
                    }
                },
            )
            return device, raw
    _guess_failed(tenant, ip, kind)
    raise SyncError(failure[0], code=failure[1], param="pin" if pin is not None else "code")


# --- devices ----------------------------------------------------------------------------------------


def device_for_token(raw: str) -> Device | None:
    """The active device whose raw token is `raw` (inside the current tenant), or None."""
    if not isinstance(raw, str) or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    device = Device.objects.select_related("user").filter(token_hash=token_hash(raw)).first()
    if device is None or not device.is_active:
        return None
    device.role = device_effective_role(device)
    return device


def device_can_revoke(actor, device: Device) -> bool:
    if has_permission(actor, "devices.manage"):
        return True
    return has_permission(actor, "devices.pair") and actor.pk in (device.user_id, device.paired_by_id)


def device_revoke(*, actor: Actor | Principal, device: Device) -> Device:
    """Stop the device at once: its token stops working and its open sockets are closed on commit."""
    if not device_can_revoke(actor, device):
        permission_check(actor, "devices.manage")
    with transaction.atomic():
        device = Device.objects.select_for_update().select_related("user").get(pk=device.pk)
        if device.revoked_at is not None:
            return device
        device.revoked_at = timezone.now()
        device.save(update_fields=["revoked_at"])
        _device_event_emit("device.revoked", actor, device, changes={"after": {"status": "revoked"}})
        transaction.on_commit(lambda: device_disconnect(device.pk))
    return device


def member_devices_revoke(event: DomainEvent) -> None:
    """Subscriber (in the transaction) of `member.removed` — from the console, SCIM or SSO: the member's
    phones are revoked with the removal, and their open sockets closed once it commits. Of
    `member.erased`: the phones go with the member's account; what the audit log sealed under each
    phone (its name) is erased, and their sockets are closed once it commits."""
    member_id = event.data.get("object", {}).get("id")
    if event.type == "member.erased":
        pks = list(Device.objects.filter(user_id=member_id).values_list("pk", flat=True))
        audit_subjects_erase([f"device:{pk}" for pk in pks])
        for pk in pks:
            transaction.on_commit(lambda pk=pk: device_disconnect(pk))
        return
    if event.type != "member.removed":
        return
    devices = list(Device.objects.select_for_update().select_related("user").filter(user_id=member_id, revoked_at=None))
    for device in devices:
        device.revoked_at = timezone.now()
        device.save(update_fields=["revoked_at"])
        _device_event_emit(
            "device.revoked", event.actor, device, changes={"after": {"status": "revoked"}, "why": "member removed"}
        )
        transaction.on_commit(lambda pk=device.pk: device_disconnect(pk))


def _seen_due(device: Device, now) -> bool:
    return device.last_seen_at is None or now - device.last_seen_at >= SEEN_EVERY


def device_seen(*, device: Device, ip: str | None = None, client_version: str | None = None) -> None:
    """Record that the device is connected now (at most once a minute per device)."""
    now = timezone.now()
    updates = {}
    if _seen_due(device, now):
        updates.update(last_seen_at=now, last_seen_ip=ip)
    if client_version and client_version[:100] != device.client_version:
        updates["client_version"] = client_version[:100]
    if updates:
        Device.objects.filter(pk=device.pk).update(**updates)
        for key, value in updates.items():
            setattr(device, key, value)


def devices_recheck(seen_from: dict[int, str | None]) -> dict[int, Device | None]:
    """The connected devices of one workspace re-checked and marked seen (the heartbeat of every socket
    of a server process, sync.heartbeats): {device id: the device as it is now, its role re-derived
    from its user's, or None once it may no longer sync}. Two statements whatever the number: one read,
    and one write for the devices due to be marked seen (each at the address its socket gives)."""
    fresh = {d.pk: d for d in Device.objects.select_related("user").filter(pk__in=list(seen_from))}
    now = timezone.now()
    due = {}
    for device in fresh.values():
        if device.is_active and _seen_due(device, now):
            due[device.pk] = seen_from[device.pk]
    if due:
        ip_now = Case(
            *[When(pk=pk, then=Value(ip, output_field=GenericIPAddressField())) for pk, ip in due.items()],
            default=F("last_seen_ip"),
        )
        Device.objects.filter(pk__in=list(due)).update(last_seen_at=now, last_seen_ip=ip_now)
    result: dict[int, Device | None] = {}
    for pk in seen_from:
        device = fresh.get(pk)
        if device is None or not device.is_active:
            result[pk] = None
            continue
        if pk in due:
            device.last_seen_at, device.last_seen_ip = now, due[pk]
        device.role = device_effective_role(device)
        result[pk] = device
    return result


def device_checkpoints_save(*, device: Device, checkpoints: dict[int, tuple[int, str]]) -> None:
    """Store the latest checkpoint per collection id (only forwards: an old pull never rewinds it).

    One statement for them all, the same in both runtimes (PostgreSQL and SQLite both upsert): a
    device's first pull after a reconnect used to cost three per collection, a fleet of phones coming
    back after a restart three thousand."""
    if not checkpoints:
        return
    ops = connection.ops
    table = ops.quote_name(DeviceCheckpoint._meta.db_table)
    now = ops.adapt_datetimefield_value(timezone.now())
    rows = [(device.pk, collection, seq, record_id[:64], now) for collection, (seq, record_id) in checkpoints.items()]
    sql = (
        f"INSERT INTO {table} (device_id, collection_id, seq, record_id, updated_at) "  # noqa: S608
        f"VALUES {', '.join(['(%s, %s, %s, %s, %s)'] * len(rows))} "
        "ON CONFLICT (device_id, collection_id) DO UPDATE SET seq = excluded.seq, record_id = excluded.record_id, "
        f"updated_at = excluded.updated_at WHERE {table}.seq < excluded.seq"
    )
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [value for row in rows for value in row])
    except IntegrityError:  # a collection deleted since the pull: its checkpoint no longer matters
        pass


def device_writes_prune(*, now=None) -> int:
    """Forget the writes devices made (DeviceWrite) once they can no longer matter; returns how many.

    A device's last accepted write of a record is the merge base of its next push of that record
    while the phone has not taken in the server's answer yet (sync/replication.py) — seconds, or as
    long as the phone stays offline with that answer lost. Kept TESSERA_SYNC_DEVICE_WRITE_DAYS after
    the write: a phone away longer that then edits the same field again has its own earlier value
    treated as a concurrent change (the server keeps that earlier value). A revoked device never
    pushes again: its rows go at once."""
    now = now or timezone.now()
    expired = now - timedelta(days=settings.TESSERA_SYNC_DEVICE_WRITE_DAYS)
    deleted, _ = DeviceWrite.objects.filter(Q(updated_at__lt=expired) | Q(device__revoked_at__isnull=False)).delete()
    return deleted
