"""Collections, their records, and the per-tenant change feed.

Every row carries `livemode`: test-mode API keys read and write only the sandbox rows
(livemode=False), live keys and the console only live rows. Selectors take `livemode` as a required
keyword so no query can forget it. Record ids are unique per mode (a test key can reuse, and so cannot
detect, a live id): look records up by (livemode, id), never by the internal primary key.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from ulid import ULID


def record_id_new() -> str:
    """Sortable id (ULID): creation order is id order."""
    return str(ULID())


def record_key(*, livemode: bool, record_id: str) -> str:
    """A record's primary key: its id in live mode, `test:<id>` in test mode (ids never contain `:`),
    so the same id can exist once in each mode while live rows keep key == id."""
    return record_id if livemode else f"test:{record_id}"


def record_etag(*, livemode: bool, record_id: str, version: int) -> str:
    # The key, not the id: a test record reusing a live id is another resource at the same URL.
    return f'"{record_key(livemode=livemode, record_id=record_id)}.{version}"'


class Collection(models.Model):
    livemode = models.BooleanField(default=True)
    slug = models.SlugField(max_length=63)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, default="")
    fields = models.JSONField(default=list)
    schema_version = models.PositiveIntegerField(default=1)
    # Field changes not yet carried into every record (records.data_migrations); {} when there are none.
    data_migration = models.JSONField(default=dict, blank=True)
    # A deleted collection whose records are still being deleted (records.services.collection_delete):
    # {"actor", "total", "deleted", "started_at"}; "finished_at" once the last one is gone. {} otherwise.
    deletion = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["livemode", "slug"], condition=models.Q(deleted_at=None), name="records_collection_slug_unique"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def field(self, key: str) -> dict | None:
        return next((f for f in self.fields if f["key"] == key), None)

    @property
    def cache_key(self) -> tuple[int, int, str]:
        return (self.pk or 0, self.schema_version, "live" if self.livemode else "test")


class RecordQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        for obj in objs:  # bulk_create skips save(), which sets the key
            obj.key = record_key(livemode=obj.livemode, record_id=obj.id)
        return super().bulk_create(objs, *args, **kwargs)


class Record(models.Model):
    key = models.CharField(primary_key=True, max_length=72, editable=False, help_text="See record_key().")
    id = models.CharField(max_length=64, default=record_id_new, editable=False, help_text="Unique per livemode.")
    livemode = models.BooleanField(default=True)
    collection = models.ForeignKey(Collection, on_delete=models.PROTECT, related_name="records")
    data = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=1)
    seq = models.BigIntegerField(db_index=True, help_text="Change sequence of the latest change.")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    created_by = models.CharField(max_length=300, blank=True, default="")
    updated_by = models.CharField(max_length=300, blank=True, default="")
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Processing restricted (GDPR art. 18, a data-subject request): the record is kept, but no one edits it,
    # and exports, analytics, webhook deliveries and phones leave it out until the restriction is lifted
    # (records.services.records_restriction_set). Null: not restricted.
    restricted_at = models.DateTimeField(null=True, blank=True)

    objects = RecordQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["livemode", "id"], name="records_record_id_per_mode")]
        indexes = [
            models.Index(fields=["collection", "livemode", "deleted_at", "id"], name="records_rec_coll_live_id"),
            models.Index(fields=["collection", "seq"], name="records_rec_coll_seq"),
            models.Index(fields=["collection", "updated_at"], name="records_rec_coll_updated"),
            # The console's table (live rows only; the condition is spelled as the selectors filter, so
            # SQLite can use these too): keyset pages in id order and by last update, and the counts.
            models.Index(
                fields=["collection", "id"],
                condition=models.Q(livemode=True, deleted_at=None),
                name="records_rec_live_id",
            ),
            models.Index(
                fields=["collection", "updated_at", "id"],
                condition=models.Q(livemode=True, deleted_at=None),
                name="records_rec_live_updated",
            ),
        ]

    def __str__(self) -> str:
        return self.id

    def save(self, *args, **kwargs) -> None:
        self.key = record_key(livemode=self.livemode, record_id=self.id)
        super().save(*args, **kwargs)

    @property
    def etag(self) -> str:
        return record_etag(livemode=self.livemode, record_id=self.id, version=self.version)


class RecordUniqueValue(models.Model):
    """One row per (unique field, value): the database refuses a second record with the same value."""

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+")
    field_id = models.CharField(max_length=32)
    value_hash = models.CharField(max_length=64)
    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="unique_values")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["collection", "field_id", "value_hash"], name="records_unique_value")
        ]

    def __str__(self) -> str:
        return f"{self.field_id}={self.value_hash[:8]}"


def change_stream_new() -> str:
    """A workspace's change stream name: 13 random base32 characters (65 bits)."""
    return str(ULID()).lower()[-13:]


