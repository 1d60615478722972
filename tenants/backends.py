"""How tenancy works in each runtime. Only this module and tenants/ import django_tenants.

`settings.TESSERA_TENANCY` picks one class; the rest of the code calls tenants.runtime instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from django.conf import settings
from django.db import connection

from tenants.models import Domain, Tenant

PUBLIC_SCHEMA = "public"


class SchemaTenancy:
    """SaaS: a PostgreSQL schema per tenant, selected from the request's Host by django-tenants."""

    multi_tenant = True

    def current(self) -> Tenant | None:
        tenant = getattr(connection, "tenant", None)
        if tenant is None or getattr(tenant, "schema_name", PUBLIC_SCHEMA) == PUBLIC_SCHEMA:
            return None
        return tenant

    @contextlib.contextmanager
    def inside(self, tenant: Tenant) -> Iterator[Tenant]:
        from django_tenants.utils import tenant_context

        with tenant_context(tenant):
            yield tenant

    @contextlib.contextmanager
    def public(self) -> Iterator[None]:
        from django_tenants.utils import schema_context

        with schema_context(PUBLIC_SCHEMA):
            yield

    def for_host(self, host: str) -> Tenant | None:
        hostname = host.split(":")[0].lower().rstrip(".")
        with self.public():
            domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
        if domain is None or domain.tenant.is_template:
            return None
        return domain.tenant

    def public_tenant(self) -> Tenant:
        with self.public():
            tenant, _ = Tenant.objects.get_or_create(
                schema_name=PUBLIC_SCHEMA, defaults={"name": "Tessera", "slug": "-public"}
            )
        return tenant

    def tenants(self):
        return Tenant.objects.exclude(schema_name=PUBLIC_SCHEMA).exclude(is_template=True)

    def schema_name_for(self, slug: str) -> str:
        return "t_" + slug.replace("-", "_")


# Desktop: the workspace row read once for the request (SingleTenantMiddleware), as django-tenants
# keeps it on the connection in SaaS; without it each "which workspace?" during a request was a read
# (bench/sso: three per request).
_request_tenant: ContextVar[Tenant | None] = ContextVar("tessera_request_tenant", default=None)


class SingleTenancy:
    """Desktop: one business, one SQLite database; 'inside a tenant' is simply the database."""

    multi_tenant = False
    SINGLE_SLUG = "workspace"

    def current(self) -> Tenant | None:
        bound = _request_tenant.get()
        if bound is not None:
            return bound
        return Tenant.objects.filter(is_template=False).order_by("pk").first()

    @contextlib.contextmanager
    def request_bound(self, tenant: Tenant) -> Iterator[Tenant]:
        """For one request: `current()` answers `tenant` (the same object, so a change made to it during
        the request is seen by the rest of it) without reading the row again."""
        token = _request_tenant.set(tenant)
        try:
            yield tenant
        finally:
            _request_tenant.reset(token)

    @contextlib.contextmanager
    def inside(self, tenant: Tenant) -> Iterator[Tenant]:
        yield tenant

    @contextlib.contextmanager
    def public(self) -> Iterator[None]:
        yield

    def for_host(self, host: str) -> Tenant | None:
        return self.current()

    def public_tenant(self) -> Tenant | None:
        return None

    def tenants(self):
        return Tenant.objects.filter(is_template=False)

    def schema_name_for(self, slug: str) -> str:
        return slug.replace("-", "_")


def tenancy_backend() -> SchemaTenancy | SingleTenancy:
    global _backend
    if _backend is None:
        _backend = SchemaTenancy() if settings.TESSERA_TENANCY.endswith("SchemaTenancy") else SingleTenancy()
    return _backend


_backend: SchemaTenancy | SingleTenancy | None = None
