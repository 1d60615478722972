"""Input and output shapes of the records API. Inputs check the shape only (types, lengths, patterns);
what the data means is the write spine's business (records.services)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.schema import (
    ConstantField,
    PatternField,
    ProblemSerializer,
    StrictBooleanField,
    StrictIntegerField,
    StrictSerializer,
    TextField,
)
from records.fields import FIELD_TYPES, RECORD_ID_RE, json_schema_compile
from records.services import SLUG_RE

KEY_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
FIELD_ID_PATTERN = r"^fld_[0-9a-f]{12}$"


@extend_schema_field({"type": "object", "additionalProperties": True, "description": "Field key → value."})
class DataField(serializers.DictField):
    """A JSON object (record data or a merge patch of it)."""


@extend_schema_field({"description": "Any JSON value valid for the field's type."})
class AnyJsonField(serializers.JSONField):
    pass


# --- collections ------------------------------------------------------------------------------------


class FieldDefinitionIn(StrictSerializer):
    id = PatternField(FIELD_ID_PATTERN, required=False, help_text="Keep an existing field's id to rename or change it.")
    key = PatternField(KEY_PATTERN, help_text="The key in record data (lowercase, digits, _).")
    type = serializers.ChoiceField(choices=list(FIELD_TYPES))
    label = TextField(required=False, max_length=120, allow_blank=True)
    description = TextField(required=False, max_length=500, allow_blank=True)
    required = StrictBooleanField(required=False, default=False)
    unique = StrictBooleanField(required=False, default=False)
    choices = serializers.ListField(
        child=TextField(min_length=1, max_length=200),
        required=False,
        min_length=1,
        max_length=500,
        help_text="For `choice` fields: the allowed values.",
    )
    collection = PatternField(
        SLUG_RE.pattern, required=False, help_text="For `reference` fields: the slug of the referenced collection."
    )
    default = AnyJsonField(required=False, allow_null=True, help_text="Filled in when a record has no value.")

    class Meta:
        ref_name = "FieldDefinition"


class FieldDefinitionOut(serializers.Serializer):
    id = serializers.CharField()
    key = serializers.CharField()
    type = serializers.ChoiceField(choices=list(FIELD_TYPES))
    label = serializers.CharField()
    description = serializers.CharField()
    required = serializers.BooleanField()
    unique = serializers.BooleanField()
    choices = serializers.ListField(child=serializers.CharField(), required=False)
    collection = serializers.CharField(required=False)
    default = AnyJsonField(required=False)

    class Meta:
        ref_name = "FieldDefinition"


class CollectionCreateIn(StrictSerializer):
    name = TextField(max_length=120)
    slug = PatternField(SLUG_RE.pattern, help_text="The collection's id in URLs.")
    description = TextField(required=False, allow_blank=True, max_length=5000, default="")
    fields = serializers.ListField(child=FieldDefinitionIn(), required=False, max_length=200, default=list)

    class Meta:
        ref_name = "CollectionCreate"


class CollectionUpdateIn(StrictSerializer):
    name = TextField(required=False, max_length=120)
    description = TextField(required=False, allow_blank=True, max_length=5000)
    fields = serializers.ListField(
        child=FieldDefinitionIn(),
        required=False,
        max_length=200,
        help_text="The whole new list. Fields keep their `id`: a new `key` for an existing id renames the "
        "field (record data follows); a field left out is removed from every record.",
    )

    class Meta:
        ref_name = "CollectionUpdate"


class CollectionOut(serializers.Serializer):
    object = ConstantField("collection")
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    fields = FieldDefinitionOut(many=True)
    record_schema = serializers.SerializerMethodField(help_text="JSON Schema every record's `data` must satisfy.")
    livemode = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field({"type": "object", "additionalProperties": True})
    def get_record_schema(self, collection) -> dict:
        return json_schema_compile(collection.fields)

    class Meta:
        ref_name = "Collection"


class CollectionDeletedOut(serializers.Serializer):
    object = ConstantField("collection")
    slug = serializers.CharField()
    deleted = serializers.BooleanField()

    class Meta:
        ref_name = "DeletedCollection"


class CollectionListOut(serializers.Serializer):
    object = ConstantField("list")
    data = CollectionOut(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()

    class Meta:
        ref_name = "CollectionList"


# --- records ----------------------------------------------------------------------------------------


class RecordOut(serializers.Serializer):
    object = ConstantField("record")
    id = serializers.CharField()
    collection = serializers.CharField(source="collection.slug", help_text="The collection's slug.")
    version = serializers.IntegerField(help_text="Goes up by one with every change; the ETag carries it.")
    data = DataField()
    deleted = serializers.SerializerMethodField()
    livemode = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_deleted(self, record) -> bool:
        return record.deleted_at is not None

    class Meta:
        ref_name = "Record"


class RecordListOut(serializers.Serializer):
    object = ConstantField("list")
    data = RecordOut(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()

    class Meta:
        ref_name = "RecordList"


class RecordCreateIn(StrictSerializer):
    id = PatternField(RECORD_ID_RE, required=False, help_text="Your own id; a sortable one is made if left out.")
    data = DataField()

    class Meta:
        ref_name = "RecordCreate"


class RecordPatchIn(StrictSerializer):
    """A JSON merge patch (RFC 7396) of the record: members of `data` replace fields, null removes one."""

    data = DataField(required=False, default=dict)

    class Meta:
        ref_name = "RecordMergePatch"


class RecordReplaceIn(StrictSerializer):
    data = DataField(help_text="The record's complete new data; fields left out are removed.")

    class Meta:
        ref_name = "RecordReplace"


class BulkItemIn(StrictSerializer):
    id = PatternField(RECORD_ID_RE, required=False)
    data = DataField(help_text="New record: its data. Existing id: a merge patch of its data.")
    version = StrictIntegerField(
        required=False, min_value=1, help_text="For an existing record: refuse unless it is at this version."
    )

    class Meta:
        ref_name = "BulkItem"


class BulkIn(StrictSerializer):
    items = serializers.ListField(child=BulkItemIn(), min_length=1, max_length=1000)

    class Meta:
        ref_name = "BulkUpsert"


class BulkItemOut(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "updated", "unchanged", "error"])
    record = RecordOut(allow_null=True)
    error = ProblemSerializer(allow_null=True)

    class Meta:
        ref_name = "BulkItemResult"


class BulkOut(serializers.Serializer):
    object = ConstantField("bulk_result")
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    failed = serializers.IntegerField()
    results = BulkItemOut(many=True)

    class Meta:
        ref_name = "BulkResult"


# --- events -----------------------------------------------------------------------------------------


class EventDataOut(serializers.Serializer):
    object = RecordOut()
    changed_fields = serializers.ListField(child=serializers.CharField())

    class Meta:
        ref_name = "EventData"


class EventOut(serializers.Serializer):
    object = ConstantField("event")
    id = serializers.CharField(
        help_text="`evt_`, the workspace's change stream and the change's sequence number: unique across "
        "workspaces, and the `webhook-id` of the same event's webhook deliveries."
    )
    type = serializers.ChoiceField(choices=["record.created", "record.updated", "record.deleted"])
    created = serializers.DateTimeField()
    livemode = serializers.BooleanField()
    data = EventDataOut()

    class Meta:
        ref_name = "Event"


class EventListOut(serializers.Serializer):
    object = ConstantField("list")
    data = EventOut(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()

    class Meta:
        ref_name = "EventList"
