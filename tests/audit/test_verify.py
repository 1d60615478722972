"""audit_verify: the hash chain catches any change to the log made behind the service's back.

Each test tampers with alpha's log in raw SQL (past the append-only trigger, as someone with database
access would) inside the test's transaction, runs the management command, and expects it to fail
naming exactly the event that was touched.
"""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from audit.selectors import audit_chain_verify
from audit.services import audit_event_record, event_hash
from core.actors import Actor
from tests.audit.tampering import audit_sql


@pytest.fixture
def events(tenant):
    """Six fresh events at the end of alpha's log."""
    return [
        audit_event_record(action="member.invited", actor=Actor.system("verify-test"), target=("invitation", i, "x"))
        for i in range(6)
    ]


def verify(*args: str) -> str:
    out = StringIO()
    call_command("audit_verify", *args, stdout=out)
    return out.getvalue()


def verify_broken(*args: str) -> str:
    out = StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("audit_verify", *args, stdout=out)
    assert excinfo.value.returncode == 1
    assert "broken audit chain" in str(excinfo.value)
    return out.getvalue()


def broken_seqs(output: str, slug: str) -> list[int]:
    return [int(n) for n in re.findall(rf"^{slug}: BROKEN at event #(\d+)\b", output, flags=re.M)]


def test_an_untouched_log_verifies(tenant, events):
    output = verify()
    total = AuditEvent.objects.count()
    assert re.search(rf"^{tenant.slug}: OK, {total} events verified$", output, flags=re.M), output
    assert "BROKEN" not in output


def test_one_tenant_only(tenant, events):
    output = verify("--tenant", tenant.slug)
    assert output.startswith(f"{tenant.slug}: OK")
    assert output.count("\n") == 1


def test_unknown_tenant_is_an_error(tenant):
    with pytest.raises(CommandError, match="No workspace"):
        call_command("audit_verify", "--tenant", "nope", stdout=StringIO())


@pytest.mark.parametrize(
    "column, value",
    [
        ("actor_label", "mallory@evil.test"),
        ("action", "member.removed"),
        ("target_label", "someone else"),
        ("request_id", "req_forged000"),
        ("ip", "10.6.6.6"),
        ("user_agent", "forged"),
    ],
)
def test_tampered_row_is_named_by_its_seq(tenant, events, column, value):
    victim = events[2]
    assert audit_sql(f"UPDATE audit_auditevent SET {column} = %s WHERE seq = %s", [value, victim.seq]) == 1

    output = verify_broken()
    assert broken_seqs(output, tenant.slug) == [victim.seq], output
    assert f"(id {victim.pk})" in output
    assert "content does not match its hash" in output
    assert f"{victim.seq - 1} events before it verified" in output


def test_tampered_json_changes_are_named(tenant, events):
    victim = events[0]
    audit_sql("UPDATE audit_auditevent SET changes = %s WHERE seq = %s", ['{"after": {"role": "admin"}}', victim.seq])
    assert broken_seqs(verify_broken(), tenant.slug) == [victim.seq]


def test_tampered_time_is_named(tenant, events):
    victim = events[4]
    row = AuditEvent.objects.get(pk=victim.pk)
    audit_sql(
        "UPDATE audit_auditevent SET occurred_at = %s WHERE seq = %s", [row.occurred_at.replace(year=2001), row.seq]
    )
    assert broken_seqs(verify_broken(), tenant.slug) == [victim.seq]


def test_rehashed_row_breaks_the_link_of_the_next_one(tenant, events):
    """An attacker who also recomputes the tampered row's hash is caught by the following event."""
    victim = AuditEvent.objects.get(pk=events[2].pk)
    victim.actor_label = "mallory@evil.test"
    forged_hash = event_hash(victim)
    audit_sql(
        "UPDATE audit_auditevent SET actor_label = %s, hash = %s WHERE seq = %s",
        [victim.actor_label, forged_hash, victim.seq],
    )

    output = verify_broken()
    assert broken_seqs(output, tenant.slug) == [victim.seq + 1], output
    assert "link to the previous event is broken" in output


def test_deleted_row_is_named(tenant, events):
    victim = events[3]
    assert audit_sql("DELETE FROM audit_auditevent WHERE seq = %s", [victim.seq]) == 1

    output = verify_broken()
    assert broken_seqs(output, tenant.slug) == [victim.seq], output
    assert f"event #{victim.seq} is missing (removed); the next event found is #{victim.seq + 1}" in output


def test_truncated_tail_is_named(tenant, events):
    first_gone = events[4].seq
    assert audit_sql("DELETE FROM audit_auditevent WHERE seq >= %s", [first_gone]) == 2

    output = verify_broken()
    assert broken_seqs(output, tenant.slug) == [first_gone], output
    assert f"#{first_gone}–#{events[5].seq} are missing from the end" in output


def test_swapped_rows_are_named(tenant, events):
    a, b = events[1], events[2]
    audit_sql("UPDATE audit_auditevent SET seq = -1 WHERE seq = %s", [a.seq])
    audit_sql("UPDATE audit_auditevent SET seq = %s WHERE seq = %s", [a.seq, b.seq])
    audit_sql("UPDATE audit_auditevent SET seq = %s WHERE seq = -1", [b.seq])

    assert broken_seqs(verify_broken(), tenant.slug) == [a.seq]


def test_only_the_first_break_is_named(tenant, events):
    audit_sql("UPDATE audit_auditevent SET actor_label = 'x' WHERE seq IN (%s, %s)", [events[1].seq, events[4].seq])
    assert broken_seqs(verify_broken(), tenant.slug) == [events[1].seq]


def test_selector_reports_the_same_as_the_command(tenant, events):
    audit_sql("UPDATE audit_auditevent SET actor_label = 'x' WHERE seq = %s", [events[5].seq])
    result = audit_chain_verify()
    assert (result.ok, result.broken_seq, result.broken_id) == (False, events[5].seq, events[5].pk)
    assert result.checked == events[5].seq - 1


@pytest.mark.saas_only
def test_a_broken_tenant_does_not_hide_a_healthy_one(tenant, events, tenant_b):
    audit_sql("UPDATE audit_auditevent SET actor_label = 'x' WHERE seq = %s", [events[0].seq])

    output = verify_broken()
    assert broken_seqs(output, "alpha") == [events[0].seq]
    assert re.search(r"^beta: OK, \d+ events verified$", output, flags=re.M), output
