"""The /sync/v1/ websocket speaking RxDB's replication protocol, in process (real ASGI app, real
channel layer: Redis in SaaS, in memory on the desktop)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.sync.conftest import Socket, db, run

pytestmark = pytest.mark.usefixtures("own_counters", "own_channel_layer")


def _create(admin_user, collection, record_id, **data):
    from records.services import record_create

    return record_create(actor=admin_user, collection=collection, data=data, record_id=record_id)


# --- connecting --------------------------------------------------------------------------------------


def test_connect_without_or_with_a_wrong_token_is_refused(tenant, pair):
    async def scenario():
        for token in (None, "tsd_not-a-token", "tsk_live_abc"):
            connected, _ = await Socket(tenant, token).connect()
            assert connected is False

    run(scenario)


def test_token_as_subprotocol_is_accepted(tenant, pair, jobs):
    _, token = pair()

    async def scenario():
        sock = Socket(tenant, None, subprotocols=["tessera-sync.v1", token])
        connected, protocol = await sock.connect()
        assert connected is True and protocol == "tessera-sync.v1"
        reply = await sock.call("jobs", "masterChangesSince", [None, 10])
        assert reply["result"] == {"documents": [], "checkpoint": {"seq": 0, "id": ""}}
        await sock.close()

    run(scenario)


def test_revoked_device_cannot_connect(tenant, pair, admin_user):
    from sync.services import device_revoke

    device, token = pair()
    device_revoke(actor=admin_user, device=device)

    async def scenario():
        connected, _ = await Socket(tenant, token).connect()
        assert connected is False

    run(scenario)


def test_unknown_host_is_refused(tenant, pair):
    _, token = pair()

    async def scenario():
        connected, _ = await Socket(tenant, token, host="nowhere.example.org").connect()
        return connected

    from tests.conftest import SAAS

    assert run(scenario) is (not SAAS)  # the desktop serves its one workspace on any host


@pytest.mark.saas_only
def test_token_on_another_workspace_host_is_refused(tenant, tenant_b, pair, jobs):
    _, token = pair()

    async def scenario():
        sock = Socket(tenant, token, host=tenant_b.host())
        connected, _ = await sock.connect()
        assert connected is False
        own = Socket(tenant, token)
        assert (await own.connect())[0] is True
        await own.close()

    run(scenario)


# --- bad requests get error frames -------------------------------------------------------------------


def test_bad_requests_get_error_frames(tenant, pair, jobs, make_user):
    _, token = pair()

    async def scenario():
        sock = Socket(tenant, token)
        assert (await sock.connect())[0]
        await sock.send("{not json")
        frame = await sock.recv()
        assert frame["error"]["code"] == "invalid_json" and frame["id"] is None

        await sock.send(json.dumps([1, 2]))
        assert (await sock.recv())["error"]["code"] == "invalid_request"

        # nesting that overflows the parser's stack: an error frame, and the socket still serves
        await sock.send("[" * 100_000 + "]" * 100_000)
        frame = await sock.recv()
        assert frame["error"]["code"] == "invalid_json" and "deeper" in frame["error"]["message"]
        deep = {"id": "d1", "collection": "jobs", "method": "masterWrite", "params": [[]]}
        deep["params"][0] = json.loads("[" * 200 + "]" * 200)  # parses, but too deep to walk
        await sock.send(json.dumps(deep))
        assert (await sock.recv())["error"]["code"] == "invalid_json"

        frame = await sock.call("jobs", "dropDatabase", [])
        assert frame["error"]["code"] == "unknown_method" and frame["collection"] == "jobs"

        frame = await sock.call("nope", "masterChangesSince", [None, 10])
        assert frame["error"]["code"] == "unknown_collection"

        frame = await sock.call("jobs", "masterChangesSince", [7, 10])  # a bare-number checkpoint
        assert frame["error"]["code"] == "invalid_params"
        frame = await sock.call("jobs", "masterChangesSince", [None, "ten"])
        assert frame["error"]["code"] == "invalid_params"
        # more than the server serves at once: an error, never a short batch (RxDB would stop pulling)
        frame = await sock.call("jobs", "masterChangesSince", [None, 10_001])
        assert frame["error"]["code"] == "invalid_params" and "10000" in frame["error"]["message"]
        frame = await sock.call("jobs", "masterWrite", [[{"newDocumentState": {"id": "../x"}}]])
        assert frame["error"]["code"] == "invalid_params"

        big = json.dumps({"id": "big1", "collection": "jobs", "method": "masterWrite", "params": ["x" * (1024 * 1024)]})
        await sock.send(big)
        frame = await sock.recv()
        assert frame["id"] == "big1" and frame["error"]["code"] == "message_too_large"

        # still serving after all that
        frame = await sock.call("jobs", "masterChangesSince", [None, 10])
        assert frame["result"]["documents"] == []
        frame = await sock.call("jobs", "auth", [{"x": "y"}])
        assert frame["result"] is True
        await sock.close()

    run(scenario)


def test_deleted_collection_is_unknown(tenant, pair, jobs, admin_user):
    from records.models import Collection

    _, token = pair()
    Collection.objects.filter(pk=jobs.pk).update(deleted_at="2026-01-01T00:00:00Z")

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        frame = await sock.call("jobs", "masterChangesSince", [None, 10])
        assert frame["error"]["code"] == "unknown_collection"
        await sock.close()

    run(scenario)


# --- pulling -----------------------------------------------------------------------------------------


def test_changes_since_pages_in_commit_order_with_object_checkpoints(tenant, pair, jobs, admin_user):
    from records.services import record_delete, record_update

    device, token = pair()
    records = [_create(admin_user, jobs, f"job{i}", title=f"Job {i}", qty=i) for i in range(5)]
    record_update(actor=admin_user, record=records[0], data={"title": "Job zero"})
    record_delete(actor=admin_user, record=records[1])

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        first = (await sock.call("jobs", "masterChangesSince", [None, 3]))["result"]
        assert [d["id"] for d in first["documents"]] == ["job2", "job3", "job4"]
        assert first["documents"][0] == {
            "id": "job2",
            "title": "Job 2",
            "qty": 2,
            "version": 1,
            "updated_at": first["documents"][0]["updated_at"],
            "_deleted": False,
        }
        assert first["checkpoint"]["id"] == "job4" and isinstance(first["checkpoint"]["seq"], int)
        second = (await sock.call("jobs", "masterChangesSince", [first["checkpoint"], 3]))["result"]
        assert [(d["id"], d["_deleted"]) for d in second["documents"]] == [("job0", False), ("job1", True)]
        assert second["documents"][0]["title"] == "Job zero" and second["documents"][0]["version"] == 2
        third = (await sock.call("jobs", "masterChangesSince", [second["checkpoint"], 3]))["result"]
        assert third == {"documents": [], "checkpoint": second["checkpoint"]}
        await sock.close()
        return second["checkpoint"]

    last = run(scenario)
    # the device's position is stored (on disconnect at the latest) for the console's lag column
    from sync.models import DeviceCheckpoint

    cp = DeviceCheckpoint.objects.get(device=device, collection=jobs)
    assert (cp.seq, cp.record_id) == (last["seq"], last["id"])


def test_pulled_streamed_and_written_back_documents_are_the_same(
    tenant, pair, admin_user, django_capture_on_commit_callbacks
):
    """RxDB deep-compares documents: a record pulled, streamed or answered to a write is one document,
    whatever its fields hold."""
    from records.models import Record
    from records.services import collection_create, record_create, record_delete
    from sync.documents import document_of

    fields = [
        {"key": "title", "type": "text"},
        {"key": "price", "type": "number"},
        {"key": "qty", "type": "integer"},
        {"key": "done", "type": "boolean"},
        {"key": "due", "type": "date"},
        {"key": "extra", "type": "json"},
    ]
    kit = collection_create(actor=admin_user, name="Kit", slug="kit", fields=fields)
    values = [
        {"title": 'Zoë "quoted" \\ back\nslash ✓ 𝄞', "price": 0.1, "qty": -(2**53) + 1, "done": False},
        {"title": "", "price": 1e300, "qty": 0, "done": True, "due": "2026-02-28"},
        {"extra": {"z": [1, 2.5, None, {"a": "é"}], "a": None, "nested": {"b": True}}, "price": -0.0},
        {},
    ]
    _, token = pair()

    def create_all():
        with django_capture_on_commit_callbacks(execute=True):
            made = [
                record_create(actor=admin_user, collection=kit, data=v, record_id=f"k{i}") for i, v in enumerate(values)
            ]
            record_delete(actor=admin_user, record=made[1])

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        await sock.send({"id": "stream", "collection": "kit", "method": "masterChangeStream$", "params": []})
        assert (await sock.recv())["result"] == "RESYNC"
        await db(create_all)()
        streamed = {}
        for _ in range(len(values) + 1):
            (doc,) = (await sock.recv())["result"]["documents"]
            streamed[doc["id"]] = doc
        pulled = (await sock.call("kit", "masterChangesSince", [None, 100]))["result"]["documents"]
        await sock.close()
        return streamed, pulled

    streamed, pulled = run(scenario)
    stored = {r.id: document_of(r) for r in Record.objects.filter(collection=kit)}
    assert {d["id"]: d for d in pulled} == stored == streamed
    assert stored["k1"]["_deleted"] is True and stored["k3"] == {
        "id": "k3",
        "version": 1,
        "updated_at": stored["k3"]["updated_at"],
        "_deleted": False,
    }
    assert stored["k0"]["title"] == values[0]["title"] and stored["k2"]["extra"]["z"][3] == {"a": "é"}
    # The pull's documents are written by the database: a time on the second (SQLite stores it without
    # a fraction) still reads as six decimals, as document_of says.
    from sync.replication import changes_since

    Record.objects.filter(id="k3").update(updated_at=datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC))
    (k3,) = [d for d in changes_since(collection=kit, after=(0, ""), batch_size=10)["documents"] if d["id"] == "k3"]
    assert k3 == document_of(Record.objects.get(id="k3")) and k3["updated_at"] == "2026-03-01T08:00:00.000000Z"


def test_resume_from_checkpoint_after_disconnect(tenant, pair, jobs, admin_user):
    _, token = pair()
    for i in range(4):
        _create(admin_user, jobs, f"r{i}", title=str(i))

    async def first_session():
        sock = Socket(tenant, token)
        await sock.connect()
        result = (await sock.call("jobs", "masterChangesSince", [None, 2]))["result"]
        await sock.close()
        return result["checkpoint"]

    checkpoint = run(first_session)
    _create(admin_user, jobs, "r9", title="while away")

    async def second_session():
        sock = Socket(tenant, token)
        await sock.connect()
        result = (await sock.call("jobs", "masterChangesSince", [checkpoint, 100]))["result"]
        await sock.close()
        return [d["id"] for d in result["documents"]]

    assert run(second_session) == ["r2", "r3", "r9"]


# --- writing -----------------------------------------------------------------------------------------


def _doc(record):
    from sync.documents import document_of

    record.refresh_from_db()
    return document_of(record)


def test_write_creates_updates_and_deletes_through_the_spine(tenant, pair, jobs):
    """Each applied row is answered with the stored document (new version and time), which the phone
    adopts; a row that is exactly the master answers nothing."""
    from audit.models import AuditEvent
    from records.models import Record

    device, token = pair()

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        new = {"id": "p1", "title": "From the phone", "qty": 3, "_deleted": False}
        (created,) = (await sock.call("jobs", "masterWrite", [[{"newDocumentState": new}]]))["result"]
        assert created == {**new, "version": 1, "updated_at": created["updated_at"]}
        pulled = (await sock.call("jobs", "masterChangesSince", [None, 10]))["result"]["documents"][0]
        assert pulled == created
        same = await sock.call("jobs", "masterWrite", [[{"assumedMasterState": created, "newDocumentState": created}]])
        assert same["result"] == []
        edited = {**created, "qty": 4, "_meta": {"lwt": 1}, "_rev": "2-abc", "_attachments": {}}
        (updated,) = (
            await sock.call("jobs", "masterWrite", [[{"assumedMasterState": created, "newDocumentState": edited}]])
        )["result"]
        assert (updated["qty"], updated["version"]) == (4, 2) and "_meta" not in updated
        gone = {**updated, "_deleted": True}
        (deleted,) = (
            await sock.call("jobs", "masterWrite", [[{"assumedMasterState": updated, "newDocumentState": gone}]])
        )["result"]
        assert (deleted["_deleted"], deleted["version"]) == (True, 3)
        await sock.close()

    run(scenario)
    record = Record.objects.get(livemode=True, id="p1")
    assert record.data == {"title": "From the phone", "qty": 4} and record.deleted_at is not None
    actions = list(
        AuditEvent.objects.filter(target_id="p1").order_by("seq").values_list("action", "actor_type", "actor_id")
    )
    assert actions == [(a, "device", str(device.pk)) for a in ("record.created", "record.updated", "record.deleted")]


def test_stale_write_is_merged_and_the_merge_returned(tenant, pair, jobs, admin_user):
    """Different fields changed on both sides: both kept. The same field: the server's value stays."""
    from records.services import record_update

    _, token = pair()
    record = _create(admin_user, jobs, "m1", title="Fix pump", notes="old", qty=1)
    base = _doc(record)
    record_update(actor=admin_user, record=record, data={"notes": "server note", "qty": 2})

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        phone = {**base, "title": "Fix pump now", "qty": 5}  # title: phone only; qty: both
        frame = await sock.call("jobs", "masterWrite", [[{"assumedMasterState": base, "newDocumentState": phone}]])
        await sock.close()
        return frame["result"]

    (merged,) = run(scenario)
    assert merged["title"] == "Fix pump now"  # the phone's change to a field only it changed
    assert merged["notes"] == "server note"  # the server's change to a field only it changed
    assert merged["qty"] == 2  # both changed it: the server's value stays
    assert merged == _doc(record)  # what the phone gets is exactly the stored master
    # The phone's qty was dropped: recorded for someone to look at (the desktop tells its owner).
    from audit.models import AuditEvent

    conflict = AuditEvent.objects.get(action="record.sync_conflict")
    assert conflict.target_id == "m1" and conflict.changes == {"collection": "jobs", "fields": ["qty"]}


