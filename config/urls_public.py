"""URLs of the public site (the bare domain in SaaS): sign-up, health, metrics."""

from django.conf import settings
from django.urls import include, path

from config import views
from tenants import views as tenant_views

urlpatterns = [
    path("", tenant_views.signup, name="signup"),
    path("health", views.health, name="health"),
]

if getattr(settings, "TESSERA_METRICS_ENABLED", False):
    urlpatterns.append(path("", include("django_prometheus.urls")))
