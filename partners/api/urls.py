"""/api/v1/ of a workspace (tenant hosts only; the public site has no API)."""

from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


def docs_view(name: str):
    """A view of partners.api.docs, loaded with its first request: drf-spectacular's views bring DRF's
    schema generators and Django's admin and admindocs with them (about 2 MB resident), which a
    workspace serving records (a desktop, most SaaS processes) otherwise never needs."""
    view = None

    @csrf_exempt  # as DRF's views are; the docs are read-only
    def lazy(request, *args, **kwargs):
        nonlocal view
        if view is None:
            from partners.api import docs

            found = getattr(docs, name)
            view = found.as_view() if isinstance(found, type) else found
        return view(request, *args, **kwargs)

    lazy.__name__ = lazy.__qualname__ = name
    return lazy


app_name = "api"
urlpatterns = [
    path("", include("records.api.urls")),
    path("", include("webhooks.api.urls")),
    path("schema", docs_view("SchemaView"), name="schema"),
    path("docs/", docs_view("SwaggerView"), name="docs"),
    path("redoc/", docs_view("RedocView"), name="redoc"),
    path("docs/errors/", docs_view("errors_page"), name="errors"),
]