def test_resent_write_is_idempotent(tenant, pair, jobs, admin_user):
    """The answer to a write was lost and the phone sends it again: nothing is written twice, and
    the phone gets the master it already made."""
    from records.models import Change

    _, token = pair()
    record = _create(admin_user, jobs, "i1", title="a")
    base = _doc(record)

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        row = {"assumedMasterState": base, "newDocumentState": {**base, "title": "b"}}
        first = await sock.call("jobs", "masterWrite", [[row]])
        again = await sock.call("jobs", "masterWrite", [[row]])  # the reply was lost; the phone resends
        await sock.close()
        return first["result"], again["result"]

    first, again = run(scenario)
    assert first == again == [_doc(record)] and first[0]["title"] == "b"
    assert Change.objects.filter(record_id="i1").count() == 2  # created, then one update


def test_delete_wins_over_an_offline_edit(tenant, pair, jobs, admin_user):
    from records.services import record_delete

    _, token = pair()
    record = _create(admin_user, jobs, "d1", title="a")
    base = _doc(record)
    record_delete(actor=admin_user, record=record)

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        frame = await sock.call(
            "jobs", "masterWrite", [[{"assumedMasterState": base, "newDocumentState": {**base, "title": "b"}}]]
        )
        await sock.close()
        return frame["result"]

    (master,) = run(scenario)
    assert master["_deleted"] is True and master["title"] == "a"


