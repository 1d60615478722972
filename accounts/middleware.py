"""Desktop: until the workspace has its first Admin, every page leads to the first-run set-up."""

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
