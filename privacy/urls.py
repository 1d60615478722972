from django.urls import path

from privacy import views

app_name = "privacy"
urlpatterns = [
    path("compliance/", views.requests_list, name="requests"),
    path("compliance/requests/new", views.request_new, name="request_new"),
    path("compliance/requests/<str:request_id>", views.request_detail, name="request"),
    path("compliance/data-map", views.data_map, name="data_map"),
    path("compliance/report", views.report, name="report"),
    path("compliance/retention", views.retention, name="retention"),
    path("compliance/packages/<str:token>", views.package_download, name="package"),
]
