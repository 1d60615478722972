"""Existing audit events (written before the vault, record values in clear) are sealed by the upgrade
without breaking verification; a tampered chain is refused instead of being re-hashed clean."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def old_writer():
    """The log's writer as it was before the vault: nothing sealed (the hash covers clear values).
    Only the sealing steps are switched off; the chain is written by the real service."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("audit.services.emails_seal", lambda changes, cache=None: changes)
        patch.setattr("audit.services.personal_seal", lambda **kw: {})
        yield


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
    with old_writer():
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
    with old_writer():
        created, _, _ = _legacy_events()
    audit_sql("UPDATE audit_auditevent SET actor_label = 'someone else' WHERE id = %s", [created.pk])
    with pytest.raises(ChainBroken):
        audit_chain_reseal()


def test_reseal_seals_who_acted_and_erasing_them_keeps_the_chain_verifiable(tenant, admin_user):
    """Members' names and addresses written in clear by the old version are sealed under the member
    (migration 0007); erasing the member afterwards leaves "[erased]" and a chain that verifies."""
    from audit.services import audit_subjects_erase

    with old_writer():
        invited = audit_event_record(
            action="member.invited",
            actor=admin_user,
            target=("invitation", "7", "Invitation for new.person@example.org"),
            changes={"after": {"email": "new.person@example.org", "role": "viewer"}},
        )
    assert invited.personal == {} and audit_chain_verify().ok
    assert audit_chain_reseal() >= 1
    assert audit_chain_verify().ok
    invited = AuditEvent.objects.get(pk=invited.pk)
    assert set(invited.personal) == {"actor_label", "target_label"}
    assert "new.person@example.org" not in json.dumps(invited.changes)
    assert changes_open(invited.changes)["after"]["email"] == "new.person@example.org"

    audit_subjects_erase([f"user:{admin_user.pk}"])
    invited = AuditEvent.objects.get(pk=invited.pk)
    assert invited.actor_label == "[erased]" and invited.target_label.startswith("Invitation for")
    assert audit_chain_verify().ok
