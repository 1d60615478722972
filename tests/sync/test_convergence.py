"""Property: random interleavings of offline edits on three phones and writes on the server
converge — every phone ends with the master's document — and no accepted edit is lost.

The phones are modelled as RxDB's replication client behaves (tests/sync/rxdb holds the real one):
a local fork, the last master state it knows per document (`assumedMasterState`), pending local
changes pushed with `masterWrite`, conflict answers adopted (RxDB's default conflict handler), and
pulls with `masterChangesSince` that leave documents with pending changes alone. They call the
same server functions the websocket consumer calls (sync.replication), as real devices.

The oracle follows the documented merge rule: a phone's change to a field is accepted unless the
server changed that field differently since the phone's base (then the server's value stays). After
every step the master must equal the oracle's state, so an accepted edit is lost only by being
overwritten by a later accepted edit to the same field.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIELDS = ("title", "notes", "qty")
VALUES = {"title": ["a", "b", "c"], "notes": ["x", "y", ""], "qty": [1, 2, 3]}
_ids = itertools.count()

pytestmark = pytest.mark.usefixtures("own_counters", "own_channel_layer")


class Phone:
    def __init__(self, device, collection):
        self.device, self.collection = device, collection
        self.fork: dict[str, dict] = {}
        self.assumed: dict[str, dict] = {}
        self.pending: set[str] = set()
        self.checkpoint = None

    def edit(self, record_id: str, field: str, value) -> None:
        doc = dict(self.fork[record_id])
        doc[field] = value
        self.fork[record_id] = doc
        self.pending.add(record_id)

    def push(self, on_push) -> None:
        from sync.replication import master_write

        rows = []
        for record_id in sorted(self.pending):
            row = {"newDocumentState": self.fork[record_id]}
            if record_id in self.assumed:
                row["assumedMasterState"] = self.assumed[record_id]
            rows.append(row)
            on_push(self.assumed.get(record_id), self.fork[record_id])
            conflicts = master_write(actor=self.device, collection=self.collection, rows=[row])
            self.assumed[record_id] = self.fork[record_id]
            for doc in conflicts:
                self.fork[doc["id"]] = self.assumed[doc["id"]] = doc
        self.pending.clear()

    def pull(self) -> None:
        from sync.replication import changes_since, checkpoint_parse

        while True:
            result = changes_since(collection=self.collection, after=checkpoint_parse(self.checkpoint), batch_size=7)
            for doc in result["documents"]:
                if doc["id"] not in self.pending:
                    self.fork[doc["id"]] = self.assumed[doc["id"]] = doc
            if not result["documents"]:
                return
            self.checkpoint = result["checkpoint"]
            if len(result["documents"]) < 7:
                return


edit = st.tuples(st.just("edit"), st.integers(0, 2), st.sampled_from(FIELDS), st.integers(0, 2))
sync = st.tuples(st.just("sync"), st.integers(0, 2))
server = st.tuples(st.just("server"), st.sampled_from(FIELDS), st.integers(0, 2))


@pytest.fixture
def phones_setup(tenant, admin_user, pair):
    from records.services import collection_create

    collection = collection_create(
        actor=admin_user,
        name="Visits",
        slug="visits",
        fields=[{"key": "title", "type": "text"}, {"key": "notes", "type": "text"}, {"key": "qty", "type": "integer"}],
    )
    devices = [pair(name=f"Phone {i}")[0] for i in range(3)]
    return admin_user, collection, devices


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.one_of(edit, sync, server), max_size=30))
def test_offline_edits_converge_and_no_accepted_edit_is_lost(phones_setup, steps):
    from records.models import Record
    from records.services import record_create, record_update
    from sync.documents import document_fields, document_of

    admin, collection, devices = phones_setup
    record_id = f"visit{next(_ids)}"
    record = record_create(
        actor=admin, collection=collection, data={"title": "a", "notes": "x", "qty": 1}, record_id=record_id
    )
    expected = dict(record.data)  # the oracle's master state
    accepted = {f: [expected[f]] for f in FIELDS}  # every accepted value per field, in order
    phones = [Phone(device, collection) for device in devices]
    for phone in phones:
        phone.pull()

    def master() -> dict:
        return Record.objects.get(livemode=True, id=record_id).data

    def on_push(assumed, new):
        """What the documented rule says this push does to the master (before it happens)."""
        base, mine, current = document_fields(assumed), document_fields(new), master()
        for field in FIELDS:
            if mine.get(field) == base.get(field):
                continue  # not changed on the phone
            # accepted unless the server changed it differently since the phone's base (then the server's stays)
            if current.get(field) in (base.get(field), mine.get(field)) and mine.get(field) != current.get(field):
                expected[field] = mine[field]
                accepted[field].append(mine[field])

    for step in steps:
        if step[0] == "edit":
            _, i, field, v = step
            phones[i].edit(record_id, field, VALUES[field][v])
        elif step[0] == "sync":
            phones[step[1]].push(on_push)
            phones[step[1]].pull()
        else:
            _, field, v = step
            value = VALUES[field][v]
            record_update(actor=admin, record=Record.objects.get(livemode=True, id=record_id), data={field: value})
            if expected[field] != value:
                expected[field] = value
                accepted[field].append(value)
        assert master() == expected

    for _ in range(2):
        for phone in phones:
            phone.push(on_push)
            phone.pull()
    final = document_of(Record.objects.get(livemode=True, id=record_id))
    for phone in phones:
        phone.pull()
        assert phone.fork[record_id] == final  # converged: identical documents everywhere
    assert document_fields(final) == expected
    for field in FIELDS:
        assert final[field] == accepted[field][-1]  # the last accepted edit of every field survives
