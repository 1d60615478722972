"""URLs of a workspace (a tenant's host in SaaS; every request on the desktop)."""

from django.conf import settings
from django.urls import include, path

from config import views

console = (
    [
        path("", views.home, name="home"),
        *[path(f"{name}/", views.section, {"name": name}, name=name) for name in views.SECTIONS],
    ],
    "console",
)

urlpatterns = [
    path("health", views.health, name="health"),
    path("", include(console)),
    path("", include("accounts.urls")),
    path("", include("audit.urls")),
    path("", include("tenants.urls")),
]

if getattr(settings, "TESSERA_METRICS_ENABLED", False):
    urlpatterns.append(path("", include("django_prometheus.urls")))
