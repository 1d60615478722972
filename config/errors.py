"""Error pages (400, 403, 404, 500), rendered inside the request's tenant.

Under ASGI, Django turns an exception into a response with
`sync_to_async(response_for_exception, thread_sensitive=False)`: in another thread, so on another
database connection, which does not carry the tenant the middleware selected (it is whatever that
thread's connection last held: the public schema, or another tenant). The page's context (the
workspace, the user, hence the session) was then read from the wrong schema, and the empty session
that came back made SessionMiddleware delete the visitor's cookie: a 404 for /favicon.ico, or a 403,
logged the user out. These handlers re-enter the request's own tenant before rendering.
"""

from __future__ import annotations

from functools import wraps

from django.views import defaults

from tenants.runtime import workspace_context


def _in_request_tenant(view):
    @wraps(view)
    def handler(request, *args, **kwargs):
        tenant = getattr(request, "tenant", None)
        if tenant is None:
            return view(request, *args, **kwargs)
        with workspace_context(tenant):
            return view(request, *args, **kwargs)  # rendered here, not lazily after the block

    return handler


bad_request = _in_request_tenant(defaults.bad_request)
permission_denied = _in_request_tenant(defaults.permission_denied)
page_not_found = _in_request_tenant(defaults.page_not_found)
server_error = _in_request_tenant(defaults.server_error)
