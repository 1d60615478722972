from django.urls import path

from partners import views

app_name = "partners"
urlpatterns = [
    path("api-keys/", views.api_keys, name="api_keys"),
    path("api-keys/first-call/", views.first_call, name="first_call"),
    path("api-keys/<int:pk>/", views.api_key_detail, name="api_key"),
    path("api-keys/<int:pk>/revoke/", views.api_key_revoke_view, name="api_key_revoke"),
    path("api-keys/<int:pk>/rotate/", views.api_key_rotate_view, name="api_key_rotate"),
]