def test_viewer_device_reads_but_its_writes_are_refused_per_document(tenant, pair, jobs, admin_user):
    from records.models import Record

    _, token = pair(role="viewer")
    record = _create(admin_user, jobs, "v1", title="keep me")
    base = _doc(record)

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        pulled = await sock.call("jobs", "masterChangesSince", [None, 10])
        assert [d["id"] for d in pulled["result"]["documents"]] == ["v1"]
        rows = [
            {"assumedMasterState": base, "newDocumentState": {**base, "title": "changed"}},
            {"newDocumentState": {"id": "v2", "title": "new", "_deleted": False}},
        ]
        frame = await sock.call("jobs", "masterWrite", [rows])
        await sock.close()
        return frame["result"]

    refused = run(scenario)
    assert refused[0] == base  # the phone gets the master back and drops its change
    assert refused[1]["id"] == "v2" and refused[1]["_deleted"] is True
    assert Record.objects.get(livemode=True, id="v1").data == {"title": "keep me"}
    assert not Record.objects.filter(id="v2").exists()


def test_invalid_data_is_answered_with_the_master(tenant, pair, jobs, admin_user):
    _, token = pair()
    record = _create(admin_user, jobs, "x1", title="a", qty=1)
    base = _doc(record)

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        frame = await sock.call(
            "jobs", "masterWrite", [[{"assumedMasterState": base, "newDocumentState": {**base, "qty": "many"}}]]
        )
        await sock.close()
        return frame["result"]

    assert run(scenario) == [base]


