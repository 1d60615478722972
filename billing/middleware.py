"""One read of the workspace's billing standing per request, made by the host lookup that finds the
workspace (settings.TESSERA_WORKSPACE_LOADED_WITH): every limit check of the request and the console's
banner share it, and none queries (billing.entitlements.standing_per_request). SaaS only."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from billing.entitlements import standing_per_request


class StandingPerRequest:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with standing_per_request(getattr(request, "tenant", None)):
            return self.get_response(request)
