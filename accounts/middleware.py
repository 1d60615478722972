"""Desktop: until the workspace has its first Admin, every page leads to the first-run set-up. Both
runtimes: an OpenID session's refresh, loaded only for such sessions."""

from django.contrib.auth import BACKEND_SESSION_KEY
from django.http import HttpRequest, HttpResponseRedirect

from accounts.selectors import workspace_needs_setup


class FirstRunSetupMiddleware:
    SETUP_EXEMPT = ("/setup/", "/static/", "/health", "/favicon.ico")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if not request.path.startswith(self.SETUP_EXEMPT) and workspace_needs_setup():
            return HttpResponseRedirect("/setup/")
        return self.get_response(request)


OIDC_BACKEND = "accounts.backends.WorkspaceOIDCBackendOnDemand"


class OIDCSessionRefresh:
    """accounts.oidc.WorkspaceSessionRefresh, for the sessions an OpenID provider began (the only ones
    it refreshes): mozilla-django-oidc and what it imports load with the first such session, not with
    every process (the desktop's always-on app among them)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self._refresh = None

    def __call__(self, request: HttpRequest):
        if request.session.get(BACKEND_SESSION_KEY) != OIDC_BACKEND:
            return self.get_response(request)
        if self._refresh is None:
            from accounts.oidc import WorkspaceSessionRefresh

            self._refresh = WorkspaceSessionRefresh(self.get_response)
        return self._refresh(request)
