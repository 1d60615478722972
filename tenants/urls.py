from django.urls import path

from tenants import views

app_name = "tenants"
urlpatterns = [path("settings/", views.workspace_settings, name="settings")]
