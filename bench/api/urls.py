"""The workspace URLs unchanged, plus the benchmark's baseline at /bench/baseline/records/ (bench only)."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from bench.api.baseline import BaselineRecordViewSet
from config.urls_tenant import urlpatterns as workspace_urlpatterns

router = SimpleRouter(trailing_slash=False)
router.register("records", BaselineRecordViewSet, basename="baseline-record")

urlpatterns = [path("bench/baseline/", include(router.urls)), *workspace_urlpatterns]
