"""What a device last wrote per record (DeviceWrite) and its pruning by the periodic job.

The row makes a phone's second edit, pushed before it took in the answer to its first, merge against
its own first edit rather than against the state before it (sync/replication.py). The job forgets
rows older than TESSERA_SYNC_DEVICE_WRITE_DAYS, and those of revoked devices at once; the tests show
what the window means for a phone: within it the second edit stays, past it the first one does.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.conftest import SAAS
from tests.sync.conftest import FIELDS

pytestmark = pytest.mark.usefixtures("own_counters", "own_channel_layer")


def _push(device, collection, doc: dict, assumed: dict | None) -> list[dict]:
    from sync.replication import master_write

    row = {"newDocumentState": doc, **({"assumedMasterState": assumed} if assumed else {})}
    return master_write(actor=device, collection=collection, rows=[row])


def _first_edit(device, jobs, admin_user, record_id: str) -> dict:
    """A record, and the phone's first edit of its title; returns the state the phone still assumes
    (its answer never taken in: the user typed again, or the answer was lost)."""
    from records.services import record_create
    from sync.documents import document_of

    record = record_create(actor=admin_user, collection=jobs, data={"title": "before", "qty": 1}, record_id=record_id)
    assumed = document_of(record)
    _push(device, jobs, {**assumed, "title": "first"}, assumed)
    return assumed


def _age(device, record_id: str, days: float) -> None:
    from sync.models import DeviceWrite

    DeviceWrite.objects.filter(device=device, record_id=record_id).update(
        updated_at=timezone.now() - timedelta(days=days)
    )


def test_within_the_window_a_second_edit_stays_and_past_it_the_rows_are_pruned(
    tenant, jobs, admin_user, pair, settings
):
    from records.models import Record
    from sync.models import DeviceWrite
    from sync.services import device_writes_prune

    settings.TESSERA_SYNC_DEVICE_WRITE_DAYS = 30
    device, _ = pair()
    recent = _first_edit(device, jobs, admin_user, "recent")
    old = _first_edit(device, jobs, admin_user, "old")
    _age(device, "recent", 29)
    _age(device, "old", 31)

    assert device_writes_prune() == 1
    assert list(DeviceWrite.objects.filter(device=device).values_list("record_id", flat=True)) == ["recent"]

    # The phone pushes its second edit against the state it still assumes (from before its first).
    _push(device, jobs, {**recent, "title": "second"}, recent)
    assert Record.objects.get(id="recent").data["title"] == "second"
    # Past the window its own first edit is taken for a concurrent change, which wins (documented).
    _push(device, jobs, {**old, "title": "second"}, old)
    assert Record.objects.get(id="old").data["title"] == "first"


def test_a_revoked_devices_rows_go_at_once(tenant, jobs, admin_user, pair):
    from sync.models import DeviceWrite
    from sync.services import device_revoke, device_writes_prune

    kept, _ = pair(name="Kept phone")
    revoked, _ = pair(name="Lost phone")
    _first_edit(kept, jobs, admin_user, "kept")
    _first_edit(revoked, jobs, admin_user, "lost")
    device_revoke(actor=admin_user, device=revoked)

    assert device_writes_prune() == 1
    assert list(DeviceWrite.objects.values_list("device_id", "record_id")) == [(kept.pk, "kept")]


def test_the_beat_job_prunes_every_workspace_and_only_its_own_rows(
    request, tenant, jobs, admin_user, pair, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from accounts.models import User
    from config.celery_app import app
    from rbac.roles import Role
    from records.services import collection_create
    from sync.models import DeviceWrite
    from sync.services import pairing_exchange, pairing_start
    from sync.tasks import device_writes_prune_all_workspaces
    from tenants.runtime import workspace_context

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "sync.device_writes_prune_all_workspaces" in scheduled  # desktop merges base's schedule

    device, _ = pair()
    _first_edit(device, jobs, admin_user, "alpha-old")
    _first_edit(device, jobs, admin_user, "alpha-new")
    _age(device, "alpha-old", 40)
    workspaces = [tenant]
    if SAAS:  # tenant B: the same record ids, its own device; its fresh row must survive alpha's job
        tenant_b = request.getfixturevalue("tenant_b")
        workspaces.append(tenant_b)
        with workspace_context(tenant_b):
            admin_b = User.objects.filter(role=Role.ADMIN).first()
            jobs_b = collection_create(actor=admin_b, name="Jobs", slug="jobs", fields=FIELDS)
            device_b, _ = pairing_exchange(
                tenant=tenant_b, code=pairing_start(actor=admin_b, user=admin_b, role="manager").code, name="B phone"
            )
            _first_edit(device_b, jobs_b, admin_b, "alpha-old")
            _first_edit(device_b, jobs_b, admin_b, "beta-old")
            _age(device_b, "beta-old", 40)
    monkeypatch.setitem(app.conf, "task_always_eager", True)

    with django_capture_on_commit_callbacks(execute=True):
        assert device_writes_prune_all_workspaces() == len(workspaces)

    assert list(DeviceWrite.objects.values_list("record_id", flat=True)) == ["alpha-new"]
    if SAAS:
        with workspace_context(workspaces[1]):
            assert list(DeviceWrite.objects.values_list("record_id", flat=True)) == ["alpha-old"]