# --- the live stream ---------------------------------------------------------------------------------


def test_stream_sends_resync_then_live_changes_and_resync_after_a_gap(
    tenant, pair, jobs, admin_user, django_capture_on_commit_callbacks
):
    from records.services import record_update

    _, token = pair()
    record = _create(admin_user, jobs, "s1", title="a")

    def change(title, publish=True):
        if not publish:  # the test's transaction never commits: this change's message is never sent
            return record_update(actor=admin_user, record=record, data={"title": title})
        with django_capture_on_commit_callbacks(execute=True):
            return record_update(actor=admin_user, record=record, data={"title": title})

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        await sock.send({"id": "stream", "collection": "jobs", "method": "masterChangeStream$", "params": []})
        assert await sock.recv() == {"id": "stream", "collection": "jobs", "result": "RESYNC"}
        await db(change)("b")
        event = await sock.recv()
        assert event["id"] == "stream" and event["collection"] == "jobs"
        (doc,) = event["result"]["documents"]
        assert doc["title"] == "b" and doc["version"] == 2
        assert event["result"]["checkpoint"] == {"seq": doc and event["result"]["checkpoint"]["seq"], "id": "s1"}
        await db(change)("c", publish=False)  # lost on the way
        await db(change)("d")
        assert (await sock.recv())["result"] == "RESYNC"
        assert (await sock.recv())["result"]["documents"][0]["title"] == "d"
        await sock.close()

    run(scenario)


