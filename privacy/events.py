"""The events of data-subject requests (subscribers: settings.TESSERA_EVENT_SUBSCRIBERS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class SubjectErased(DomainEvent):
    """A data subject was erased. Webhook endpoints subscribed to `subject.erased` get `data`, which
    names no one: the request's id and the ids of the records erased, so a partner can erase its own
    copies. In the transaction, stores that may hold the subject's identifier outside records (the
    cached answer to the API call that opened the request, webhook bodies) forget what holds
    `erased_values`, and the audit vault destroys `vault_subjects` (the identifier's e-mail subject)."""

    type: str = "subject.erased"
    data: dict[str, Any] = field(default_factory=dict)
    erased_values: tuple[str, ...] = ()
    vault_subjects: tuple[str, ...] = ()


def subject_erased_data(*, request_id: str, records: list[tuple[str, str]], member_erased: bool) -> dict[str, Any]:
    """The public `data` of `subject.erased`: ids only, no personal value."""
    return {
        "object": {
            "object": "subject_erasure",
            "request": request_id,
            "records": [{"collection": slug, "id": record_id} for slug, record_id in records],
            "member_erased": member_erased,
        }
    }
