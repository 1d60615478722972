"""The API's documentation, served by the workspace itself and offline: the OpenAPI 3 schema,
Swagger UI and Redoc (drf-spectacular-sidecar's static files, nothing from a CDN), and the errors page
every problem's `doc_url` points into."""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from api.problems import PROBLEM_CODES, TITLES

# Redoc renders with styled-components, which injects <style> elements, and runs its search in a
# blob: worker. The console's policy (config.settings CONTENT_SECURITY_POLICY) allows neither, so this
# one page gets a policy of its own; scripts still load only from this origin.
REDOC_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "worker-src 'self' blob:; font-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)


class SchemaView(SpectacularAPIView):
    """The OpenAPI 3 document: JSON, or YAML with `?format=yaml`."""

    renderer_classes = [OpenApiJsonRenderer, OpenApiYamlRenderer]
    authentication_classes = []
    permission_classes = [AllowAny]


class SwaggerView(SpectacularSwaggerSplitView):
    """Swagger UI; its start-up script is a separate request (`?script`), so the page needs no inline
    script and runs under the console's own Content-Security-Policy."""

    template_name = "api/swagger_ui.html"
    url_name = "api:schema"
    authentication_classes = []
    permission_classes = [AllowAny]


class RedocView(SpectacularRedocView):
    template_name = "api/redoc.html"
    url_name = "api:schema"
    authentication_classes = []
    permission_classes = [AllowAny]

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Content-Security-Policy"] = REDOC_CSP
        return response


@require_safe
@cache_control(public=True, max_age=3600)
def errors_page(request):
    codes = [
        {"code": code, "statuses": [(s, TITLES.get(s, "")) for s in statuses], "meaning": meaning}
        for code, (statuses, meaning) in sorted(PROBLEM_CODES.items(), key=lambda item: (item[1][0][0], item[0]))
    ]
    return render(request, "api/errors.html", {"codes": codes})