def test_a_bulk_delete_streams_every_deletion_in_order_and_finds_the_workspace_once(
    tenant, pair, jobs, admin_user, django_capture_on_commit_callbacks
):
    """The on-commit fan-out of a bulk write looks the workspace up once for all its changes (on the
    desktop that lookup is a query: a 1,000-record delete made a thousand); the phone still gets each
    deletion, in order, with no gap that would make it resync."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from records.services import records_bulk_delete

    ids = [_create(admin_user, jobs, f"b{i:02d}", title=str(i)).id for i in range(25)]
    _, token = pair()

    def delete_all():
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
            records_bulk_delete(actor=admin_user, collection=jobs, record_ids=ids)
        return [q["sql"] for q in queries.captured_queries if "tenants_tenant" in q["sql"]]

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        await sock.send({"id": "stream", "collection": "jobs", "method": "masterChangeStream$", "params": []})
        assert (await sock.recv())["result"] == "RESYNC"
        lookups = await db(delete_all)()
        frames = [await sock.recv() for _ in ids]
        await sock.close()
        return lookups, frames

    lookups, frames = run(scenario)

    assert len(lookups) <= 1
    assert [f["result"]["documents"][0]["id"] for f in frames] == ids
    assert all(f["result"]["documents"][0]["_deleted"] for f in frames)


def test_one_connection_serves_several_collections(tenant, pair, jobs, admin_user, django_capture_on_commit_callbacks):
    from records.services import collection_create, record_create

    sites = collection_create(actor=admin_user, name="Sites", slug="sites", fields=[{"key": "title", "type": "text"}])
    _, token = pair()

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        for slug in ("jobs", "sites"):
            await sock.send({"id": "stream", "collection": slug, "method": "masterChangeStream$", "params": []})
            assert (await sock.recv())["result"] == "RESYNC"

        def write():
            with django_capture_on_commit_callbacks(execute=True):
                record_create(actor=admin_user, collection=sites, data={"title": "HQ"}, record_id="site1")
                record_create(actor=admin_user, collection=jobs, data={"title": "Job"}, record_id="job1")

        await db(write)()
        frames = [await sock.recv(), await sock.recv()]
        assert [(f["collection"], f["result"]["documents"][0]["id"]) for f in frames] == [
            ("sites", "site1"),
            ("jobs", "job1"),
        ]
        await sock.close()

    run(scenario)


def test_revoking_closes_open_sockets_at_once(tenant, pair, jobs, admin_user, django_capture_on_commit_callbacks):
    from sync.services import device_revoke

    device, token = pair()
    _, other_token = pair(name="Other phone")

    async def scenario():
        sock, bystander = Socket(tenant, token), Socket(tenant, other_token)
        await sock.connect()
        await bystander.connect()

        def revoke():
            with django_capture_on_commit_callbacks(execute=True):
                device_revoke(actor=admin_user, device=device)

        await db(revoke)()
        closed = await sock.comm.receive_output(timeout=3)
        assert closed == {"type": "websocket.close", "code": 4401, "reason": "device revoked"}
        assert (await bystander.call("jobs", "masterChangesSince", [None, 1]))["result"]["documents"] == []
        await bystander.close()

    run(scenario)


def test_idle_connection_is_closed_and_heartbeats_are_sent(tenant, pair, jobs, settings):
    settings.TESSERA_SYNC_HEARTBEAT_SECONDS = 0.2
    settings.TESSERA_SYNC_IDLE_SECONDS = 0.5
    _, token = pair()

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        heartbeat = json.loads(await sock.comm.receive_from(timeout=2))
        assert heartbeat["id"] == "heartbeat" and "at" in heartbeat["result"]
        while True:
            out = await sock.comm.receive_output(timeout=3)
            if out["type"] == "websocket.close":
                return out["code"]

    assert run(scenario) == 4408


def test_heartbeats_recheck_all_sockets_devices_together_and_close_a_revoked_one(
    tenant, pair, jobs, settings, monkeypatch
):
    """Six phones connected: each heartbeat re-checks every device (revoked since? its user
    deactivated?) and marks them seen, all in one database trip per tick, not one per socket. A device
    revoked behind the channel layer's back (its disconnect message lost) is closed at the next tick."""
    monkeypatch.setattr(tenant, "plan", "pro")  # six phones: more than the Free plan's five
    import asyncio
    from datetime import timedelta

    from django.utils import timezone

    from sync.heartbeats import rechecks_for
    from sync.models import Device

    settings.TESSERA_SYNC_HEARTBEAT_SECONDS = 0.3
    settings.TESSERA_SYNC_IDLE_SECONDS = 60
    paired = [pair(name=f"Phone {n}") for n in range(6)]
    long_ago = timezone.now() - timedelta(hours=1)
    Device.objects.filter(pk__in=[d.pk for d, _ in paired]).update(last_seen_at=long_ago)

    async def heartbeats(sock, count):
        got = 0
        while got < count:
            out = await sock.comm.receive_output(timeout=3)
            if out["type"] == "websocket.close":
                return out["code"]
            got += json.loads(out["text"])["id"] == "heartbeat"
        return got

    async def scenario():
        socks = [Socket(tenant, token) for _, token in paired]
        for sock in socks:
            await sock.connect()
        await db(lambda: Device.objects.filter(pk=paired[0][0].pk).update(last_seen_at=long_ago))()
        trips = rechecks_for(asyncio.get_running_loop())
        got = await asyncio.gather(*(heartbeats(sock, 2) for sock in socks))
        assert got == [2] * 6
        first_trips = trips.queries
        assert 1 <= first_trips <= 4, first_trips  # 12 re-checks, on 2 or 3 ticks; per socket it was 12 trips

        await db(lambda: Device.objects.filter(pk=paired[0][0].pk).update(revoked_at=timezone.now()))()
        closed = await heartbeats(socks[0], 5)
        assert closed == 4401
        assert await heartbeats(socks[1], 1) == 1
        for sock in socks[1:]:
            await sock.close()

    run(scenario)
    seen = dict(Device.objects.values_list("pk", "last_seen_at"))
    assert all(seen[d.pk] > long_ago for d, _ in paired)


