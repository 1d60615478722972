import pytest

from rbac.roles import Role
from records.errors import MergeConflict, UniqueViolation, ValidationFailed, VersionMismatch, WriteForbidden
from records.models import Change
from records.services import (
    collection_update,
    record_bulk_upsert,
    record_create,
    record_delete,
    record_update,
)


def test_create_applies_defaults_validates_and_feeds(customers, admin_user):
    record = record_create(actor=admin_user, collection=customers, data={"name": "Ada", "email": "ada@x.test"})
    assert record.version == 1
    assert record.data == {"name": "Ada", "email": "ada@x.test", "tier": "free"}
    change = Change.objects.get(seq=record.seq)
    assert change.op == "created" and change.record_id == record.id
    with pytest.raises(ValidationFailed) as exc:
        record_create(actor=admin_user, collection=customers, data={"email": "not-an-email", "bogus": 1})
    params = {e["param"] for e in exc.value.errors}
    assert {"data.name", "data.email", "data.bogus"} <= params


def test_unique_fields_are_enforced_case_insensitively(customers, admin_user):
    record_create(actor=admin_user, collection=customers, data={"name": "A", "email": "a@x.test"})
    with pytest.raises(UniqueViolation):
        record_create(actor=admin_user, collection=customers, data={"name": "B", "email": "A@x.test"})


def test_viewer_cannot_write(customers, make_user):
    viewer = make_user(Role.VIEWER)
    with pytest.raises(WriteForbidden):
        record_create(actor=viewer, collection=customers, data={"name": "x"})


def test_update_patch_version_and_if_match(customers, admin_user):
    r = record_create(actor=admin_user, collection=customers, data={"name": "A"})
    w = record_update(actor=admin_user, record=r, data={"score": 3}, expected_version=1)
    assert w.record.version == 2 and w.record.data["score"] == 3
    with pytest.raises(VersionMismatch):
        record_update(actor=admin_user, record=r, data={"score": 4}, expected_version=1)
    same = record_update(actor=admin_user, record=r, data={"score": 3})
    assert not same.changed and same.record.version == 2


def test_stale_writer_merges_other_fields_and_conflicts_on_same_field(customers, admin_user):
    r = record_create(actor=admin_user, collection=customers, data={"name": "A", "score": 1})
    record_update(actor=admin_user, record=r, data={"score": 2})  # someone else, now v2
    merged = record_update(actor=admin_user, record=r, data={"notes": "hello"}, base_version=1)
    assert merged.merged and merged.record.data == {"name": "A", "score": 2, "notes": "hello", "tier": "free"}
    with pytest.raises(MergeConflict) as exc:
        record_update(actor=admin_user, record=r, data={"score": 9}, base_version=1)
    assert exc.value.extra["conflicts"][0] == {"field": "score", "base": 1, "current": 2, "incoming": 9}


def test_delete_is_a_tombstone_in_the_feed(customers, admin_user):
    r = record_create(actor=admin_user, collection=customers, data={"name": "A"})
    deleted = record_delete(actor=admin_user, record=r)
    assert deleted.deleted_at is not None and deleted.version == 2
    assert list(Change.objects.filter(record_id=r.id).values_list("op", flat=True)) == ["created", "deleted"]


def test_a_deleted_record_brought_back_keeps_its_id_and_unique_values(customers, admin_user):
    """What a phone does that recreated, offline, a record deleted meanwhile (sync.replication)."""
    r = record_create(actor=admin_user, collection=customers, data={"name": "A", "email": "a@x.test"})
    record_delete(actor=admin_user, record=r)
    # Its unique value is free while it is deleted...
    other = record_create(actor=admin_user, collection=customers, data={"name": "B", "email": "b@x.test"})

    back = record_update(
        actor=admin_user, record=r, data={"name": "A again", "email": "a@x.test"}, partial=False, undelete=True
    ).record

    back.refresh_from_db()
    assert (back.id, back.version, back.deleted_at, back.data["name"]) == (r.id, 3, None, "A again")
    assert list(Change.objects.filter(record_id=r.id).values_list("op", flat=True)) == ["created", "deleted", "created"]
    # ...and taken again once it is back.
    with pytest.raises(UniqueViolation):
        record_update(actor=admin_user, record=other, data={"email": "A@x.test"})


def test_bulk_write_failures_undo_only_their_item(customers, admin_user):
    """A bulk write takes the change lock once and no savepoint per record: a failing item (here a
    unique clash inside the database) must still leave nothing behind and the other items written."""
    record_create(actor=admin_user, collection=customers, data={"name": "Taken", "email": "t@x.test"})
    before = Change.objects.count()
    results = record_bulk_upsert(
        actor=admin_user,
        collection=customers,
        items=[
            {"data": {"name": "One", "email": "one@x.test"}},
            {"data": {"name": "Clash", "email": "T@x.test"}},
            {"data": {"name": "Two", "email": "two@x.test"}},
        ],
    )
    assert [r.status for r in results] == ["created", "error", "created"]
    assert results[1].error.code == "unique_violation"
    assert Change.objects.count() == before + 2
    assert sorted(customers.records.values_list("data__name", flat=True)) == ["One", "Taken", "Two"]
    seqs = [r.record.seq for r in results if r.record]
    assert seqs[1] == seqs[0] + 1  # the failed item's sequence number was rolled back with it


