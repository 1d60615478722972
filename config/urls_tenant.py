"""URLs of a workspace (a tenant's host in SaaS; every request on the desktop)."""

from django.conf import settings
from django.urls import include, path

from config import views

console = (
    [
        path("", views.home, name="home"),
        path("console/mode/", views.console_mode, name="mode"),
        *[path(f"{name}/", views.section, {"name": name}, name=name) for name in views.SECTIONS],
    ],
    "console",
)

urlpatterns = [
    path("health", views.health, name="health"),
    path("", include(console)),
    path("", include("accounts.urls")),
    path("", include("audit.urls")),
    path("", include("records.urls")),
    path("", include("partners.urls")),
    path("", include("webhooks.urls")),
    path("", include("sync.urls")),
    path("", include("privacy.urls")),
    path("", include("analytics.urls")),
    path("api/v1/", include("config.urls_api")),  # the REST API and its docs
]

if settings.TESSERA_BILLING_ENABLED:  # the SaaS: the billing page (the desktop has no plans)
    urlpatterns.insert(-1, path("", include("billing.urls")))

if getattr(settings, "TESSERA_METRICS_ENABLED", False):
    urlpatterns.append(path("metrics", views.metrics, name="metrics"))

# Error pages render inside the request's tenant (config/errors.py explains why this matters on ASGI).
handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
