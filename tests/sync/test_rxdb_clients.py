"""Real RxDB clients against a live Tessera server: the phone-sync promise, end to end (the server,
the clients and the proxy between them: tests/sync/rxdb_live.py)."""

from __future__ import annotations

import time

from tests.sync.rxdb_live import FIELDS, INITIAL_RECORDS, Live, converged, open_clients, record_ids, wait_until

# --- the tests ------------------------------------------------------------------------------------


def test_initial_pull_of_10000_records_then_live_changes_and_deletes_both_ways(live, rx):
    slug = live.collection("rx-pull", records=INITIAL_RECORDS)
    devices = {name: live.pair(name) for name in ("stock", "phone")}
    # "stock" is RxDB's own replicateWithWebsocketServer, untouched; "phone" adds a reply timeout.
    seqs = {
        name: rx.send(
            "open",
            name=name,
            url=devices[name]["url"],
            collection=slug,
            fields=FIELDS,
            batchSize=1000,
            stock=name == "stock",
        )
        for name in devices
    }
    opened = {name: rx.result(seq, timeout=120) for name, seq in seqs.items()}
    assert opened["stock"]["count"] == INITIAL_RECORDS
    assert opened["phone"]["count"] == INITIAL_RECORDS
    server = converged(rx, live, slug, ["stock", "phone"])
    assert len(server) == INITIAL_RECORDS

    first, second, third = record_ids(live, slug, 3)
    # A REST write reaches both phones.
    response = live.rest(
        "PATCH", f"/collections/{slug}/records/{first}", json={"data": {"title": "Changed on the web"}}
    )
    assert response.status_code == 200, response.text
    for name in ("stock", "phone"):
        rx.call("wait", name=name, id=first, fields={"title": "Changed on the web", "version": 2})
    # A REST delete removes the record from both phones.
    assert live.rest("DELETE", f"/collections/{slug}/records/{second}").status_code in (200, 204)
    for name in ("stock", "phone"):
        rx.call("wait", name=name, gone=second)
    # A phone's edit and a phone's delete reach the server and the other phone.
    rx.call("patch", name="phone", id=third, set={"notes": "seen on site", "qty": 7})
    rx.call("wait", name="stock", id=third, fields={"notes": "seen on site", "qty": 7})
    rx.call("remove", name="phone", id=first)
    rx.call("wait", name="stock", gone=first)
    assert live.rest("GET", f"/collections/{slug}/records/{first}").status_code == 404
    assert live.rest("GET", f"/collections/{slug}/records/{third}").json()["data"]["notes"] == "seen on site"
    server = converged(rx, live, slug, ["stock", "phone"])
    assert len(server) == INITIAL_RECORDS - 2


def test_offline_edits_on_two_phones_merge_and_all_converge(live, rx):
    slug = live.collection("rx-merge", records=4)
    names = ["alice", "bob", "carol"]  # carol stays online and only watches
    open_clients(rx, live, slug, names, batchSize=100)
    r1, r2, r3, r4 = record_ids(live, slug, 4)

    for name in ("alice", "bob"):
        rx.call("offline", name=name)
    # Different fields of the same record: both edits are kept.
    rx.call("patch", name="alice", id=r1, set={"title": "Alice's title"})
    rx.call("patch", name="bob", id=r1, set={"notes": "Bob's note"})
    # The same field: the first write to reach the server wins (sync/replication.py).
    rx.call("patch", name="alice", id=r2, set={"qty": 100})
    rx.call("patch", name="bob", id=r2, set={"qty": 200})
    # A delete against an edit: the delete wins.
    rx.call("remove", name="alice", id=r3)
    rx.call("patch", name="bob", id=r3, set={"title": "Bob edits what Alice deleted"})
    # New records made offline on each phone.
    rx.call("insert", name="alice", doc={"id": "alice-new-1", "title": "From Alice"})
    rx.call("insert", name="bob", doc={"id": "bob-new-1", "title": "From Bob", "qty": 3})
    # Meanwhile, the web edits another field of r4 and the phones edit r4 too.
    assert live.rest("PATCH", f"/collections/{slug}/records/{r4}", json={"data": {"qty": 44}}).status_code == 200
    rx.call("patch", name="bob", id=r4, set={"notes": "Bob on r4"})

    rx.call("online", name="alice")
    rx.call("insync", name="alice")
    rx.call("wait", name="carol", id="alice-new-1", fields={"title": "From Alice"})
    rx.call("online", name="bob")
    rx.call("insync", name="bob")

    server = converged(rx, live, slug, names)
    assert server[r1]["title"] == "Alice's title" and server[r1]["notes"] == "Bob's note"
    assert server[r2]["qty"] == 100  # Alice reached the server first
    assert r3 not in server
    assert server["alice-new-1"]["title"] == "From Alice"
    assert server["bob-new-1"]["title"] == "From Bob" and server["bob-new-1"]["qty"] == 3
    assert server[r4]["qty"] == 44 and server[r4]["notes"] == "Bob on r4"