def test_rename_and_remove_fields_keep_data(customers, admin_user):
    r = record_create(actor=admin_user, collection=customers, data={"name": "A", "score": 5, "notes": "n"})
    fields = [dict(f) for f in customers.fields]
    for f in fields:
        if f["key"] == "score":
            f["key"] = "points"
    fields = [f for f in fields if f["key"] != "notes"]
    collection_update(actor=admin_user, collection=customers, fields=fields)
    r.refresh_from_db()
    assert r.data == {"name": "A", "points": 5, "tier": "free"}


def test_bulk_upsert_reports_per_item(customers, admin_user):
    r = record_create(actor=admin_user, collection=customers, data={"name": "A"})
    results = record_bulk_upsert(
        actor=admin_user,
        collection=customers,
        items=[{"data": {"name": "B"}}, {"data": {"score": "x"}}, {"id": r.id, "data": {"score": 1}}],
    )
    assert [x.status for x in results] == ["created", "error", "updated"]


@pytest.mark.parametrize("value", ["a\x00b", float("nan"), float("inf")])
def test_values_no_database_can_store_are_refused(customers, admin_user, value):
    data = {"name": "A", "notes": value} if isinstance(value, str) else {"name": "A", "score": value}
    with pytest.raises(ValidationFailed):
        record_create(actor=admin_user, collection=customers, data=data)


def test_an_id_is_unique_per_mode_through_every_way_in(customers, admin_user):
    """The same id once live and once in the sandbox: two records (Record.save and bulk_create both key
    them by mode); twice in one mode is refused by the database."""
    from django.db import IntegrityError, transaction
    from django.utils import timezone

    from records.models import Record
    from records.services import collection_create

    sandbox = collection_create(
        actor=admin_user, name="Customers", slug="customers", fields=[{"key": "name", "type": "text"}], livemode=False
    )
    live = record_create(actor=admin_user, collection=customers, data={"name": "Live"}, record_id="shared-1")
    test = record_create(actor=admin_user, collection=sandbox, data={"name": "Sandbox"}, record_id="shared-1")
    assert (live.id, test.id) == ("shared-1", "shared-1") and live.pk != test.pk
    now = timezone.now()
    Record.objects.bulk_create(
        [Record(id="shared-2", livemode=lm, collection=c, seq=0, created_at=now, updated_at=now) for lm, c in
         ((True, customers), (False, sandbox))]
    )  # fmt: skip
    assert Record.objects.filter(id="shared-2").count() == 2
    with pytest.raises(IntegrityError), transaction.atomic():
        Record.objects.bulk_create([Record(id="shared-2", collection=customers, seq=0, created_at=now, updated_at=now)])


# --- deleting a collection with its records -------------------------------------------------------------


def _five(customers, admin_user):
    return [
        record_create(actor=admin_user, collection=customers, data={"name": f"P{i}", "email": f"p{i}@x.test"})
        for i in range(5)
    ]


def test_a_collection_with_records_is_refused_unless_they_go_with_it(customers, admin_user):
    from records.errors import Conflict
    from records.services import collection_delete

    _five(customers, admin_user)

    with pytest.raises(Conflict) as refused:
        collection_delete(actor=admin_user, collection=customers)
    assert refused.value.code == "collection_not_empty"  # the API's DELETE keeps answering 409
    customers.refresh_from_db()
    assert customers.deleted_at is None and customers.deletion == {}


def test_a_deletion_a_worker_lost_is_found_again_and_finished(
    customers, admin_user, monkeypatch, django_capture_on_commit_callbacks
):
    """The request deletes the first batch; its message to the worker is lost (the test's transaction
    never commits); the periodic resume queues it again (Celery eager: the task runs in this process)."""
    from audit.models import AuditEvent
    from config.celery_app import app
    from records import services
    from records.models import Collection, Record
    from records.services import collection_create, collection_delete
    from records.tasks import collection_migrations_resume_all_workspaces

    monkeypatch.setattr(services, "DELETION_BATCH", 2)
    people = _five(customers, admin_user)
    collection_delete(actor=admin_user, collection=customers, with_records=True)
    customers.refresh_from_db()
    assert customers.deletion["total"] == 5 and customers.deletion["deleted"] == 2
    again = collection_create(actor=admin_user, name="Customers", slug="customers", fields=[])  # the slug is free
    monkeypatch.setitem(app.conf, "task_always_eager", True)

    with django_capture_on_commit_callbacks(execute=True):
        assert collection_migrations_resume_all_workspaces() >= 1

    customers.refresh_from_db()
    assert "finished_at" in customers.deletion and customers.deletion["deleted"] == 5
    assert not Record.objects.filter(collection=customers, deleted_at=None).exists()
    assert list(Change.objects.filter(op="deleted").order_by("seq").values_list("record_id", flat=True)) == sorted(
        r.id for r in people
    )
    assert AuditEvent.objects.filter(action="collection.deleted").count() == 1
    assert not AuditEvent.objects.filter(action="record.deleted").exists()
    assert Collection.objects.get(pk=again.pk).deleted_at is None