@pytest.mark.saas_only
def test_heartbeats_of_two_workspaces_on_one_tick_stay_apart(tenant, tenant_b, pair, jobs, settings):
    """Both workspaces' phones beat on the same tick of one process, their devices with the same id in
    their own schemas: revoking alpha's (behind the channel layer's back) closes alpha's socket only."""
    from django.utils import timezone

    from accounts.models import User
    from sync.models import Device, PairingCode
    from sync.services import pairing_exchange, pairing_start
    from tenants.runtime import workspace_context

    settings.TESSERA_SYNC_HEARTBEAT_SECONDS = 0.3
    settings.TESSERA_SYNC_IDLE_SECONDS = 60
    ours, our_token = pair()
    with workspace_context(tenant_b):
        admin_b = User.objects.get(email="admin@beta.test")
        started = pairing_start(actor=admin_b, user=admin_b, role="manager")
        theirs, their_token = pairing_exchange(tenant=tenant_b, code=started.code, name="Beta phone")
        if theirs.pk != ours.pk:  # the same id in both schemas: the re-checks must not mix them up
            Device.objects.filter(pk=theirs.pk).update(id=ours.pk)
            PairingCode.objects.filter(device_id=theirs.pk).update(device_id=ours.pk)

    async def scenario():
        our_sock, their_sock = Socket(tenant, our_token), Socket(tenant_b, their_token)
        assert (await our_sock.connect())[0] and (await their_sock.connect())[0]
        await db(lambda: Device.objects.filter(pk=ours.pk).update(revoked_at=timezone.now()))()
        closed = await our_sock.comm.receive_output(timeout=3)
        beats = [json.loads(await their_sock.comm.receive_from(timeout=3))["id"] for _ in range(2)]
        await their_sock.close()
        return closed, beats

    closed, beats = run(scenario)
    assert closed == {"type": "websocket.close", "code": 4401, "reason": "device revoked"}
    assert beats == ["heartbeat", "heartbeat"]


