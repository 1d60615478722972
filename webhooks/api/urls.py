"""Routes of the webhook endpoints API, mounted under /api/v1/ by api.urls."""

from django.urls import path

from webhooks.api import views

urlpatterns = [
    path("webhook_endpoints", views.EndpointsApi.as_view(), name="webhook_endpoints"),
    path("webhook_endpoints/<str:endpoint_id>", views.EndpointApi.as_view(), name="webhook_endpoint"),
    path(
        "webhook_endpoints/<str:endpoint_id>/rotate_secret",
        views.EndpointSecretRotateApi.as_view(),
        name="webhook_endpoint_rotate_secret",
    ),
    path(
        "webhook_endpoints/<str:endpoint_id>/deliveries",
        views.EndpointDeliveriesApi.as_view(),
        name="webhook_endpoint_deliveries",
    ),
    path(
        "webhook_endpoints/<str:endpoint_id>/deliveries/<str:delivery_id>",
        views.EndpointDeliveryApi.as_view(),
        name="webhook_endpoint_delivery",
    ),
]
