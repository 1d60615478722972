"""Billing on the sync websocket: a phone's write into a read-only workspace, or beyond the plan's
records, is answered with an error frame that says why (code, limit, usage, billing page) and the
socket keeps serving reads. In process, on the real ASGI app (as tests/sync/test_consumer.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.sync.conftest import Socket, run

pytestmark = [pytest.mark.saas_only, pytest.mark.usefixtures("own_counters", "own_channel_layer")]


def test_sync_write_refused_with_an_error_frame_when_read_only_then_accepted_once_paid(tenant, pair, jobs):
    from billing.models import BillingAccount

    _, token = pair()
    account = BillingAccount.objects.create(workspace=tenant, status="unpaid", plan="starter")

    async def write(sock, doc_id):
        doc = {"id": doc_id, "title": "From the phone", "qty": 1, "_deleted": False}
        return await sock.call("jobs", "masterWrite", [[{"newDocumentState": doc}]])

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        frame = await write(sock, "p1")
        assert frame["error"]["code"] == "payment_required", frame
        assert frame["error"]["billing_url"].endswith("/billing/")
        assert (await sock.call("jobs", "masterChangesSince", [None, 10]))["result"]["documents"] == []
        await sock.close()

    run(scenario)
    BillingAccount.objects.filter(pk=account.pk).update(status="active")

    async def paid():
        sock = Socket(tenant, token)
        await sock.connect()
        frame = await write(sock, "p1")
        assert frame["result"][0]["id"] == "p1", frame
        await sock.close()

    run(paid)


def test_sync_create_beyond_the_records_limit_is_an_error_frame_with_limit_and_usage(tenant, pair, jobs, monkeypatch):
    from billing.plans import PLANS

    monkeypatch.setitem(PLANS, "free", replace(PLANS["free"], records=1))
    _, token = pair()

    async def scenario():
        sock = Socket(tenant, token)
        await sock.connect()
        first = {"id": "a", "title": "One", "qty": 1, "_deleted": False}
        assert "result" in await sock.call("jobs", "masterWrite", [[{"newDocumentState": first}]])
        second = {"id": "b", "title": "Two", "qty": 1, "_deleted": False}
        frame = await sock.call("jobs", "masterWrite", [[{"newDocumentState": second}]])
        error = frame["error"]
        assert (error["code"], error["limit_name"], error["limit"], error["usage"]) == (
            "plan_limit_exceeded",
            "records",
            1,
            1,
        )
        await sock.close()

    run(scenario)