def test_phones_edit_while_the_server_restarts_and_converge_after(live, rx):
    slug = live.collection("rx-restart", records=3)
    names = ["dana", "eli"]
    open_clients(rx, live, slug, names, batchSize=100)
    r1, r2, r3 = record_ids(live, slug, 3)

    def while_down():
        # The phones keep working offline while the server is gone...
        rx.call("patch", name="dana", id=r1, set={"title": "Dana, offline"})
        rx.call("patch", name="eli", id=r2, set={"notes": "Eli, offline"})
        rx.call("insert", name="eli", doc={"id": "eli-new", "title": "Made during the outage"})

        # ...and another process of the deployment writes through the spine meanwhile.
        def spine_write():
            from records.models import Record
            from records.services import record_update

            record_update(
                actor=Live.admin(), record=Record.objects.get(livemode=True, id=r3), data={"qty": 333}, partial=True
            )

        live.committed(spine_write)

    live.restart(while_down=while_down)
    for name in names:
        rx.call("insync", name=name, timeout=30000)
    server = converged(rx, live, slug, names, timeout=30)
    assert server[r1]["title"] == "Dana, offline"
    assert server[r2]["notes"] == "Eli, offline"
    assert server[r3]["qty"] == 333
    assert server["eli-new"]["title"] == "Made during the outage"
    for name in names:  # each phone reconnected by itself through the same proxy
        assert rx.call("stats", name=name)["proxy"]["upgrades"] >= 2


def test_a_revoked_device_is_cut_off_at_once(live, rx):
    slug = live.collection("rx-revoke", records=2)
    opened = open_clients(rx, live, slug, ["lost", "kept"], batchSize=100)
    r1, r2 = record_ids(live, slug, 2)

    live.revoke(opened["lost"]["device"]["id"])

    # Its socket is closed by the server (4401), and every reconnect is refused before the upgrade.
    stats = wait_until(
        lambda: (s := rx.call("stats", name="lost")["proxy"])["open"] == 0 and s,
        timeout=10,
        what="the revoked device's socket to close",
    )
    upgrades, server_bytes = stats["upgrades"], stats["serverBytes"]
    wait_until(
        lambda: rx.call("stats", name="lost")["proxy"]["statuses"][upgrades:],
        timeout=15,
        what="the revoked device to try again",
    )

    # No further data: a change reaches the other device but not the revoked one, and its local
    # edits never reach the server.
    rx.call("patch", name="lost", id=r2, set={"title": "written after revocation"})
    assert (
        live.rest("PATCH", f"/collections/{slug}/records/{r1}", json={"data": {"title": "after revoke"}}).status_code
        == 200
    )
    rx.call("wait", name="kept", id=r1, fields={"title": "after revoke"})
    time.sleep(1.5)
    after = rx.call("stats", name="lost")["proxy"]
    assert after["upgrades"] == upgrades, after
    assert after["serverBytes"] == server_bytes, after
    assert all(status in (401, 403) for status in after["statuses"][upgrades:]), after
    assert rx.call("dump", name="lost")["docs"][r1]["title"] != "after revoke"
    assert live.server_docs(slug)[r2]["title"] != "written after revocation"
    assert 4401 in after["closeCodes"], after


