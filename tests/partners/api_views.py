"""Tiny API views for testing keys, limits and usage without depending on /api/v1's endpoints."""

from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView

from rbac.permissions import HasPermission


class Ping(APIView):
    def get(self, request):
        return Response({"ok": True, "key": getattr(request.auth, "pk", None)})


class NeedsRecordsRead(APIView):
    permission_classes = [HasPermission.of("records.view")]

    def get(self, request):
        return Response({"ok": True})


class Crash(APIView):
    def get(self, request):
        raise RuntimeError("boom")


urlpatterns = [
    path("api/test/ping", Ping.as_view()),
    path("api/test/records", NeedsRecordsRead.as_view()),
    path("api/test/crash", Crash.as_view()),
    path("", include("config.urls_tenant")),
]
