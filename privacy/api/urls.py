"""Routes of the data-subject requests API, mounted under /api/v1/."""

from django.urls import path

from privacy.api import views

urlpatterns = [
    path("subject_requests", views.SubjectRequestsApi.as_view(), name="subject_requests"),
    path("subject_requests/<str:request_id>", views.SubjectRequestApi.as_view(), name="subject_request"),
    *[
        path(
            f"subject_requests/<str:request_id>/{action}",
            views.SubjectRequestActionApi.as_view(action=action),
            name=f"subject_request_{action}",
        )
        for action in ("extend", "erase", "package", "close")
    ],
]
