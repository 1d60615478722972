"""Input and output shapes of the webhook endpoints API. Inputs check the shape only (types, lengths,
the catalogue's event types); whether a URL may be called or a header sent is decided afterwards and
answered with 422, like any well-formed request that cannot be done."""

from __future__ import annotations

import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.schema import (
    ConstantField,
    StrictBooleanField,
    StrictIntegerField,
    StrictSerializer,
    TextField,
)
from webhooks.forms import catalogue_choices_values
from webhooks.models import Delivery
from webhooks.services import HEADER_VALUE_MAX, HEADERS_MAX, RATE_LIMIT_MAX, URL_MAX

ENDPOINT_ID_PATTERN = r"^ep_[0-9a-z]{26}$"
DELIVERY_ID_PATTERN = r"^dlv_[0-9]{1,18}$"
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$"
HEADER_VALUE_PATTERN = r"^[^\u0000-\u0008\u000a-\u001f\u007f]*$"
EVENT_TYPES_MAX = 50


@extend_schema_field(
    {
        "type": "object",
        "maxProperties": HEADERS_MAX,
        "propertyNames": {"pattern": HEADER_NAME_PATTERN},
        "additionalProperties": {"type": "string", "maxLength": HEADER_VALUE_MAX, "pattern": HEADER_VALUE_PATTERN},
        "description": "Custom headers sent with every delivery (name → value). Not allowed: `webhook-*` and "
        "connection-level headers (Host, Content-Type, Connection, Transfer-Encoding, …).",
        "example": {"X-Api-Token": "abc123"},
    }
)
class HeadersField(serializers.DictField):
    child = TextField(max_length=HEADER_VALUE_MAX, allow_blank=True)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        if len(data) > HEADERS_MAX:
            raise serializers.ValidationError(f"At most {HEADERS_MAX} headers.")
        for name, value in data.items():
            if not re.fullmatch(HEADER_NAME_PATTERN[1:-1], str(name)):
                raise serializers.ValidationError(f"`{str(name)[:100]}` is not a header name.")
            if isinstance(value, str) and re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value):
                raise serializers.ValidationError(f"The value of `{name}` holds control characters.")
        return super().to_internal_value(data)


def _event_types_field(**kwargs):
    return serializers.ListField(
        child=serializers.ChoiceField(choices=catalogue_choices_values()),
        max_length=EVENT_TYPES_MAX,
        help_text="Event types to send (catalogue names or `group.*` wildcards); empty: every event.",
        **kwargs,
    )


class EndpointCreateIn(StrictSerializer):
    url = TextField(max_length=URL_MAX, help_text="An https:// (or http://) URL on the public internet.")
    description = TextField(max_length=500, required=False, allow_blank=True, default="")
    event_types = _event_types_field(required=False, default=list)
    rate_limit_per_second = StrictIntegerField(
        min_value=1, max_value=RATE_LIMIT_MAX, required=False, allow_null=True, default=None
    )
    headers = HeadersField(required=False, default=dict)

    class Meta:
        ref_name = "WebhookEndpointCreate"


class EndpointUpdateIn(StrictSerializer):
    url = TextField(max_length=URL_MAX, required=False)
    description = TextField(max_length=500, required=False, allow_blank=True)
    event_types = _event_types_field(required=False)
    enabled = StrictBooleanField(
        required=False, help_text="Re-enabling a disabled endpoint sends its pending deliveries."
    )
    rate_limit_per_second = StrictIntegerField(min_value=1, max_value=RATE_LIMIT_MAX, required=False, allow_null=True)
    headers = HeadersField(required=False)

    class Meta:
        ref_name = "WebhookEndpointUpdate"


class SecretRotateIn(StrictSerializer):
    overlap_seconds = StrictIntegerField(
        min_value=0,
        max_value=7 * 24 * 3600,
        required=False,
        default=24 * 3600,
        help_text="How long the old secret stays valid (deliveries carry both signatures until then).",
    )

    class Meta:
        ref_name = "WebhookSecretRotate"


class EndpointOut(serializers.Serializer):
    object = ConstantField("webhook_endpoint")
    id = serializers.CharField()
    url = serializers.CharField()
    description = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField(), help_text="Empty: every event type.")
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField(help_text="Why Tessera disabled it (e.g. 410 Gone), or empty.")
    disabled_at = serializers.DateTimeField(allow_null=True)
    rate_limit_per_second = serializers.IntegerField(allow_null=True)
    headers = serializers.DictField(child=serializers.CharField())
    livemode = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    class Meta:
        ref_name = "WebhookEndpoint"


class EndpointWithSecretOut(EndpointOut):
    secret = serializers.CharField(help_text="The signing secret (`whsec_…`): shown only in this response.")

    class Meta:
        ref_name = "WebhookEndpointCreated"


class EndpointListOut(serializers.Serializer):
    object = ConstantField("list")
    data = EndpointOut(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()

    class Meta:
        ref_name = "WebhookEndpointList"


class EndpointDeletedOut(serializers.Serializer):
    object = ConstantField("webhook_endpoint")
    id = serializers.CharField()
    deleted = serializers.BooleanField()

    class Meta:
        ref_name = "WebhookEndpointDeleted"


class SecretOut(serializers.Serializer):
    object = ConstantField("webhook_endpoint_secret")
    endpoint = serializers.CharField()
    secret = serializers.CharField(help_text="The new signing secret (`whsec_…`): shown only in this response.")
    previous_secrets_expire_at = serializers.DateTimeField(help_text="When the old secret stops being valid.")

    class Meta:
        ref_name = "WebhookEndpointSecret"


class DeliveryOut(serializers.Serializer):
    object = ConstantField("webhook_delivery")
    id = serializers.CharField()
    endpoint = serializers.CharField()
    event_id = serializers.CharField(help_text="The `webhook-id` header: the idempotency key of the event.")
    event_type = serializers.CharField()
    status = serializers.ChoiceField(choices=Delivery.Status.values)
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    livemode = serializers.BooleanField()

    class Meta:
        ref_name = "WebhookDelivery"


class AttemptOut(serializers.Serializer):
    number = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField(allow_null=True)
    request_url = serializers.CharField()
    request_headers = serializers.DictField(child=serializers.CharField())
    request_body = serializers.CharField(help_text="Empty once past the workspace's payload retention.")
    response_status = serializers.IntegerField(allow_null=True, help_text="Null when no answer came.")
    response_headers = serializers.DictField(child=serializers.CharField())
    response_body = serializers.CharField(help_text="The start of the answer (truncated).")
    error = serializers.CharField(help_text="Why the attempt failed without an answer (timeout, refused, …).")

    class Meta:
        ref_name = "WebhookAttempt"


class DeliveryDetailOut(DeliveryOut):
    attempt_log = AttemptOut(many=True, help_text="Every attempt, newest first.")

    class Meta:
        ref_name = "WebhookDeliveryDetail"


class DeliveryListOut(serializers.Serializer):
    object = ConstantField("list")
    data = DeliveryOut(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()

    class Meta:
        ref_name = "WebhookDeliveryList"


def delivery_out(delivery, attempts=None) -> dict:
    fields = {
        "id": f"dlv_{delivery.pk}",
        "endpoint": delivery.endpoint_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event.type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "next_attempt_at": delivery.next_attempt_at if delivery.status == Delivery.Status.PENDING else None,
        "created_at": delivery.created_at,
        "completed_at": delivery.completed_at,
        "livemode": delivery.livemode,
    }
    if attempts is None:
        return DeliveryOut(fields).data
    return DeliveryDetailOut({**fields, "attempt_log": attempts}).data
