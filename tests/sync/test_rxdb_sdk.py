"""The client SDK (clients/js, packed and installed into the RxDB harness by ./test.sh) against a live
server: each way RxDB's stock websocket client fails an app (issue 13), handled.

The stock client, for comparison: a request in flight when the connection drops is never answered
and replication stops; error frames reach RxDB as `undefined`; cancel() leaves the socket open;
pause() during a push could drop those documents while awaitInSync() resolved.

What the model leaves out: the phone's network is the loopback through the driver's TCP proxy, so a
"dead" connection is one whose bytes the proxy drops, not a radio that fades.
"""

from __future__ import annotations

import time

import pytest

from tests.sync.rxdb_harness import DriverError
from tests.sync.rxdb_live import converged, open_clients, record_ids, wait_until

SDK = {"sdk": True}


def test_a_request_in_flight_when_the_connection_drops_is_retried_on_the_next_connection(live, rx):
    slug = live.collection("sdk-inflight", records=2)
    # Short timeouts keep the test quick; the defaults (15 s, 2 s) are for phones.
    open_clients(rx, live, slug, ["phone"], sdkOptions={"requestTimeout": 2000, "retryTime": 300}, **SDK)
    r1, r2 = record_ids(live, slug, 2)

    rx.call("mute", name="phone")  # the answers stop coming: the phone does not know yet
    rx.call("patch", name="phone", id=r1, set={"title": "sent into the void"})
    time.sleep(0.3)
    rx.call("offline", name="phone")
    rx.call("online", name="phone")
    rx.call("insync", name="phone", timeout=20000)
    assert live.server_docs(slug)[r1]["title"] == "sent into the void"
    # The live stream was subscribed again on the new connection.
    assert live.rest("PATCH", f"/collections/{slug}/records/{r2}", json={"data": {"qty": 42}}).status_code == 200
    rx.call("wait", name="phone", id=r2, fields={"qty": 42})
    converged(rx, live, slug, ["phone"])


def test_a_silent_connection_is_given_up_after_the_request_timeout(live, rx):
    slug = live.collection("sdk-silent", records=1)
    open_clients(rx, live, slug, ["phone"], sdkOptions={"requestTimeout": 1500, "retryTime": 300}, **SDK)
    (r1,) = record_ids(live, slug, 1)
    upgrades = rx.call("stats", name="phone")["proxy"]["upgrades"]

    # The connection stays open but nothing comes back (a half-dead mobile link): no close ever comes.
    rx.call("mute", name="phone")
    rx.call("patch", name="phone", id=r1, set={"notes": "through a dead link"})
    # The SDK notices by the missing answer, opens a new connection and sends again.
    wait_until(
        lambda: rx.call("stats", name="phone")["proxy"]["upgrades"] > upgrades, timeout=10, what="a new connection"
    )
    rx.call("insync", name="phone", timeout=20000)
    assert live.server_docs(slug)[r1]["notes"] == "through a dead link"
    codes = {e["code"] for e in rx.call("errors", name="phone")["errors"]}
    assert "timeout" in codes, codes


def test_error_frames_reach_the_app_as_typed_errors(live, rx):
    live.collection("sdk-errors", records=1)
    device = live.pair("wrong-collection")
    rx.call(
        "open",
        name="lost",
        url=device["url"],
        collection="no-such-collection",
        fields=[],
        awaitInitial=False,
        sdkOptions={"retryTime": 300},
        **SDK,
    )
    errors = wait_until(
        lambda: [e for e in rx.call("errors", name="lost")["errors"] if e["code"] == "unknown_collection"],
        timeout=10,
        what="the error frame to reach the app as a typed error",
    )
    assert errors[0]["name"] == "TesseraSyncError", errors
    assert "no-such-collection" in errors[0]["message"], errors


def test_cancel_closes_the_socket(live, rx):
    slug = live.collection("sdk-cancel", records=1)
    open_clients(rx, live, slug, ["leaving"], **SDK)
    assert rx.call("stats", name="leaving")["proxy"]["open"] == 1
    rx.call("cancel", name="leaving")
    wait_until(lambda: rx.call("stats", name="leaving")["proxy"]["open"] == 0, timeout=5, what="the socket to close")
    time.sleep(1.5)  # and it does not come back by itself
    assert rx.call("stats", name="leaving")["proxy"]["open"] == 0


def test_pause_during_a_push_drops_nothing_and_resume_sends_it(live, rx):
    slug = live.collection("sdk-pause", records=3)
    open_clients(rx, live, slug, ["pauser", "watcher"], **SDK)
    r1, r2, r3 = record_ids(live, slug, 3)

    rx.call("patch", name="pauser", id=r1, set={"title": "pushed as we paused"})
    rx.call("pause", name="pauser")
    rx.call("patch", name="pauser", id=r2, set={"title": "made while paused"})
    rx.call("remove", name="pauser", id=r3)
    # Paused: the app is not told it is in sync while its changes wait.
    with pytest.raises(DriverError, match="timeout after 1500 ms"):
        rx.call("insync", name="pauser", timeout=1500)
    assert live.server_docs(slug)[r2]["title"] != "made while paused"

    rx.call("resume", name="pauser")
    rx.call("insync", name="pauser", timeout=20000)
    server = converged(rx, live, slug, ["pauser", "watcher"])
    assert server[r1]["title"] == "pushed as we paused"
    assert server[r2]["title"] == "made while paused"
    assert r3 not in server


