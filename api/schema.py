"""OpenAPI building blocks shared by every API view: the problem schema and the error responses of
an operation, the request headers (Idempotency-Key, If-Match, …), the bearer security scheme, and
the schema post-processing (strict request bodies)."""

from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from api.problems import PROBLEM_CONTENT_TYPE, TITLES

NO_NUL = r"^[^\u0000]*$"

# --- serializer helpers -----------------------------------------------------------------------------


class ConstantField(serializers.Field):
    """A read-only string that is always the same (`"object": "record"`)."""

    def __init__(self, value: str, **kwargs):
        self.value = value
        kwargs.update(source="*", read_only=True)
        super().__init__(**kwargs)

    def to_representation(self, _instance) -> str:
        return self.value


class ConstantFieldExtension(OpenApiSerializerFieldExtension):
    target_class = ConstantField

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "string", "enum": [self.target.value]}


class StrictTypesMixin:
    """DRF coerces input types (`1` → "1", "true" → True, "3" → 3); a request body of this API gets
    exactly the JSON types its schema names, or a 400."""

    strict_types: tuple[type, ...] = ()

    def to_internal_value(self, data):
        if (isinstance(data, bool) and bool not in self.strict_types) or not isinstance(data, self.strict_types):
            self.fail("invalid")
        return super().to_internal_value(data)


class TextField(StrictTypesMixin, serializers.CharField):
    """Text in a request body, kept as sent (no trimming: what the text means is the service's call),
    never with a NUL character (the schema says so, so generated clients and fuzzers know)."""

    strict_types = (str,)

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)


class PatternField(StrictTypesMixin, serializers.RegexField):
    """A text matching its pattern as JSON Schema reads it: Python's `$` also matches before a final
    newline, JSON Schema's does not, so "abc\n" is refused here as the schema says."""

    strict_types = (str,)

    def to_internal_value(self, data):
        if isinstance(data, str) and data.endswith("\n"):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(StrictTypesMixin, serializers.BooleanField):
    strict_types = (bool,)


class StrictIntegerField(StrictTypesMixin, serializers.IntegerField):
    """A JSON integer. JSON (and the OpenAPI 3.1 document's JSON Schema) does not tell 3 from 3.0, so a
    number with no fraction is that integer; 3.5, "3" and true are not."""

    strict_types = (int,)

    def to_internal_value(self, data):
        if isinstance(data, float) and data.is_integer() and abs(data) < 2**53:
            data = int(data)
        return super().to_internal_value(data)


class TextFieldExtension(OpenApiSerializerFieldExtension):
    target_class = TextField

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {**schema, "pattern": NO_NUL}


class StrictSerializer(serializers.Serializer):
    """Request bodies: unknown members are an error (400), not silently dropped, so a typo'd
    parameter never passes for a no-op. The schema says so too (additionalProperties: false)."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(str(k) for k in data if k not in self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {k: [serializers.ErrorDetail("Unknown parameter.", code="unknown_parameter")] for k in unknown}
                )
        return super().to_internal_value(data)


class ValidationErrorSerializer(serializers.Serializer):
    param = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()

    class Meta:
        ref_name = "ValidationError"


class MergeConflictSerializer(serializers.Serializer):
    field = serializers.CharField()
    base = serializers.JSONField(allow_null=True, help_text="The value at your base version.")
    current = serializers.JSONField(allow_null=True, help_text="The value now (changed since your base).")
    incoming = serializers.JSONField(allow_null=True, help_text="The value you sent.")

    class Meta:
        ref_name = "FieldConflict"


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details."""

    type = serializers.URLField(help_text="The problem's documentation (same as `doc_url`).")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField(help_text="What went wrong, for a human.")
    code = serializers.CharField(help_text="What went wrong, for a program: see the errors page.")
    param = serializers.CharField(allow_null=True, help_text="The parameter at fault, if one is.")
    request_id = serializers.CharField(help_text="Quote it to support; also the `Request-Id` header.")
    doc_url = serializers.URLField()
    errors = ValidationErrorSerializer(many=True, required=False, help_text="Every problem of the input.")
    conflicts = MergeConflictSerializer(many=True, required=False, help_text="`merge_conflict`: the fields.")
    current_version = serializers.IntegerField(required=False, help_text="The record's version now.")

    class Meta:
        ref_name = "Problem"


# --- operation helpers -------------------------------------------------------------------------------

