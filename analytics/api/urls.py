"""Routes of the analytics API, mounted under /api/v1/ by config.urls_api."""

from django.urls import path

from analytics.api import views

urlpatterns = [
    path("analytics/query", views.QueryApi.as_view(), name="analytics_query"),
    path("analytics/saved_queries", views.SavedQueriesApi.as_view(), name="analytics_saved_queries"),
    path(
        "analytics/saved_queries/<int:query_id>/result",
        views.SavedQueryResultApi.as_view(),
        name="analytics_saved_query_result",
    ),
    path("analytics/exports", views.ExportsApi.as_view(), name="analytics_exports"),
    path("analytics/exports/<str:export_id>", views.ExportApi.as_view(), name="analytics_export"),
    path("analytics/exports/<str:export_id>/file", views.ExportFileApi.as_view(), name="analytics_export_file"),
]
