"""Desktop notifications for what needs the owner: a phone's change that lost a sync conflict and a
webhook endpoint disabled after failures, each told once; nothing told for the log before the first run."""

from __future__ import annotations

import pytest

from desktop import runtime
from desktop.notices import CURSOR_FILE, notices_send

pytestmark = pytest.mark.desktop_only


class Told:
    def __init__(self):
        self.notices: list[tuple[str, str]] = []

    def notify(self, title: str, body: str) -> None:
        self.notices.append((title, body))


@pytest.fixture
def told(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    sink = Told()
    runtime.runtime_set(sink)
    yield sink
    runtime.runtime_set(None)


def test_conflicts_and_disabled_endpoints_are_told_once(db, tenants_provisioned, told, tmp_path):
    from audit.services import audit_event_record
    from core.actors import Actor

    audit_event_record(action="webhook_endpoint.disabled", actor=Actor.system("test"), target=("endpoint", "e0", "old"))
    assert notices_send() == 0 and told.notices == []  # the first run starts at the log's end
    assert (tmp_path / CURSOR_FILE).is_file()
    for field in ("qty", "title"):
        audit_event_record(
            action="record.sync_conflict",
            actor=Actor.system("test"),
            target=("record", "r1", "r1"),
            changes={"collection": "jobs", "fields": [field]},
        )
    audit_event_record(
        action="webhook_endpoint.disabled",
        actor=Actor.system("test"),
        target=("endpoint", "e1", "https://erp.example/hook"),
    )
    audit_event_record(action="record.created", actor=Actor.system("test"), target=("record", "r2", "r2"))
    assert notices_send() == 2
    titles = [title for title, _ in told.notices]
    assert titles == ["2 sync conflicts need attention", "Webhook endpoint disabled"]
    assert "jobs" in told.notices[0][1] and "https://erp.example/hook" in told.notices[1][1]
    assert notices_send() == 0 and len(told.notices) == 2  # told once


def test_a_failed_daily_backup_is_told(db, told, settings, monkeypatch, tmp_path):
    from desktop import services
    from desktop.backup import BackupError

    monkeypatch.setattr(services, "_db_path", lambda: tmp_path / "gone" / "tessera.sqlite3")
    with pytest.raises(BackupError):
        services.backup_daily(keep=7)
    assert told.notices and told.notices[0][0] == "Tessera could not back up"
    assert "no workspace database" in told.notices[0][1]
