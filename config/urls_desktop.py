"""URLs of the desktop edition: the workspace's, plus the Desktop page (backups, restore, LAN sync hub)."""

from django.urls import include, path

from config.urls_tenant import urlpatterns as workspace_urlpatterns

urlpatterns = [*workspace_urlpatterns, path("", include("desktop.urls"))]
