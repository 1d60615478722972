"""Console URLs of records: /records/ lists collections; each collection's table, records, fields,
import and export live under /records/<slug>/ (records under r/<id>/, so no id shadows a page)."""

from django.urls import path

from records import views

app_name = "records"

urlpatterns = [
    path("records/", views.collections, name="collections"),
    path("records/<slug:slug>/", views.record_table, name="table"),
    path("records/<slug:slug>/settings/", views.collection_settings, name="collection"),
    path("records/<slug:slug>/settings/delete/", views.collection_remove, name="collection_remove"),
    path("records/<slug:slug>/settings/fields/", views.field_add, name="field_add"),
    path("records/<slug:slug>/settings/fields/<str:field_id>/", views.field_edit, name="field_edit"),
    path("records/<slug:slug>/settings/fields/<str:field_id>/move/", views.field_move, name="field_move"),
    path("records/<slug:slug>/settings/fields/<str:field_id>/remove/", views.field_remove, name="field_remove"),
    path("records/<slug:slug>/new/", views.record_new, name="record_new"),
    path("records/<slug:slug>/import/", views.record_import, name="import"),
    path("records/<slug:slug>/import/<str:token>/", views.record_import_map, name="import_map"),
    path("records/<slug:slug>/export.<str:fmt>", views.record_export, name="export"),
    path("records/<slug:slug>/r/<str:record_id>/", views.record_detail, name="record"),
    path("records/<slug:slug>/r/<str:record_id>/delete/", views.record_remove, name="record_remove"),
    path("records/<slug:slug>/r/<str:record_id>/history/", views.record_history_view, name="record_history"),
]
