"""Saved queries and dashboards of a workspace (tenant schema).

A saved query keeps its query as the JSON `analytics.queries.QuerySpec.as_dict` writes, so the
console, the API and scheduled reports run the very same thing. Saved queries are shared within the
workspace (everyone who may use analytics sees them); their owner is who made them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

CHARTS = {
    "bar": "Bar",
    "line": "Line",
    "area": "Area",
    "pie": "Pie",
    "donut": "Donut",
    "number": "Single number",
    "table": "Table",
}


class SavedQuery(models.Model):
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, default="")
    spec = models.JSONField(help_text="analytics.queries.QuerySpec.as_dict()")
    chart = models.CharField(max_length=12, choices=list(CHARTS.items()), default="bar")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Dashboard(models.Model):
    name = models.CharField(max_length=120)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Managers and Viewers see a dashboard only once it is shared with the workspace.
    shared = models.BooleanField(default=False)
    is_home = models.BooleanField(default=False, help_text="The workspace's home dashboard.")
    refresh_seconds = models.PositiveIntegerField(default=0, help_text="Auto-refresh; 0 = off.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-is_home", "name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["is_home"], condition=models.Q(is_home=True), name="analytics_one_home")
        ]

    def __str__(self) -> str:
        return self.name


class DashboardTile(models.Model):
    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="tiles")
    query = models.ForeignKey(SavedQuery, on_delete=models.CASCADE, related_name="tiles")
    position = models.PositiveIntegerField(default=0)
    width = models.PositiveSmallIntegerField(default=1, help_text="Columns of the grid's 4 it spans.")
    chart = models.CharField(max_length=12, choices=list(CHARTS.items()), blank=True, default="")

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.dashboard} · {self.query}"

    @property
    def chart_kind(self) -> str:
        return self.chart or self.query.chart


class ReportSchedule(models.Model):
    """A saved query or a dashboard e-mailed on a schedule (in the workspace's time zone), its data
    attached: exactly one of `query` and `dashboard` is set."""

    class Frequency(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"
        MONTHLY = "monthly", "Monthly"

    query = models.ForeignKey(SavedQuery, null=True, blank=True, on_delete=models.CASCADE, related_name="schedules")
    dashboard = models.ForeignKey(Dashboard, null=True, blank=True, on_delete=models.CASCADE, related_name="schedules")
    frequency = models.CharField(max_length=8, choices=Frequency.choices, default=Frequency.WEEKLY)
    weekday = models.PositiveSmallIntegerField(default=0, help_text="Weekly: 0 = Monday … 6 = Sunday.")
    day_of_month = models.PositiveSmallIntegerField(default=1, help_text="Monthly: 1–28.")
    at_time = models.TimeField(help_text="Local time of the workspace.")
    recipients = models.JSONField(default=list, help_text="E-mail addresses (members' or others').")
    attachment = models.CharField(max_length=4, default="csv", help_text="csv or xlsx")
    paused = models.BooleanField(default=False)
    next_run_at = models.DateTimeField(db_index=True)
    retrying_run = models.DateTimeField(null=True, blank=True, help_text="The scheduled run being retried.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["next_run_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(query__isnull=False, dashboard__isnull=True)
                | models.Q(query__isnull=True, dashboard__isnull=False),
                name="analytics_schedule_query_or_dashboard",
            )
        ]

    def __str__(self) -> str:
        return f"{self.subject} ({self.frequency})"

    @property
    def subject(self):
        """What is e-mailed: the saved query or the dashboard."""
        return self.query if self.query_id else self.dashboard


class ReportDelivery(models.Model):
    """One run of a schedule: sent, or failed with the reason (retried a few times, then left failed)."""

    class Status(models.TextChoices):
        SENT = "sent", "Sent"
        RETRYING = "retrying", "Failed, will retry"
        FAILED = "failed", "Failed"

    schedule = models.ForeignKey(ReportSchedule, on_delete=models.CASCADE, related_name="deliveries")
    scheduled_for = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices)
    error = models.TextField(blank=True, default="")
    rows = models.PositiveIntegerField(default=0)
    recipients = models.JSONField(default=list)
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ["-finished_at", "-id"]

    def __str__(self) -> str:
        return f"{self.schedule} @ {self.scheduled_for:%Y-%m-%d %H:%M} {self.status}"


class ExportJob(models.Model):
    """A large export run by a background worker into a file, then downloaded through an expiring,
    signed link (analytics.export_jobs). `token` is its public id (`exp_…`), never the row's number."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Ready"
        FAILED = "failed", "Failed"

    class What(models.TextChoices):
        RECORDS = "records", "Records"
        QUERY_RESULT = "query_result", "Query result"

    token = models.CharField(max_length=40, unique=True)
    livemode = models.BooleanField(default=True)
    what = models.CharField(max_length=12, choices=What.choices)
    collection = models.CharField(max_length=63, help_text="The collection's slug.")
    filters = models.JSONField(default=dict, blank=True, help_text="Records: the record filter grammar.")
    spec = models.JSONField(null=True, blank=True, help_text="Query result: QuerySpec.as_dict().")
    fmt = models.CharField(max_length=6)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.PositiveBigIntegerField(null=True, blank=True)
    rows_done = models.PositiveBigIntegerField(default=0)
    size = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_label = models.CharField(max_length=300, blank=True, default="", help_text="The actor, as audited.")
    # An export started with an API key belongs to that key: only it sees the job and its file (by id,
    # not a foreign key: partners sits beside analytics, not under it).
    requested_by_key = models.CharField(max_length=64, blank=True, default="", db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.token} {self.what} {self.fmt} {self.status}"

    @property
    def file_name(self) -> str:
        return f"{self.token}.{self.fmt}"


class ExactNumberField(models.Field):
    """An unconstrained `numeric` column: sums kept exact at the scale their inputs had (PostgreSQL's
    numeric; SQLite's NUMERIC affinity keeps integers whole). Read and written by analytics.rollups' SQL."""

    def db_type(self, connection):
        return "numeric"


class Rollup(models.Model):
    """A collection's analytics rollup (analytics.rollups): its records counted and summed per cell of
    its low-cardinality fields (choices, booleans, local days of dates), kept current by the write spine's
    record events. `signature` is the collection's shape the cells were computed for; a query uses the
    rollup only while it is `ready` and the collection still has that shape."""

    class Status(models.TextChoices):
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        STALE = "stale", "Stale"

    collection = models.OneToOneField("records.Collection", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STALE)
    signature = models.JSONField(default=dict)
    records = models.BigIntegerField(default=0, help_text="Live records counted when it was built.")
    built_at = models.DateTimeField(null=True, blank=True)
    build_seconds = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rollup of collection {self.collection_id} ({self.status})"


ROLLUP_DIMS = 8  # the choice/boolean/date fields a rollup keeps (the first ones of the collection)
ROLLUP_MEASURES = 8  # the number/integer fields it sums


class RollupCell(models.Model):
    """One cell of a rollup: the values of its dims (`d0`… as the rollup's signature orders them: a value
    token, or a local day as YYYY-MM-DD; NULL: missing), its records (`n`), and per measure (`m0`…) the
    sum of its JSON numbers (`sN`), how many there were (`cN`) and how many had a fraction (`fN`)."""

    rollup = models.ForeignKey(Rollup, on_delete=models.CASCADE, related_name="cells")
    cell = models.CharField(max_length=40, help_text="SHA-1 of the cell's dims, canonical JSON.")
    n = models.BigIntegerField(default=0)
    d0 = models.TextField(null=True)
    d1 = models.TextField(null=True)
    d2 = models.TextField(null=True)
    d3 = models.TextField(null=True)
    d4 = models.TextField(null=True)
    d5 = models.TextField(null=True)
    d6 = models.TextField(null=True)
    d7 = models.TextField(null=True)
    s0 = ExactNumberField(default=0)
    c0 = models.BigIntegerField(default=0)
    f0 = models.BigIntegerField(default=0)
    s1 = ExactNumberField(default=0)
    c1 = models.BigIntegerField(default=0)
    f1 = models.BigIntegerField(default=0)
    s2 = ExactNumberField(default=0)
    c2 = models.BigIntegerField(default=0)
    f2 = models.BigIntegerField(default=0)
    s3 = ExactNumberField(default=0)
    c3 = models.BigIntegerField(default=0)
    f3 = models.BigIntegerField(default=0)
    s4 = ExactNumberField(default=0)
    c4 = models.BigIntegerField(default=0)
    f4 = models.BigIntegerField(default=0)
    s5 = ExactNumberField(default=0)
    c5 = models.BigIntegerField(default=0)
    f5 = models.BigIntegerField(default=0)
    s6 = ExactNumberField(default=0)
    c6 = models.BigIntegerField(default=0)
    f6 = models.BigIntegerField(default=0)
    s7 = ExactNumberField(default=0)
    c7 = models.BigIntegerField(default=0)
    f7 = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rollup", "cell"], name="analytics_rollupcell_unique")]

    def __str__(self) -> str:
        return f"{self.cell[:8]}: {self.n}"