def test_sandbox_collections_do_not_sync(tenant, pair, admin_user):
    """Devices work on live data: a test-mode (sandbox) collection is unknown to them."""
    from records.services import collection_create

    collection_create(actor=admin_user, name="Sandbox", slug="sandboxed", fields=[], livemode=False)
    _, token = pair()

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        frame = await sock.call("sandboxed", "masterChangesSince", [None, 10])
        await sock.close()
        return frame

    assert run(scenario)["error"]["code"] == "unknown_collection"


def test_a_demoted_members_device_is_demoted_too(tenant, pair, jobs, make_user, admin_user):
    from records.models import Record

    member = make_user("manager")
    _, token = pair(user=member, role="manager")
    member.role = "viewer"
    member.save(update_fields=["role"])
    record = _create(admin_user, jobs, "dm1", title="a")
    base = _doc(record)

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        frame = await sock.call(
            "jobs", "masterWrite", [[{"assumedMasterState": base, "newDocumentState": {**base, "title": "b"}}]]
        )
        await sock.close()
        return frame["result"]

    assert run(scenario) == [base]
    assert Record.objects.get(livemode=True, id="dm1").data["title"] == "a"


def test_an_id_of_another_collection_is_never_written(tenant, pair, jobs, admin_user):
    from records.services import collection_create, record_create

    sites = collection_create(actor=admin_user, name="Sites", slug="sites", fields=[{"key": "title", "type": "text"}])
    record_create(actor=admin_user, collection=sites, data={"title": "HQ"}, record_id="shared-id")
    _, token = pair()

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        row = {"newDocumentState": {"id": "shared-id", "title": "hijack", "_deleted": False}}
        frame = await sock.call("jobs", "masterWrite", [[row]])
        await sock.close()
        return frame["result"]

    (answer,) = run(scenario)
    assert answer["id"] == "shared-id" and answer["_deleted"] is True
    assert sites.records.get(id="shared-id").data == {"title": "HQ"}


def test_suspending_a_workspace_closes_its_sockets_at_once_and_a_missed_message_at_the_next_beat(
    tenant, pair, jobs, settings
):
    """A workspace suspended (or deleted) must stop serving the phones already connected: its sockets
    close at once through the channel layer, and one that missed the message closes at its next
    heartbeat, whose re-check asks for the workspace by its row id (never reused, unlike the slug and
    schema name a new sign-up may take after a deletion)."""
    import copy

    from tenants.models import Tenant
    from tenants.runtime import workspace_still_serving
    from tenants.services import tenant_status_set

    settings.TESSERA_SYNC_HEARTBEAT_SECONDS = 0.3
    settings.TESSERA_SYNC_IDLE_SECONDS = 60
    _, token = pair()

    async def scenario():
        sock = Socket(tenant, token)
        assert (await sock.connect())[0]
        await db(tenant_status_set)(tenant=tenant, status=Tenant.Status.SUSPENDED)
        closed = await sock.comm.receive_output(timeout=3)
        assert closed == {"type": "websocket.close", "code": 4401, "reason": "workspace closed"}
        assert (await Socket(tenant, token).connect())[0] is False

        await db(tenant_status_set)(tenant=tenant, status=Tenant.Status.ACTIVE)
        behind_its_back = Socket(tenant, token)
        assert (await behind_its_back.connect())[0]
        await db(lambda: Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED))()
        while (out := await behind_its_back.comm.receive_output(timeout=3))["type"] != "websocket.close":
            pass
        assert out["code"] == 4401

    try:
        run(scenario)
    finally:
        Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.ACTIVE)
        tenant.status = Tenant.Status.ACTIVE
    successor = copy.copy(tenant)  # the same schema name under another row: a later sign-up's
    successor.pk = tenant.pk + 10_000
    assert workspace_still_serving(tenant) and not workspace_still_serving(successor)
