"""URLs of the public site (the bare domain in SaaS): sign-up, health, metrics, the operator's cells page."""

from django.conf import settings
from django.urls import include, path

from accounts import views as account_views
from config import views

urlpatterns = [
    path("", account_views.signup, name="signup"),
    path("health", views.health, name="health"),
]

if settings.TESSERA_BILLING_ENABLED:  # Stripe's webhook events, signed (billing.webhooks)
    urlpatterns.append(path("stripe/webhooks", include("billing.urls_public")))

if settings.TESSERA_DIRECTORY_ENABLED:  # SaaS cells: the operator's cells page (cells.views)
    urlpatterns.append(path("", include("cells.urls")))

if getattr(settings, "TESSERA_METRICS_ENABLED", False):
    urlpatterns.append(path("metrics", views.metrics, name="metrics"))

# Error pages render inside the request's tenant (config/errors.py explains why this matters on ASGI).
handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