def test_an_erased_subject_leaves_the_phones_and_an_old_offline_edit_does_not_bring_it_back(live, rx):
    """Issue 18: stock RxDB phones hold a data subject's record; after the erasure (a data-subject request
    made through the API) they no longer hold its values, and a phone that edited it offline pushes that
    edit afterwards without bringing anything back."""
    subject, secret = "ada.rx@example.org", "prefers calls before 9, code zq9x"
    slug = live.collection("rx-erase", records=2)

    def compliance_key() -> str:
        from partners.services import api_key_create
        from privacy.services import personal_data_map_set
        from records.models import Collection

        collection = Collection.objects.get(slug=slug, livemode=True, deleted_at=None)
        personal_data_map_set(actor=Live.admin(), collection=collection, personal=["notes"], identifying=["title"])
        return api_key_create(actor=Live.admin(), name="rxdb harness", mode="live", scopes=["compliance:manage"])[1]

    key = live.committed(compliance_key)
    created = live.rest("POST", f"/collections/{slug}/records", json={"data": {"title": subject, "notes": secret}})
    assert created.status_code == 201, created.text
    ada = created.json()["id"]
    devices = {name: live.pair(name) for name in ("stock", "phone")}
    seqs = {
        name: rx.send(
            "open", name=name, url=devices[name]["url"], collection=slug, fields=FIELDS, stock=name == "stock"
        )
        for name in devices
    }
    for seq in seqs.values():
        rx.result(seq, timeout=120)
    for name in devices:
        rx.call("wait", name=name, id=ada, fields={"title": subject, "notes": secret})
    rx.call("offline", name="phone")
    rx.call("patch", name="phone", id=ada, set={"notes": secret + " (edited offline)"})

    with live.http() as http:
        auth = {"Authorization": f"Bearer {key}"}
        opened = http.post(
            "/api/v1/subject_requests",
            headers=auth,
            json={"kind": "erasure", "subject": subject, "requested_by": "Ada, by e-mail", "verification": "ID seen"},
        )
        assert opened.status_code == 201, opened.text
        erased = http.post(f"/api/v1/subject_requests/{opened.json()['id']}/erase", headers=auth)
    assert erased.status_code == 200 and erased.json()["certificate"]["records_erased"] == 1, erased.text

    # The online stock client drops the record; what its storage keeps is a tombstone without values.
    rx.call("wait", name="stock", gone=ada)
    kept = rx.call("stored", name="stock", id=ada)["doc"]
    assert kept is None or (kept["_deleted"] and subject not in str(kept) and "zq9x" not in str(kept))

    # The phone comes back and pushes its old edit: the delete wins, nothing comes back anywhere.
    rx.call("online", name="phone")
    rx.call("insync", name="phone")
    rx.call("wait", name="phone", gone=ada)
    kept = rx.call("stored", name="phone", id=ada)["doc"]
    assert kept is None or (kept["_deleted"] and subject not in str(kept) and "zq9x" not in str(kept))

    def server_state():
        from records.models import Change, Record

        record = Record.objects.get(livemode=True, id=ada)
        return record.data, record.deleted_at is not None, [c.data for c in Change.objects.filter(record_id=ada)]

    data, deleted, history = live.committed(server_state)
    assert data == {} and deleted and all(h == {} for h in history), (data, history)
    server = converged(rx, live, slug, list(devices))
    assert ada not in server and len(server) == 2
