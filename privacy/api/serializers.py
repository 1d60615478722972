"""Input and output shapes of the data-subject requests API."""

from __future__ import annotations

from rest_framework import serializers

from api.schema import StrictSerializer, TextField
from core.errors import ServiceError
from privacy.models import SubjectRequest

REQUEST_ID_PATTERN = r"^dsr_[0-9a-z]{26}$"


class SubjectRequestCreateIn(StrictSerializer):
    kind = serializers.ChoiceField(choices=SubjectRequest.Kind.values)
    regime = serializers.ChoiceField(choices=SubjectRequest.Regime.values, default=SubjectRequest.Regime.GDPR)
    subject = TextField(max_length=320, help_text="The e-mail, phone or customer id the subject is known by.")
    requested_by = TextField(max_length=300, help_text="Who asked, and through which channel.")
    verification = TextField(max_length=500, help_text="How the requester's identity was verified.")
    received_at = serializers.DateTimeField(required=False, help_text="Default: now. Starts the SLA clock.")


class SubjectRequestExtendIn(StrictSerializer):
    reason = TextField(max_length=500)


class SubjectRequestRectifyIn(StrictSerializer):
    corrections = serializers.DictField(
        help_text="The corrected values, as {field key: value}, for every record of the subject (at least one)."
    )

    def validate_corrections(self, value):
        if not value:  # well formed, and refused: 422 (the schema's object may be empty)
            raise ServiceError("Name at least one field to correct.", param="corrections")
        return value


class SubjectRequestLiftIn(StrictSerializer):
    reason = TextField(max_length=500, help_text="Why the restriction is lifted (the subject is told first).")


class SubjectRequestCloseIn(StrictSerializer):
    status = serializers.ChoiceField(choices=["completed", "rejected"])
    note = TextField(max_length=1000, required=False, default="")


class SubjectRequestOut(serializers.Serializer):
    object = serializers.SerializerMethodField()
    id = serializers.CharField()
    kind = serializers.CharField()
    regime = serializers.CharField()
    status = serializers.CharField()
    subject = serializers.CharField(source="subject_identifier")
    subject_erased = serializers.BooleanField()
    requested_by = serializers.CharField()
    verification = serializers.CharField()
    received_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField()
    extended = serializers.BooleanField()
    overdue = serializers.BooleanField()
    days_left = serializers.IntegerField()
    completed_at = serializers.DateTimeField(allow_null=True)
    restricted_at = serializers.DateTimeField(allow_null=True)
    restriction_lifted_at = serializers.DateTimeField(allow_null=True)
    certificate = serializers.JSONField()

    def get_object(self, obj) -> str:
        return "subject_request"


class SubjectRequestListOut(serializers.Serializer):
    object = serializers.CharField()
    data = SubjectRequestOut(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()


class PackageLinkOut(serializers.Serializer):
    object = serializers.CharField()
    url = serializers.URLField()
    expires_at = serializers.DateTimeField()
