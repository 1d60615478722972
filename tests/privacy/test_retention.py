"""Retention policies: the dry run lists exactly what the real run takes; records past the policy are
erased or anonymised through the write spine (the change feed says so), the others are untouched; every
run is audited; the beat task applies every enabled policy. Time is advanced by passing `now`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.utils import timezone

from audit.models import AuditEvent
from audit.selectors import audit_chain_verify
from core.errors import ServiceError
from privacy.models import LogRetentionPolicy, RetentionRun
from privacy.retention import log_retention_apply, log_retention_policy_set, retention_apply, retention_policy_set
from privacy.tasks import retention_apply_task
from records.models import Change, Record
from records.services import record_create
from webhooks.delivery import delivery_attempt
from webhooks.maintenance import test_event_send as ping_send
from webhooks.models import Attempt, Delivery, Event
from webhooks.services import endpoint_create


@pytest.fixture
def aged(mapped, admin_user):
    """Four customers: two last changed 100 days ago (one churned, one active), two changed now."""
    customers, _ = mapped
    old = timezone.now() - timedelta(days=100)
    rows = {}
    for name, status in (
        ("Old Churned", "free"),
        ("Old Active", "pro"),
        ("New Churned", "free"),
        ("New Active", "pro"),
    ):
        rows[name] = record_create(
            actor=admin_user,
            collection=customers,
            data={
                "name": name,
                "email": f"{name.replace(' ', '.').lower()}@example.org",
                "phone": "555",
                "tier": status,
            },
        )
    Record.objects.filter(pk__in=[rows["Old Churned"].pk, rows["Old Active"].pk]).update(updated_at=old)
    return customers, rows


def test_dry_run_equals_the_real_run_and_only_old_records_go(tenant, admin_user, aged):
    customers, rows = aged
    policy = retention_policy_set(actor=admin_user, collection=customers, days=90)
    dry = retention_apply(policy=policy, dry_run=True)
    assert sorted(dry.record_ids) == sorted([rows["Old Churned"].id, rows["Old Active"].id])
    assert Record.objects.filter(collection=customers, data={}).count() == 0  # the dry run changed nothing
    real = retention_apply(policy=policy)
    assert real.record_ids == dry.record_ids and real.applied == real.matched == 2
    for name in ("Old Churned", "Old Active"):
        gone = Record.objects.get(pk=rows[name].pk)
        assert gone.data == {} and gone.deleted_at is not None
        assert Change.objects.filter(record_id=gone.id).last().op == "deleted"  # through the spine
    for name in ("New Churned", "New Active"):
        assert Record.objects.get(pk=rows[name].pk).data["name"] == name
    actions = list(
        AuditEvent.objects.filter(action="retention.applied").order_by("seq").values_list("changes", flat=True)
    )
    assert [(c["dry_run"], c["matched"], c["applied"]) for c in actions[-2:]] == [(True, 2, 0), (False, 2, 2)]
    assert audit_chain_verify().ok
    assert retention_apply(policy=policy).matched == 0  # nothing left to take


def test_status_policy_anonymises_only_records_in_that_status(tenant, admin_user, aged):
    customers, rows = aged
    policy = retention_policy_set(
        actor=admin_user, collection=customers, days=30, action="anonymise", status_field="tier", status_value="free"
    )
    run = retention_apply(policy=policy)
    assert run.record_ids == [rows["Old Churned"].id]
    anonymised = Record.objects.get(pk=rows["Old Churned"].pk)
    # personal fields (name, phone; email identifies) gone, the rest kept, the record alive
    assert anonymised.data == {"tier": "free"} and anonymised.deleted_at is None
    assert all("name" not in c.data for c in Change.objects.filter(record_id=anonymised.id))
    assert Record.objects.get(pk=rows["Old Active"].pk).data["name"] == "Old Active"


def test_policy_errors(tenant, admin_user, customers):
    with pytest.raises(ServiceError) as excinfo:
        retention_policy_set(actor=admin_user, collection=customers, days=0)
    assert excinfo.value.param == "days"
    with pytest.raises(ServiceError) as excinfo:
        retention_policy_set(actor=admin_user, collection=customers, days=5, action="anonymise")
    assert excinfo.value.param == "action"  # no personal fields mapped yet
    with pytest.raises(ServiceError) as excinfo:
        retention_policy_set(actor=admin_user, collection=customers, days=5, status_field="nope", status_value="x")
    assert excinfo.value.param == "status_field"


def test_the_beat_task_applies_every_enabled_policy(tenant, admin_user, aged):
    from privacy.tasks import retention_apply_task

    customers, _ = aged
    retention_policy_set(actor=admin_user, collection=customers, days=90)
    assert retention_apply_task.run() == 2
    assert RetentionRun.objects.filter(dry_run=False, applied=2).exists()


def test_log_retention_deletes_old_webhook_deliveries_and_login_attempts_as_its_dry_run_said(
    tenant, admin_user, receiver, anon_client, loopback_allowed
):
    """Webhook deliveries (with their attempt log) and log-in attempts older than the policy go; newer
    ones and deliveries still pending stay. The beat task's function applies it; each run is audited."""
    endpoint, _ = endpoint_create(actor=admin_user, url=receiver.url())
    old, recent, pending = (ping_send(actor=admin_user, endpoint=endpoint) for _ in range(3))
    for delivery in (old, recent):
        assert delivery_attempt(delivery.pk).result == "succeeded"
    long_ago = timezone.now() - timedelta(days=40)
    Delivery.objects.filter(pk__in=[old.pk, pending.pk]).update(created_at=long_ago)
    Event.objects.filter(pk__in=[old.event_id, pending.event_id]).update(created_at=long_ago)
    anon_client.post("/accounts/login/", {"username": "someone@example.org", "password": "x"})
    anon_client.post("/accounts/login/", {"username": "other@example.org", "password": "x"})
    first = AccessAttempt.objects.order_by("pk").first()
    AccessAttempt.objects.filter(pk=first.pk).update(attempt_time=long_ago)

    with pytest.raises(ServiceError):
        log_retention_policy_set(actor=admin_user, log="everything", days=30)
    deliveries = log_retention_policy_set(actor=admin_user, log="webhook_deliveries", days=30)
    log_retention_policy_set(actor=admin_user, log="login_attempts", days=30)
    dry = log_retention_apply(policy=deliveries, dry_run=True, actor=admin_user)
    assert (dry.matched, dry.applied) == (1, 0) and Delivery.objects.filter(pk=old.pk).exists()

    assert retention_apply_task() == 2  # the beat task: one delivery, one log-in attempt

    runs = {r.collection_slug: r for r in RetentionRun.objects.filter(dry_run=False)}
    assert runs["log:webhook_deliveries"].applied == dry.matched == 1
    assert runs["log:login_attempts"].applied == 1
    assert not Delivery.objects.filter(pk=old.pk).exists() and not Attempt.objects.filter(delivery_id=old.pk).exists()
    assert not Event.objects.filter(pk=old.event_id).exists()
    assert Delivery.objects.filter(pk=recent.pk).exists() and Delivery.objects.filter(pk=pending.pk).exists()
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["other@example.org"]
    assert AuditEvent.objects.filter(action="retention.applied").count() == 3
    assert LogRetentionPolicy.objects.count() == 2 and audit_chain_verify().ok