def test_an_answer_that_arrives_while_paused_is_taken_in_and_nothing_stays_stale(live, rx):
    """Convergence seed 7919, made deterministic: a phone resumes with many changes to push, its pull
    lands first, and it is paused again before the (long) push is answered. RxDB's own pause threw
    that answer away and then moved its push checkpoint past those rows: the server had the phone's
    edits, but the phone kept its old versions of them for good (every later pull skipped them as
    local changes not yet pushed)."""
    edited_count = 60  # written one by one by the server: the push takes a second or more
    slug = live.collection("sdk-pause-answer", records=edited_count + 1)
    open_clients(rx, live, slug, ["phone"], sdkOptions={"requestTimeout": 20000, "retryTime": 300}, **SDK)
    other, *edited = record_ids(live, slug, edited_count + 1)

    rx.call("pause", name="phone")
    for i, record_id in enumerate(edited):
        rx.call("patch", name="phone", id=record_id, set={"notes": f"while paused {i}"})
    assert live.rest("PATCH", f"/collections/{slug}/records/{other}", json={"data": {"qty": 7}}).status_code == 200
    rx.call("resume", name="phone")
    rx.call("wait", name="phone", id=other, fields={"qty": 7})  # the server's change is in
    rx.call("pause", name="phone")
    wait_until(
        lambda: all(live.server_docs(slug)[r].get("notes") == f"while paused {i}" for i, r in enumerate(edited)),
        timeout=30,
        what="the server to store the phone's edits",
    )
    time.sleep(0.5)  # its answer reaches the paused phone
    rx.call("resume", name="phone")
    rx.call("insync", name="phone", timeout=20000)
    server = converged(rx, live, slug, ["phone"])
    # The phone holds the server's versions of what it wrote (not its own copies without them).
    assert all(server[r]["version"] >= 2 for r in edited)


@pytest.mark.saas_only
def test_a_resync_queued_behind_a_live_change_still_pulls(live, rx):
    """RxDB takes the live changes waiting in its pull queue together, up to the first RESYNC, and
    then discards that RESYNC: a phone resumed while a long push was in flight (so a live change that
    came before the pause waited in the queue) never pulled what changed while it was paused.
    Convergence seed 7919 met it. The other writer goes through a second server process: one process
    would handle its write only after the phone's push (SaaS only; the desktop is one process)."""
    other = live.second_server()
    pushed_count = 200  # written one by one by the server: the push takes seconds, even on a fast machine
    slug = live.collection("sdk-resync-behind", records=pushed_count + 2)
    open_clients(rx, live, slug, ["phone"], sdkOptions={"requestTimeout": 20000, "retryTime": 300}, **SDK)
    before, during, *pushed = record_ids(live, slug, pushed_count + 2)

    def elsewhere(record_id: str, qty: int) -> None:
        response = live.rest_to(other, "PATCH", f"/collections/{slug}/records/{record_id}", json={"data": {"qty": qty}})
        assert response.status_code == 200, response.text

    rx.call("bulkPatch", name="phone", ids=pushed, set={"notes": "from the phone"})  # one long push
    elsewhere(before, 11)  # its live change waits in RxDB's queue until the push is answered
    rx.call("pause", name="phone")
    elsewhere(during, 22)  # not taken in while paused: resume() pulls it
    assert live.server_docs(slug)[pushed[-1]].get("notes") != "from the phone"  # the push is still out
    rx.call("resume", name="phone")
    rx.call("insync", name="phone", timeout=30000)
    server = converged(rx, live, slug, ["phone"])
    assert server[during]["qty"] == 22 and server[before]["qty"] == 11


def test_a_refused_push_reaches_the_app_as_a_typed_error(live, rx):
    """The stock client took a push's error frame as `undefined` and retried it silently for ever. A
    document the server refuses (an id it cannot take) is told to the app as a TesseraSyncError naming
    the row, so the app can act on it."""
    slug = live.collection("sdk-refused", records=1)
    open_clients(rx, live, slug, ["phone"], sdkOptions={"retryTime": 300}, **SDK)

    rx.call("insert", name="phone", doc={"id": "not an id!", "title": "refused"})
    errors = wait_until(
        lambda: [e for e in rx.call("errors", name="phone")["errors"] if e["code"] == "invalid_params"],
        timeout=10,
        what="the refused push to reach the app as a typed error",
    )
    assert errors[0]["name"] == "TesseraSyncError" and "newDocumentState.id" in errors[0]["message"], errors
    assert "not an id!" not in live.server_docs(slug)
