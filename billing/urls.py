"""The console's billing page (SaaS only: config.urls_tenant includes it when billing is on)."""

from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("billing/", views.page, name="page"),
    path("billing/checkout/", views.checkout, name="checkout"),
    path("billing/plan/", views.plan_change, name="plan_change"),
    path("billing/portal/", views.portal, name="portal"),
]
