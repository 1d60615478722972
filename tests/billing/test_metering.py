"""Metered API calls: the local ledger reported to Stripe's Billing Meter exactly once, even when the
reporting worker dies mid-batch. Stripe cannot be reached from here: the official SDK talks to the
FAKE Stripe API (tests/billing/fake_stripe.py), which, as Stripe does, refuses a meter event whose
identifier it has seen. The worker is a real process (production settings) on the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import timedelta

import pytest

from tests.live_server import REPO_ROOT, database_env

pytestmark = pytest.mark.saas_only


@pytest.fixture
def ledger(tenants_provisioned, django_db_blocker):
    """30 committed ledger entries of workspace alpha under a customer of this test's own; removed after."""
    from django.utils import timezone

    from billing.models import UsageLedgerEntry

    customer = f"cus_meter_{uuid.uuid4().hex[:10]}"
    with django_db_blocker.unblock():
        now = timezone.now()
        UsageLedgerEntry.objects.bulk_create(
            UsageLedgerEntry(
                workspace=tenants_provisioned["alpha"],
                stripe_customer_id=customer,
                quantity=100 + i,
                identifier=f"tessera_test_{customer}_{i}",
                occurred_at=now - timedelta(minutes=30 - i),
            )
            for i in range(30)
        )
        yield customer, UsageLedgerEntry.objects.filter(stripe_customer_id=customer)
        UsageLedgerEntry.objects.filter(stripe_customer_id=customer).delete()


def worker(fake, batch_size: int) -> subprocess.Popen:
    from django.db import connection

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "TESSERA_STRIPE_API_BASE": fake.url,
        "TESSERA_STRIPE_SECRET_KEY": "sk_test_fake",
        **database_env(connection),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.billing.meter_worker", str(batch_size)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_mid_batch_and_rerun_the_meter_equals_the_ledger_exactly(fake_stripe, ledger, django_db_blocker):
    customer, entries = ledger
    stalled, release = threading.Event(), threading.Event()

    def stall_on_the_twelfth(event):
        """Stripe has accepted the 12th event; its answer never reaches the worker, which is killed."""
        if len(fake_stripe.meter_events) == 12:
            stalled.set()
            release.wait(30)

    fake_stripe.on_meter_event = stall_on_the_twelfth
    first = worker(fake_stripe, batch_size=5)
    assert stalled.wait(60), first.stderr.read() if first.poll() is not None else "the worker never got to 12"
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    release.set()
    fake_stripe.on_meter_event = None
    with django_db_blocker.unblock():
        reported_before = entries.exclude(reported_at=None).count()
    assert reported_before == 11  # the 12th was accepted by Stripe but not marked: the crash's gap

    second = worker(fake_stripe, batch_size=5)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err[-3000:]
    assert int(out.strip()) == 19  # the 12th again (Stripe refuses it as a duplicate: counted once) + 18 new

    with django_db_blocker.unblock():
        ledger_rows = {e.identifier: e.quantity for e in entries}
        assert not entries.filter(reported_at=None).exists()
        from django.utils import timezone

        from billing.metering import usage_reconcile

        rows = usage_reconcile(start=timezone.now() - timedelta(days=1), end=timezone.now() + timedelta(minutes=5))
    sent = {i: int(e["payload"]["value"]) for i, e in fake_stripe.meter_events.items()}
    assert sent == ledger_rows  # every entry once, none twice, none lost
    assert fake_stripe.meter_total(customer) == sum(ledger_rows.values())
    (mine,) = [r for r in rows if r.customer == customer]
    assert mine.matches and (mine.ledger, mine.unreported) == (sum(ledger_rows.values()), 0)
    assert fake_stripe.errors == []


def test_usage_flush_writes_the_ledger_only_for_workspaces_billed_by_use(
    tenant, api, standing_set, db, django_capture_on_commit_callbacks
):
    """partners' usage flush writes billing's ledger in its own transaction: a subscribed workspace's
    API calls are kept for the meter, a Free one's are not."""
    from billing.models import UsageLedgerEntry
    from partners.usage import usage_flush

    live = api(mode="live")
    for _ in range(3):
        live.get("/api/v1/collections")
    with django_capture_on_commit_callbacks(execute=True):  # the counters are settled on commit
        usage_flush(tenant=tenant)
    assert not UsageLedgerEntry.objects.filter(workspace=tenant).exists()  # Free: nothing to bill
    standing_set(plan="starter", status="active")
    for _ in range(4):
        live.get("/api/v1/collections")
    usage_flush(tenant=tenant)
    (entry,) = UsageLedgerEntry.objects.filter(workspace=tenant)
    assert (entry.quantity, entry.stripe_customer_id, entry.reported_at) == (4, "cus_test_alpha", None)
