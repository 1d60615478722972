"""Input and output shapes of the analytics API. Inputs check the shape only (types, lengths,
patterns); whether a query fits its collection is analytics.queries' business (422 when not)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analytics.models import CHARTS
from analytics.queries import AGGREGATES, BUCKETS, COMPARES, LIMIT_MAX
from api.schema import ConstantField, PatternField, StrictIntegerField, StrictSerializer, TextField
from core.errors import ServiceError
from records.services import SLUG_RE

KEY_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
FILTER_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}(__(eq|ne|gt|gte|lt|lte|in|contains|isnull))?$"


class GroupByIn(StrictSerializer):
    field = PatternField(KEY_PATTERN, help_text="A field key, or `created_at` / `updated_at`.")
    bucket = serializers.ChoiceField(
        choices=list(BUCKETS), required=False, help_text="Time bucket of a date field (the workspace's time zone)."
    )

    class Meta:
        ref_name = "AnalyticsGroupBy"


class AggregateIn(StrictSerializer):
    fn = serializers.ChoiceField(choices=list(AGGREGATES))
    field = PatternField(KEY_PATTERN, required=False, help_text="Every aggregate but `count` names a field.")
    p = serializers.FloatField(required=False, min_value=0, max_value=100, help_text="For `percentile`: 0–100.")

    class Meta:
        ref_name = "AnalyticsAggregate"


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "string", "maxLength": 500, "pattern": r"^[^\u0000]*$"},
        "propertyNames": {"pattern": FILTER_NAME_PATTERN},
        "maxProperties": 50,
        "description": "The records API's filters: `field` or `field__op` (eq ne gt gte lt lte in contains "
        "isnull) → value as text.",
    }
)
class FiltersField(serializers.DictField):
    child = TextField(max_length=500, allow_blank=True)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        return super().to_internal_value(data)


class QueryIn(StrictSerializer):
    collection = PatternField(SLUG_RE.pattern, help_text="The collection's slug.")
    filters = FiltersField(required=False)
    group_by = serializers.ListField(child=GroupByIn(), required=False, max_length=2)
    aggregates = serializers.ListField(child=AggregateIn(), required=False, min_length=1, max_length=10)
    sort = PatternField(r"^-?[a-z0-9_]{1,140}$", required=False, help_text="A result column's key; `-` descending.")
    limit = StrictIntegerField(required=False, min_value=1, max_value=LIMIT_MAX)
    date_field = PatternField(KEY_PATTERN, required=False, help_text="The date the range applies to.")
    date_from = PatternField(DATE_PATTERN, required=False, help_text="First day of the range (inclusive).")
    date_to = PatternField(DATE_PATTERN, required=False, help_text="Last day of the range (inclusive).")
    compare = serializers.ChoiceField(choices=list(COMPARES), required=False)

    class Meta:
        ref_name = "AnalyticsQuery"


class ColumnOut(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    kind = serializers.ChoiceField(choices=["group", "bucket", "value"])

    class Meta:
        ref_name = "AnalyticsColumn"


@extend_schema_field({"type": "array", "items": {"type": "array", "items": {}}})
class RowsField(serializers.ListField):
    pass


class ResultOut(serializers.Serializer):
    object = ConstantField("analytics_result")
    query = serializers.DictField(help_text="The query as run (normalised).")
    columns = ColumnOut(many=True)
    rows = RowsField(help_text="One array per group, values in the order of `columns`.")
    truncated = serializers.BooleanField(help_text="More groups than `limit`.")
    records_matched = serializers.IntegerField()
    time_zone = serializers.CharField(help_text="The workspace's time zone, which buckets days in.")
    compare_range = serializers.ListField(child=serializers.DateField(), allow_null=True)

    class Meta:
        ref_name = "AnalyticsResult"


class SavedQueryOut(serializers.Serializer):
    object = ConstantField("saved_query")
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    chart = serializers.ChoiceField(choices=list(CHARTS))
    query = serializers.DictField(source="spec")
    owner = serializers.EmailField(source="owner.email", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    class Meta:
        ref_name = "SavedQuery"


class SavedQueryListOut(serializers.Serializer):
    object = ConstantField("list")
    data = SavedQueryOut(many=True)
    has_more = serializers.BooleanField()


class ExportIn(StrictSerializer):
    format = serializers.ChoiceField(choices=["csv", "json", "ndjson", "xlsx"])
    collection = PatternField(SLUG_RE.pattern, required=False, help_text="Records export: the collection's slug.")
    filters = FiltersField(required=False, help_text="Records export: the records API's filters.")
    query = QueryIn(required=False, help_text="Query result export: the query (instead of `collection`).")

    class Meta:
        ref_name = "AnalyticsExportIn"

    def validate(self, attrs):
        # Each field is well formed (the schema allows either): a request naming both, or neither, is
        # understood and refused, 422 like any other request the service cannot carry out.
        if ("query" in attrs) == ("collection" in attrs):
            raise ServiceError("Name a `collection` (its records) or a `query`, not both.", param="collection")
        if "query" in attrs and "filters" in attrs:
            raise ServiceError("A query carries its own filters.", param="filters")
        return attrs


class ExportOut(serializers.Serializer):
    object = ConstantField("analytics_export")
    id = serializers.CharField(source="token")
    status = serializers.ChoiceField(choices=["queued", "running", "done", "failed"])
    what = serializers.ChoiceField(choices=["records", "query_result"])
    format = serializers.CharField(source="fmt")
    collection = serializers.CharField()
    rows_done = serializers.IntegerField(help_text="Rows written so far.")
    rows_total = serializers.IntegerField(allow_null=True, help_text="Rows to write (known once it runs).")
    size = serializers.IntegerField(help_text="Bytes of the finished file.")
    error = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True, help_text="When the file and its links go away.")
    url = serializers.CharField(
        allow_null=True, help_text="Once done: a signed link that downloads the file without a key, until it expires."
    )

    class Meta:
        ref_name = "AnalyticsExport"
