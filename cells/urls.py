"""The operator's cells page and its sign-in, on the public site (config.urls_public)."""

from django.urls import path

from accounts.views import LoginView
from cells import views

urlpatterns = [
    path("operator/login/", LoginView.as_view(template_name="cells/operator_login.html"), name="operator_login"),
    path("operator/cells/", views.cells_operator_page, name="operator_cells"),
]
