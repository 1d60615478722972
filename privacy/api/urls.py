"""Routes of the data-subject requests API, mounted under /api/v1/."""

from django.urls import path

from privacy.api import views

urlpatterns = [
    path("subject_requests", views.SubjectRequestsApi.as_view(), name="subject_requests"),
    path("subject_requests/<str:request_id>", views.SubjectRequestApi.as_view(), name="subject_request"),
    path(
        "subject_requests/<str:request_id>/extend",
        views.SubjectRequestExtendApi.as_view(),
        name="subject_request_extend",
    ),
    path(
        "subject_requests/<str:request_id>/erase", views.SubjectRequestEraseApi.as_view(), name="subject_request_erase"
    ),
    path(
        "subject_requests/<str:request_id>/rectify",
        views.SubjectRequestRectifyApi.as_view(),
        name="subject_request_rectify",
    ),
    path(
        "subject_requests/<str:request_id>/restrict",
        views.SubjectRequestRestrictApi.as_view(),
        name="subject_request_restrict",
    ),
    path(
        "subject_requests/<str:request_id>/lift_restriction",
        views.SubjectRequestLiftApi.as_view(),
        name="subject_request_lift_restriction",
    ),
    path(
        "subject_requests/<str:request_id>/package",
        views.SubjectRequestPackageApi.as_view(),
        name="subject_request_package",
    ),
    path(
        "subject_requests/<str:request_id>/close", views.SubjectRequestCloseApi.as_view(), name="subject_request_close"
    ),
]
