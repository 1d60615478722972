"""Console URLs of records: /records/ lists collections; each collection's table, records, fields,
import and export live under /records/<slug>/ (records under r/<id>/, so no id shadows a page)."""

from django.urls import path

from records.views import bulk_jobs, collections, exports, fields, grid, imports, record, saved_views, table, undo

app_name = "records"

urlpatterns = [
    path("records/", collections.collections, name="collections"),
    path("records/-/deletions/", collections.collection_deletions_status, name="deletions"),
    path("records/<slug:slug>/", table.record_table, name="table"),
    path("records/<slug:slug>/settings/", fields.collection_settings, name="collection"),
    path("records/<slug:slug>/settings/delete/", collections.collection_remove, name="collection_remove"),
    path("records/<slug:slug>/settings/fields/", fields.field_add, name="field_add"),
    path("records/<slug:slug>/settings/fields/<str:field_id>/", fields.field_edit, name="field_edit"),
    path("records/<slug:slug>/settings/fields/<str:field_id>/move/", fields.field_move, name="field_move"),
    path("records/<slug:slug>/settings/fields/<str:field_id>/remove/", fields.field_remove, name="field_remove"),
    path("records/<slug:slug>/new/", record.record_new, name="record_new"),
    path("records/<slug:slug>/import/", imports.record_import, name="import"),
    path("records/<slug:slug>/import/<str:token>/", imports.record_import_map, name="import_map"),
    path("records/<slug:slug>/export.<str:fmt>", exports.record_export, name="export"),
    path("records/<slug:slug>/r/<str:record_id>/", record.record_detail, name="record"),
    path("records/<slug:slug>/r/<str:record_id>/delete/", record.record_remove, name="record_remove"),
    path("records/<slug:slug>/bulk/", grid.records_bulk, name="bulk"),
    path("records/<slug:slug>/bulk/jobs/", bulk_jobs.bulk_jobs_status, name="bulk_jobs"),
    path("records/<slug:slug>/undo/", undo.records_undo, name="undo"),
    path("records/<slug:slug>/views/", saved_views.table_view_save, name="view_save"),
    path("records/<slug:slug>/views/<str:view_id>/", saved_views.table_view_change, name="view_change"),
    path("records/<slug:slug>/r/<str:record_id>/row/", grid.record_row, name="record_row"),
    path("records/<slug:slug>/r/<str:record_id>/cell/<str:key>/", grid.record_cell, name="record_cell"),
    path("records/<slug:slug>/r/<str:record_id>/history/", record.record_history_view, name="record_history"),
]
