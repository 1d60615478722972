"""The events of data-subject requests (subscribers: settings.TESSERA_EVENT_SUBSCRIBERS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class SubjectErased(DomainEvent):
    """A data subject was erased: stores that may hold the subject's identifier outside records (the
    cached answer to the API call that opened the request) forget what holds `erased_values`. Not sent
    to webhooks: its body would carry the very identifier erased."""

    type: str = "subject.erased"
    data: dict[str, Any] = field(default_factory=dict)
    erased_values: tuple[str, ...] = ()
