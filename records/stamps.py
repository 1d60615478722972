"""Who created and last changed each record, and who made each change: stamps (`Actor.stamp`,
"user:<id>:<e-mail>"). An erased member's stamps keep the id and lose the name."""

from __future__ import annotations

from core.events import DomainEvent
from records.models import Change, Record

ERASED = "[erased]"


def member_erased_stamps_forget(event: DomainEvent) -> None:
    """Subscriber (in the transaction) of `member.erased`: the member's stamps on records and in the
    change feed become "user:<id>:[erased]". Not a change of the records (no new version, nothing sent):
    the data is as it was, only who wrote it is no longer named."""
    member_id = getattr(event, "member_id", "")
    if event.type != "member.erased" or not member_id:
        return
    prefix = f"user:{member_id}:"
    erased = prefix + ERASED
    Record.objects.filter(created_by__startswith=prefix).update(created_by=erased)
    Record.objects.filter(updated_by__startswith=prefix).update(updated_by=erased)
    Change.objects.filter(actor__startswith=prefix).update(actor=erased)
