"""Tenant selection per request: from the Host in SaaS, the single tenant on the desktop."""

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import connection
from django.http import HttpRequest
from django.shortcuts import render
from django.urls import set_urlconf
from django_tenants.middleware.main import TenantMainMiddleware

from tenants import hostcache
from tenants.backends import tenancy_backend
from tenants.models import Tenant
from tenants.runtime import WorkspaceMoving

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

# Reachable on any host, so load balancers and Prometheus need no tenant.
HOST_INDEPENDENT_PATHS = ("/health", "/metrics")
# Requests whose workspace may come from this process's memory (tenants.hostcache): the API's, which
# the rate limiter confirms (host_entry_confirm).
REMEMBERED_HOST_PREFIX = "/api/"


class TenantHostMiddleware(TenantMainMiddleware):
    """django-tenants' host routing, plus: the bare domain is the public site, unknown hosts get a
    clear 404 page, suspended workspaces a clear 403, and the template tenant is never served."""

    @staticmethod
    def hostname_from_request(request):
        # As workspace_for_host: host names are case-insensitive and may end in the root's dot.
        from django_tenants.utils import remove_www

        return remove_www(request.get_host().split(":")[0].lower().rstrip("."))

    def get_tenant(self, domain_model, hostname):
        if hostname == settings.TESSERA_BASE_DOMAIN:
            return tenancy_backend().public_tenant()
        # The workspace's rows that every request of it reads (settings.TESSERA_WORKSPACE_LOADED_WITH, e.g.
        # billing's standing) come in the same query. They are this request's: never keep this lookup
        # across requests without dropping them.
        related = ("tenant", *(f"tenant__{name}" for name in settings.TESSERA_WORKSPACE_LOADED_WITH))
        tenant = domain_model.objects.select_related(*related).get(domain=hostname).tenant
        if tenant.is_template:
            raise domain_model.DoesNotExist
        return tenant

    def no_tenant_found(self, request: HttpRequest, hostname: str):
        # Perhaps a workspace of another cell: config.middleware.WorkspaceCellMiddleware asks the directory.
        request.workspace_host_unknown = hostname
        if request.path.rstrip("/") in HOST_INDEPENDENT_PATHS:
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
            set_urlconf(request.urlconf)
            return None
        return render(
            request,
            "tenants/unknown_host.html",
            {"hostname": hostname, "public_url": f"//{settings.TESSERA_BASE_DOMAIN}{_port(request)}/"},
            status=404,
        )

    def process_request(self, request: HttpRequest):
        remembered = request.path_info.startswith(REMEMBERED_HOST_PREFIX) and self._remembered(request)
        if not remembered:
            read_before = None
            if request.path_info.startswith(REMEMBERED_HOST_PREFIX):
                try:
                    read_before = hostcache.host_generation_before_read(self.hostname_from_request(request))
                except DisallowedHost:
                    pass
            response = super().process_request(request)
            if response is not None:
                return response
            tenant = getattr(request, "tenant", None)
            if read_before is not None and tenant is not None and tenant.schema_name != "public":
                hostcache.host_entry_fill(tenant.domain_url, tenant, read_before)
        tenant = getattr(request, "tenant", None)
        if tenant is not None and tenant.status == Tenant.Status.MOVING:
            # Being moved to another cell: reads served from here until the move flips, writes refused
            # (a few seconds). Record writes check again under their lock (records.services._seq_lock).
            if request.method in SAFE_METHODS:
                return None
            request.workspace_moving = True
            connection.set_schema_to_public()
            response = render(request, "tenants/moving.html", {"tenant": tenant}, status=503)
            response["Retry-After"] = str(WorkspaceMoving.retry_after)
            return response
        if tenant is not None and tenant.schema_name != "public" and not tenant.is_active:
            connection.set_schema_to_public()
            if request.path.rstrip("/") in HOST_INDEPENDENT_PATHS:  # still on any host, as promised
                request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
                set_urlconf(request.urlconf)
                return None
            return render(request, "tenants/suspended.html", {"tenant": tenant}, status=403)
        return None

    def _remembered(self, request: HttpRequest) -> bool:
        """Serve the request in the workspace this process remembers for its host, if any (what
        django-tenants' process_request does after its query)."""
        try:
            hostname = self.hostname_from_request(request)
        except DisallowedHost:
            return False
        entry = hostcache.host_entry_get(hostname)
        if entry is None:
            return False
        tenant, generation = entry
        connection.set_schema_to_public()
        tenant.domain_url = hostname
        request.tenant = tenant
        request.tessera_host_generation = generation
        connection.set_tenant(tenant)
        self.setup_url_routing(request)
        return True


def _port(request: HttpRequest) -> str:
    host = request.get_host()
    return ":" + host.rsplit(":", 1)[1] if ":" in host and not host.endswith("]") else ""


class SingleTenantMiddleware:
    """Desktop: every request belongs to the one tenant."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        from tenants.services import tenant_single_ensure

        request.tenant = tenant_single_ensure()
        with tenancy_backend().request_bound(request.tenant):
            return self.get_response(request)
