"""Console pages of webhooks, and the inspector's receiver URL (the API's endpoints live in webhooks/api/)."""

from django.urls import path

from webhooks import views

app_name = "webhooks"
urlpatterns = [
    path("webhooks/", views.endpoints, name="endpoints"),
    path("webhooks/endpoints/new/", views.endpoint_new, name="endpoint_new"),
    path("webhooks/endpoints/<str:endpoint_id>/", views.endpoint_detail, name="endpoint"),
    path("webhooks/endpoints/<str:endpoint_id>/edit/", views.endpoint_edit, name="endpoint_edit"),
    path("webhooks/endpoints/<str:endpoint_id>/delete/", views.endpoint_delete, name="endpoint_delete"),
    path("webhooks/endpoints/<str:endpoint_id>/secret/", views.endpoint_secret_reveal, name="endpoint_secret"),
    path("webhooks/endpoints/<str:endpoint_id>/rotate/", views.endpoint_secret_rotate, name="endpoint_rotate"),
    path("webhooks/endpoints/<str:endpoint_id>/test/", views.endpoint_test, name="endpoint_test"),
    path("webhooks/endpoints/<str:endpoint_id>/recover/", views.endpoint_recover, name="endpoint_recover"),
    path("webhooks/deliveries/", views.deliveries, name="deliveries"),
    path("webhooks/deliveries/<int:delivery_id>/", views.delivery_detail, name="delivery"),
    path("webhooks/deliveries/<int:delivery_id>/resend/", views.delivery_resend, name="delivery_resend"),
    path("webhooks/settings/", views.webhook_settings, name="settings"),
    path("webhooks/docs/", views.docs, name="docs"),
    path("webhooks/inspector/", views.inspector, name="inspector"),
    path("webhooks/inspector/<int:pk>/", views.inspector_bin, name="inspector_bin"),
    path("webhooks/inspector/<int:pk>/clear/", views.inspector_bin_action, {"action": "clear"}, name="inspector_clear"),
    path(
        "webhooks/inspector/<int:pk>/delete/", views.inspector_bin_action, {"action": "delete"}, name="inspector_delete"
    ),
    path("webhooks/inspect/<str:token>", views.inspector_receive, name="inspector_receive"),
]
