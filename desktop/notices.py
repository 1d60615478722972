"""Desktop notifications for what needs the owner's attention while the window is closed.

Read from the audit log (append-only, numbered), so nothing else has to know the desktop exists: a
phone's change that lost a sync conflict (`record.sync_conflict`) and a webhook endpoint disabled
after failing deliveries (`webhook_endpoint.disabled`). A failed automatic backup is told by the
backup itself (desktop.services.backup_daily). The last event told is remembered in the data folder.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from desktop.runtime import runtime_current

logger = logging.getLogger(__name__)

CURSOR_FILE = "notices.cursor"
WATCHED = ("record.sync_conflict", "webhook_endpoint.disabled")


@dataclass(frozen=True)
class Notice:
    title: str
    body: str


def _cursor_path() -> Path:
    return Path(settings.DATA_DIR) / CURSOR_FILE


def notices_pending() -> tuple[list[Notice], int | None]:
    """(notices for the events since the last told one, the newest event's number). On the first
    run nothing is told: the cursor starts at the log's end."""
    from audit.models import AuditEvent

    try:
        after = int(_cursor_path().read_text().strip())
    except (OSError, ValueError):
        newest = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
        return [], newest or 0
    events = list(
        AuditEvent.objects.filter(seq__gt=after, action__in=WATCHED)
        .order_by("seq")
        .values("seq", "action", "target_label", "changes")[:500]
    )
    if not events:
        return [], None
    notices: list[Notice] = []
    conflicts = [e for e in events if e["action"] == "record.sync_conflict"]
    if conflicts:
        collections = Counter(e["changes"].get("collection", "") for e in conflicts)
        where = ", ".join(sorted(c for c in collections if c)) or "records"
        count = len(conflicts)
        notices.append(
            Notice(
                f"{count} sync conflict{'s' if count != 1 else ''} need{'s' if count == 1 else ''} attention",
                f"A phone and this computer changed the same fields ({where}); the values here were kept. "
                "See the audit log for what the phone had.",
            )
        )
    for event in events:
        if event["action"] == "webhook_endpoint.disabled":
            notices.append(
                Notice(
                    "Webhook endpoint disabled",
                    f"{event['target_label'] or 'An endpoint'} failed too often and was switched off. "
                    "Fix the receiver, then enable it again under Webhooks.",
                )
            )
    return notices, events[-1]["seq"]


def notices_send() -> int:
    """Tell the owner (desktop notification) and move the cursor on; the number of notices shown."""
    notices, newest = notices_pending()
    runtime = runtime_current()
    for notice in notices:
        logger.info("notice: %s: %s", notice.title, notice.body)
        if runtime is not None:
            runtime.notify(notice.title, notice.body)
    if newest is not None:
        path = _cursor_path()
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(f"{newest}\n")
        tmp.replace(path)
    return len(notices)
