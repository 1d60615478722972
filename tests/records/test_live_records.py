"""The live-record count the write spine keeps in the change counter's row: what the plan's `records`
limit and the billing page's usage bar read instead of counting the table. It must follow every way a
record comes and goes, in both runtimes."""

from __future__ import annotations

import pytest

from records.errors import UniqueViolation
from records.models import ChangeCounter, Record
from records.selectors import records_live_count
from records.services import (
    record_bulk_upsert,
    record_create,
    record_delete,
    record_erase,
    record_update,
    records_bulk_delete,
    records_bulk_update,
)


def _table_count() -> int:
    return Record.objects.filter(deleted_at=None).count()


def _kept() -> int | None:
    return ChangeCounter.objects.filter(pk=1).values_list("live_records", flat=True).first()


def test_live_record_count_follows_every_write_of_the_spine(customers, admin_user):
    def check(expected: int) -> None:
        assert (_kept(), records_live_count(), _table_count()) == (expected, expected, expected)

    a = record_create(actor=admin_user, collection=customers, data={"name": "A"})
    b = record_create(actor=admin_user, collection=customers, data={"name": "B"})
    check(2)
    record_update(actor=admin_user, record=a, data={"score": 1})  # an edit: no change
    check(2)
    record_delete(actor=admin_user, record=b)
    check(1)
    record_update(actor=admin_user, record=b, data={"name": "B again"}, undelete=True)  # a restore
    check(2)
    results = record_bulk_upsert(
        actor=admin_user,
        collection=customers,
        items=[{"data": {"name": "C"}}, {"data": {}}, {"id": a.id, "data": {"score": 2}}, {"data": {"name": "D"}}],
    )
    assert [r.status for r in results] == ["created", "error", "updated", "created"]  # the bad item adds nothing
    check(4)
    records_bulk_update(actor=admin_user, collection=customers, record_ids=[a.id, b.id], data={"tier": "pro"})
    check(4)
    deleted = records_bulk_delete(actor=admin_user, collection=customers, record_ids=[a.id, b.id, "nope"])
    assert sorted(deleted) == sorted([a.id, b.id])
    check(2)
    record_erase(actor=admin_user, record=a)  # already deleted: erasing its values removes no live record
    check(2)
    c = Record.objects.filter(deleted_at=None).first()
    record_erase(actor=admin_user, record=c, fields=["name"])  # anonymised: still there
    check(2)
    record_erase(actor=admin_user, record=c)
    check(1)


def test_a_write_that_fails_leaves_the_count_alone(customers, admin_user):
    record_create(actor=admin_user, collection=customers, data={"name": "A", "email": "a@x.test"})
    with pytest.raises(UniqueViolation):
        record_create(actor=admin_user, collection=customers, data={"name": "B", "email": "A@x.test"})
    assert (_kept(), _table_count()) == (1, 1)


def test_a_workspace_written_before_the_count_existed_is_counted_on_its_next_write(customers, admin_user):
    """A counter row without the count (made before it was kept) is counted once, with the lock, by the
    next write; a reader counts the table meanwhile."""
    record_create(actor=admin_user, collection=customers, data={"name": "A"})
    record_create(actor=admin_user, collection=customers, data={"name": "B"})
    ChangeCounter.objects.filter(pk=1).update(live_records=None)
    assert records_live_count() == 2
    record_bulk_upsert(actor=admin_user, collection=customers, items=[{"data": {"name": "C"}}])
    assert _kept() == 3 == records_live_count() == _table_count()