class ChangeCounter(models.Model):
    """The workspace's change sequence. Writers take its row lock first and hold it to commit, so
    sequence numbers become visible in order: a reader that saw N never later finds a change < N.

    `stream` names this workspace's sequence among all workspaces': an event id is `evt_<stream>_<seq>`,
    unique across workspaces (a receiver serving many takes the id as its idempotency key). The row is
    made by the first write, never in the template new workspaces are cloned from.

    `live_records` counts the records not deleted (what the plan's `records` limit counts), kept by the
    same statement that takes sequence numbers, under the same lock: the limit check reads it with the
    lock instead of counting the table on every create. Null until first counted (records.services)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    value = models.BigIntegerField(default=0)
    stream = models.CharField(max_length=16, default=change_stream_new)
    live_records = models.BigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"change counter at {self.value}"


class Change(models.Model):
    """The change feed: one row per record change, commit-ordered by `seq`."""

    class Op(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        DELETED = "deleted", "Deleted"

    seq = models.BigIntegerField(primary_key=True)
    livemode = models.BooleanField(default=True)
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="changes")
    record_id = models.CharField(max_length=64, db_index=True)
    op = models.CharField(max_length=10, choices=Op.choices)
    version = models.PositiveIntegerField()
    data = models.JSONField(default=dict, help_text="The record's data after the change.")
    changed_fields = models.JSONField(default=list)
    actor = models.CharField(max_length=300, blank=True, default="")
    occurred_at = models.DateTimeField()

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["livemode", "seq"], name="records_change_live_seq")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.op} {self.record_id}"


class TableView(models.Model):
    """A saved view of a collection's records table: the table's query string (filters in the API's
    grammar, sort, search, rows per page, hidden columns, widths, frozen columns), personal to its
    owner or shared with everyone who can see the collection (owner None)."""

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="table_views")
    name = models.CharField(max_length=80)
    query = models.TextField(blank=True, default="")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_by = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        indexes = [models.Index(fields=["collection", "owner"])]

    def __str__(self) -> str:
        return self.name

    @property
    def shared(self) -> bool:
        return self.owner_id is None


class BulkJob(models.Model):
    """A bulk edit or delete of a large selection ("select all N matching"), carried out by a worker in
    batches (records.services.records_bulk_job_run) while the console shows its progress. The selection
    is the ids as they matched when it was asked for, so records the job changes do not move in or out
    of it. Audited once, when it ends, with the count and the ids."""

    class Action(models.TextChoices):
        DELETE = "delete", "Delete"
        SET = "set", "Set a field"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Stopped"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=10, choices=Action.choices)
    data = models.JSONField(default=dict, blank=True, help_text="The patch a `set` applies.")
    label = models.CharField(max_length=200, blank=True, default="", help_text="What the console calls it.")
    ids = models.JSONField(default=list)
    total = models.PositiveIntegerField()
    position = models.PositiveIntegerField(default=0, help_text="How many of `ids` are done.")
    changed = models.JSONField(default=list, help_text="The ids changed (set) or deleted so far.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    error = models.TextField(blank=True, default="")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["collection", "status"])]

    def __str__(self) -> str:
        return f"{self.action} {self.total} in {self.collection_id}"
