"""Console URLs of analytics: /analytics/ (the home dashboard), queries and dashboards."""

from django.urls import path

from analytics.views import builtin, dashboards, exports, queries, reports

app_name = "analytics"

urlpatterns = [
    path("analytics/", dashboards.analytics_home, name="home"),
    path("analytics/changes/", dashboards.changes_head, name="changes"),
    path("analytics/queries/", queries.query_list, name="queries"),
    path("analytics/queries/new/", queries.query_new, name="query_new"),
    path("analytics/queries/<int:pk>/", queries.query_detail, name="query"),
    path("analytics/queries/<int:pk>/delete/", queries.query_delete, name="query_delete"),
    path("analytics/export.<str:fmt>", queries.query_export, name="query_export"),
    path("analytics/queries/<int:pk>/export.<str:fmt>", queries.query_export, name="saved_query_export"),
    path("analytics/records/<slug:slug>/export.<str:fmt>", queries.records_export, name="records_export"),
    path("analytics/exports/", exports.export_list, name="exports"),
    path("analytics/exports/start/", exports.export_start, name="export_start"),
    path("analytics/exports/download/<str:signed>/", exports.export_download, name="export_download"),
    path("analytics/queries/<int:pk>/schedules/", reports.schedule_add, name="schedule_add"),
    path("analytics/schedules/<int:pk>/", reports.schedule_change, name="schedule_change"),
    path("analytics/schedules/<int:pk>/log/", reports.schedule_log, name="schedule_log"),
    path("analytics/dashboards/", dashboards.dashboard_list, name="dashboards"),
    path("analytics/dashboards/<int:pk>/", dashboards.dashboard_detail, name="dashboard"),
    path("analytics/dashboards/<int:pk>/tiles/", dashboards.dashboard_tiles, name="dashboard_tiles"),
    path("analytics/dashboards/<int:pk>/schedules/", reports.dashboard_schedule_add, name="dashboard_schedule_add"),
    path("analytics/dashboards/<int:pk>/settings/", dashboards.dashboard_settings, name="dashboard_settings"),
    path("analytics/builtin/<slug:slug>/", builtin.builtin_dashboard, name="builtin"),
    path("analytics/tiles/", dashboards.tile_add, name="tile_add"),
    path("analytics/tiles/<int:pk>/", dashboards.tile_change, name="tile_change"),
]
