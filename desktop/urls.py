from django.urls import path

from desktop import views

app_name = "desktop"
urlpatterns = [
    path("settings/desktop/", views.desktop_settings, name="settings"),
    path("settings/desktop/lan/", views.lan_hub, name="lan_hub"),
    path("settings/desktop/outbox/", views.outbox, name="outbox"),
    path("settings/desktop/backups/", views.backup_now, name="backup_now"),
    path("settings/desktop/backups/<str:name>/", views.backup_download, name="backup_download"),
    path("settings/desktop/restore/", views.restore, name="restore"),
    path("settings/desktop/preferences/", views.preferences, name="preferences"),
    path("settings/desktop/update/check/", views.update_check, name="update_check"),
    path("settings/desktop/update/install/", views.update_install, name="update_install"),
]
