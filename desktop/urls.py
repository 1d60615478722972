from django.urls import path

from desktop import views

app_name = "desktop"
urlpatterns = [
    path("settings/desktop/", views.desktop_settings, name="settings"),
    path("settings/desktop/lan/", views.lan_hub, name="lan_hub"),
    path("settings/desktop/backups/", views.backup_now, name="backup_now"),
    path("settings/desktop/backups/<str:name>/", views.backup_download, name="backup_download"),
    path("settings/desktop/restore/", views.restore, name="restore"),
]
