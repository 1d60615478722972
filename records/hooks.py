"""Extension points of the write spine, filled by later apps in their AppConfig.ready().

- limit checks run first, inside the transaction (billing: plan limits); raise LimitExceeded.
- outbox writers run inside the transaction, after the change is saved (webhooks: the outbox row);
  `ChangeNotice.batch` lets them look something up once per bulk write.
- commit publishers run on commit (sync: publish to the tenant's channel group).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LimitCheck:
    actor: Any
    collection: Any
    creating: int  # records about to be created by this write


@dataclass(frozen=True)
class ChangeNotice:
    """What happened, as later consumers need it (no ORM objects to keep alive past commit)."""

    seq: int
    livemode: bool
    op: str  # created | updated | deleted
    collection_id: int
    collection_slug: str
    record_id: str
    version: int
    data: dict
    changed_fields: list[str] = field(default_factory=list)
    actor: str = ""
    occurred_at: str = ""
    # Shared by every change of one bulk write (None otherwise): hooks may keep there what they would
    # otherwise look up again for each record of the same transaction.
    batch: dict | None = field(default=None, compare=False, repr=False)


limit_checks: list[Callable[[LimitCheck], None]] = []
outbox_writers: list[Callable[[ChangeNotice], None]] = []
commit_publishers: list[Callable[[ChangeNotice], None]] = []
