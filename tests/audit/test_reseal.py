"""Existing audit events (written before the vault, record values in clear) are sealed by the upgrade
without breaking verification; a tampered chain is refused instead of being re-hashed clean."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditChainHead, AuditEvent
from audit.reseal import ChainBroken, audit_chain_reseal
from audit.selectors import audit_chain_verify
from audit.services import audit_event_record
from audit.vault import changes_open
from core.actors import Actor
from tests.audit.tampering import audit_sql

CLEAR = "legacy.person@example.org"


def _legacy_events() -> list[AuditEvent]:
    """Record events as the log wrote them before the vault: values in clear, inside the hash."""
    system = Actor.system("old version")
    return [
        audit_event_record(
            action="record.created",
            actor=system,
            target=("record", "legacy1", "customers/legacy1"),
            changes={
                "collection": "customers",
                "version": 1,
                "livemode": True,
                "before": {},
                "after": {"email": CLEAR},
            },
        ),
        audit_event_record(action="member.invited", actor=system, target=("invitation", "1", "x")),
        audit_event_record(
            action="record.updated",
            actor=system,
            target=("record", "legacy1", "customers/legacy1"),
            changes={
                "collection": "customers",
                "livemode": True,
                "before": {"email": CLEAR},
                "after": {"email": "b@x"},
            },
        ),
    ]


def test_reseal_seals_old_values_and_the_chain_still_verifies(tenant):
    _, _, updated = _legacy_events()
    head_before = AuditChainHead.objects.get(pk=1)
    assert audit_chain_verify().ok and CLEAR in json.dumps(list(AuditEvent.objects.values_list("changes", flat=True)))
    assert audit_chain_reseal() >= 2
    assert audit_chain_verify().ok
    assert CLEAR not in json.dumps(list(AuditEvent.objects.values_list("changes", flat=True)))
    assert changes_open(AuditEvent.objects.get(pk=updated.pk).changes)["before"] == {"email": CLEAR}
    anchor = AuditEvent.objects.filter(action="audit.chain_resealed").latest("seq")
    assert anchor.changes["previous_head"] == {"seq": head_before.seq, "hash": head_before.hash}
    assert audit_chain_reseal() == 0  # once


def test_a_tampered_chain_is_refused_not_laundered(tenant):
    created, _, _ = _legacy_events()
    audit_sql("UPDATE audit_auditevent SET actor_label = 'someone else' WHERE id = %s", [created.pk])
    with pytest.raises(ChainBroken):
        audit_chain_reseal()
