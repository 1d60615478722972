"""What goes into the outbox, and from where: hooked up in WebhooksConfig.ready().

- record.* from the write spine's outbox hook (records.hooks.outbox_writers), inside its transaction;
- collection.*, member.*, api_key.* and device.* from the audit log: those actions are audited in the same
  transaction as the change (records.services, accounts.services, partners.services, sync.services), so listening to
  the audit event being written is one hook point for all of them, and an action that is audited
  cannot skip its webhook. The payload is read back from the changed object in that transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from records.hooks import ChangeNotice
from webhooks.services import endpoints_enabled, event_emit

logger = logging.getLogger(__name__)


def _endpoints_of_batch(notice: ChangeNotice):
    """A bulk write's endpoints, read once for all its records (None: event_emit reads them)."""
    if notice.batch is None:
        return None
    key = ("webhooks.endpoints", notice.livemode)
    if key not in notice.batch:
        notice.batch[key] = endpoints_enabled(livemode=notice.livemode)
    return notice.batch[key]


def record_outbox_write(notice: ChangeNotice) -> None:
    event_emit(
        type=f"record.{notice.op}",
        livemode=notice.livemode,
        endpoints=_endpoints_of_batch(notice),
        data={
            "object": "record",
            "id": notice.record_id,
            "collection": notice.collection_slug,
            "version": notice.version,
            "seq": notice.seq,
            "livemode": notice.livemode,
            "data": notice.data,
            "changed_fields": list(notice.changed_fields),
            "occurred_at": notice.occurred_at,
        },
    )


def _pk(audit) -> int | None:
    """The audited object's primary key (every object with events here has an integer key)."""
    try:
        return int(audit.target_id)
    except (TypeError, ValueError):
        return None


def _collection(audit) -> tuple[bool, dict] | None:
    from records.models import Collection

    collection = Collection.objects.filter(pk=_pk(audit)).first()
    if collection is None:
        return None
    data = {
        "object": "collection",
        "slug": collection.slug,
        "name": collection.name,
        "description": collection.description,
        "fields": collection.fields,
        "livemode": collection.livemode,
    }
    if collection.deleted_at is not None:
        data["deleted"] = True
    return collection.livemode, data


def _member(audit) -> tuple[bool, dict] | None:
    from accounts.models import User

    user = User.objects.filter(pk=_pk(audit)).first()
    if user is None:
        return None
    data = {"object": "member", "id": str(user.pk), "email": user.email, "role": user.role}
    before = (audit.changes or {}).get("before") or {}
    if audit.action == "member.role_changed" and "role" in before:
        data["previous_role"] = before["role"]
    return True, data


def _invitation(audit) -> tuple[bool, dict] | None:
    from accounts.models import Invitation

    invitation = Invitation.objects.filter(pk=_pk(audit)).first()
    if invitation is None:
        return None
    return True, {
        "object": "invitation",
        "id": str(invitation.pk),
        "email": invitation.email,
        "role": invitation.role,
        "expires_at": invitation.expires_at.isoformat(),
    }


def _api_key(audit) -> tuple[bool, dict] | None:
    from partners.models import ApiKey

    key = ApiKey.objects.filter(pk=_pk(audit)).first()
    if key is None:
        return None
    data = {"object": "api_key", "id": str(key.pk), "name": key.name, "prefix": key.prefix, "mode": key.mode}
    if audit.action == "api_key.rotated":
        data["rotated_to"] = str(key.rotated_to_id) if key.rotated_to_id else None
        data["expires_at"] = key.expires_at.isoformat() if key.expires_at else None
    return key.livemode, data


def _device(audit) -> tuple[bool, dict] | None:
    from sync.models import Device

    device = Device.objects.select_related("user").filter(pk=_pk(audit)).first()
    if device is None:
        return None
    return True, {
        "object": "device",
        "id": str(device.pk),
        "name": device.name,
        "role": device.role,
        "user": device.user.email,
    }


# audit action → (event type, how to read the payload); an action not listed sends no webhook.
AUDITED: dict[str, Callable] = {
    "collection.created": _collection,
    "collection.updated": _collection,
    "collection.deleted": _collection,
    "member.invited": _invitation,
    "member.joined": _member,
    "member.role_changed": _member,
    "member.removed": _member,
    "api_key.created": _api_key,
    "api_key.rotated": _api_key,
    "api_key.revoked": _api_key,
    "device.paired": _device,
    "device.revoked": _device,
}


def audit_outbox_write(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """post_save of audit.AuditEvent: emit the webhook event the audited action stands for."""
    if not created or raw:
        return
    read = AUDITED.get(instance.action)
    if read is None:
        return
    found = read(instance)
    if found is None:
        logger.warning(
            "webhooks: %s names %s %s, which is gone", instance.action, instance.target_type, instance.target_id
        )
        return
    livemode, data = found
    event_emit(type=instance.action, livemode=livemode, data=data)
