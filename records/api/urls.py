"""Routes of the records API, mounted under /api/v1/ by api.urls."""

from django.urls import path, register_converter

from records.api import views


class CollectionSlugConverter:
    regex = r"[a-z][a-z0-9_-]{0,62}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class RecordIdConverter(CollectionSlugConverter):
    regex = r"[A-Za-z0-9_-]{1,64}"


register_converter(CollectionSlugConverter, "collection_slug")
register_converter(RecordIdConverter, "record_id")

urlpatterns = [
    path("collections", views.CollectionsApi.as_view(), name="collections"),
    path("collections/<collection_slug:slug>", views.CollectionApi.as_view(), name="collection"),
    path("collections/<collection_slug:slug>/records", views.RecordsApi.as_view(), name="records"),
    path("collections/<collection_slug:slug>/records/bulk", views.RecordBulkApi.as_view(), name="records_bulk"),
    path("collections/<collection_slug:slug>/records/<record_id:record_id>", views.RecordApi.as_view(), name="record"),
    path("events", views.EventsApi.as_view(), name="events"),
]
