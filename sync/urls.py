"""Console pages of devices and pairing, and the HTTP side of /sync/v1/ (pairing exchange)."""

from django.urls import path

from sync import views

app_name = "sync"
urlpatterns = [
    path("sync/v1/pair", views.pair, name="pair"),
    path("devices/", views.devices, name="devices"),
    path("devices/sdk/tessera-sync.tgz", views.sdk_download, name="sdk_download"),
    path("devices/example/", views.example_app, name="example_app"),
    path("devices/example/<str:name>", views.example_app, name="example_app_file"),
    path("devices/pairing/<int:pk>/", views.pairing_status, name="pairing_status"),
    path("devices/<int:pk>/revoke/", views.device_revoke_view, name="device_revoke"),
]
