"""/api/v1/ of a workspace (tenant hosts only; the public site has no API)."""

from django.urls import include, path

from api import docs

app_name = "api"
urlpatterns = [
    path("", include("records.api.urls")),
    path("", include("webhooks.api.urls")),
    path("", include("privacy.api.urls")),
    path("", include("analytics.api.urls")),
    path("schema", docs.SchemaView.as_view(), name="schema"),
    path("docs/", docs.SwaggerView.as_view(), name="docs"),
    path("redoc/", docs.RedocView.as_view(), name="redoc"),
    path("docs/errors/", docs.errors_page, name="errors"),
]