ERROR_DESCRIPTIONS = {
    400: "Malformed request: a parameter is unknown, missing or of the wrong type (`param` names it).",
    401: "No valid API key (`unauthenticated`).",
    402: "The workspace's plan limit is reached (`plan_limit_exceeded`).",
    403: "The key's scopes (or the user's role) do not allow this (`forbidden`).",
    404: "No such object (`not_found`). Test keys see test data only, live keys live data only.",
    409: "Conflict with the current state (`unique_violation`, `duplicate_*`, `merge_conflict`, "
    "`idempotency_in_flight`, `collection_not_empty`).",
    412: "`If-Match` names another version (`version_mismatch`).",
    413: "The body is too large (`payload_too_large`).",
    415: "The body is not JSON (`unsupported_media_type`).",
    422: "Well-formed, but the data does not fit the collection (`validation_failed`, `invalid_field`, …) or the "
    "Idempotency-Key was used for another request (`idempotency_key_reused`).",
    429: "Rate limit exceeded (`rate_limited`): wait `Retry-After` seconds.",
}
ALWAYS = (401, 403, 429)


def error_responses(*statuses: int) -> dict:
    """The problem+json responses of an operation: `statuses` plus 401, 403 and 429 (every operation)."""
    return {
        (status, PROBLEM_CONTENT_TYPE): OpenApiResponse(
            ProblemSerializer, description=ERROR_DESCRIPTIONS.get(status, TITLES.get(status, "Error"))
        )
        for status in sorted(set(statuses) | set(ALWAYS))
    }


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$"},
    OpenApiParameter.HEADER,
    description="Any unique string of 1–255 visible ASCII characters (a UUID is good). A retry with the same "
    "key within 24 hours gets the first response again, marked `Idempotent-Replayed: true`, instead of doing "
    "the work twice.",
)
IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description='Write only if the record is still at this ETag (e.g. `"01J…Z.3"`); otherwise 412.',
)
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Answer 304 Not Modified (no body) if the record is still at this ETag.",
)
BASE_VERSION = OpenApiParameter(
    "Tessera-Base-Version",
    {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    OpenApiParameter.HEADER,
    description="The version your change was made against. If the record moved on since, your change is merged "
    "field by field with the changes made meanwhile; a field changed differently on both sides answers 409 "
    "`merge_conflict` listing both values. Without it (and without If-Match) the write applies to the current "
    "version.",
)
ETAG = OpenApiParameter(
    "ETag", OpenApiTypes.STR, OpenApiParameter.HEADER, response=True, description="The record's version tag."
)

PROBLEM_EXAMPLE = OpenApiExample(
    "Validation failed",
    value={
        "type": "https://acme.tessera.example/api/v1/docs/errors/#validation_failed",
        "title": "Unprocessable content",
        "status": 422,
        "detail": "`email` must be an e-mail address.",
        "code": "validation_failed",
        "param": "data.email",
        "request_id": "req_5f0c6f1f4f1e4d0b9a3c2b1a09f8e7d6",
        "doc_url": "https://acme.tessera.example/api/v1/docs/errors/#validation_failed",
        "errors": [{"param": "data.email", "code": "invalid_email", "message": "`email` must be an e-mail address."}],
    },
    status_codes=["422"],
    response_only=True,
    media_type=PROBLEM_CONTENT_TYPE,
)
MERGE_CONFLICT_EXAMPLE = OpenApiExample(
    "Merge conflict",
    value={
        "type": "https://acme.tessera.example/api/v1/docs/errors/#merge_conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "Conflicting changes to score since your version.",
        "code": "merge_conflict",
        "param": "data.score",
        "request_id": "req_0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
        "doc_url": "https://acme.tessera.example/api/v1/docs/errors/#merge_conflict",
        "conflicts": [{"field": "score", "base": 1, "current": 2, "incoming": 9}],
        "current_version": 3,
    },
    status_codes=["409"],
    response_only=True,
    media_type=PROBLEM_CONTENT_TYPE,
)


# --- security and post-processing ---------------------------------------------------------------------


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "partners.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "tsk_live_… or tsk_test_…",
            "description": "An API key of the workspace, from the console (API & keys). Test keys "
            "(`tsk_test_…`) act on the workspace's sandbox data, live keys (`tsk_live_…`) on its live data.",
        }


def strict_request_bodies(result, generator, request, public):
    """drf-spectacular post-processing hook: request bodies refuse unknown members (StrictSerializer)."""
    for name, schema in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and schema.get("type") == "object":
            schema.setdefault("additionalProperties", False)
    return result
