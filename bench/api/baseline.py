"""The baseline of bench/api: a plain DRF ModelViewSet on the same table (records_record, live rows of the
`people` collection), no authentication, limit/offset pagination: what "just DRF" costs per request.

It writes around the write spine (no validation, audit, change feed, hooks): it exists only in the
benchmark's own URLConf (bench/api/urls.py), never in production code.
"""

from django.utils import timezone
from rest_framework import serializers, viewsets
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import AllowAny

from records.models import Collection, Record

COLLECTION = "people"


class BaselineRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = Record
        fields = ["id", "data", "version", "created_at", "updated_at"]
        read_only_fields = ["id", "version", "created_at", "updated_at"]


class BaselinePagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 100


class BaselineRecordViewSet(viewsets.ModelViewSet):
    serializer_class = BaselineRecordSerializer
    authentication_classes: list = []
    permission_classes = [AllowAny]
    pagination_class = BaselinePagination
    lookup_field = "id"

    def get_queryset(self):
        return Record.objects.filter(
            livemode=True, deleted_at=None, collection__slug=COLLECTION, collection__livemode=True
        ).order_by("id")

    def perform_create(self, serializer):
        now = timezone.now()
        collection = Collection.objects.get(livemode=True, slug=COLLECTION, deleted_at=None)
        serializer.save(collection=collection, livemode=True, seq=0, created_at=now, updated_at=now)
