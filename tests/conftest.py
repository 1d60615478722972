"""Fixtures for both runtimes.

The suite runs twice (TESSERA_MODE=saas, then desktop). Tests marked `saas_only` / `desktop_only`
are deselected (not skipped) in the other runtime. In SaaS, two real tenants — alpha and beta —
are provisioned once per test database (per xdist worker) through the same service sign-up uses.
"""

from __future__ import annotations

import os

import pytest
from django.test import Client

MODE = os.environ.get("TESSERA_MODE", "desktop")
SAAS = MODE == "saas"


def pytest_collection_modifyitems(config, items):
    other = "desktop_only" if SAAS else "saas_only"
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker(other) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    if SAAS:
        for item in items:
            _directory_database_allowed(item)


DB_FIXTURES = ("db", "transactional_db", "live_server")


def _directory_database_allowed(item) -> None:
    """SaaS: every test that may touch the database may touch the cells' directory too (sign-up
    reserves slugs there; a workspace of another cell is looked up there). It is a database of its
    own (the `directory` alias), which pytest-django would otherwise refuse to any test not naming it."""
    marker = item.get_closest_marker("django_db")
    if marker is None and not any(name in getattr(item, "fixturenames", ()) for name in DB_FIXTURES):
        return
    args, kwargs = (marker.args, dict(marker.kwargs)) if marker is not None else ((), {})
    databases = kwargs.get("databases")
    if databases == "__all__":
        return
    kwargs["databases"] = sorted({*(databases or ["default"]), "directory"})
    item.add_marker(pytest.mark.django_db(*args, **kwargs), append=False)


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    import accounts.selectors
    from core import workspace_memo
    from partners import keycache
    from tenants import hostcache

    accounts.selectors._setup_done = False
    workspace_memo.entries_clear()  # and what it remembers of a workspace (its webhook endpoints, ...)
    keycache.entries_clear()  # keys remembered by "this server process" belong to one test
    hostcache.entries_clear()  # and so do the workspaces it remembers for hosts
    yield


ADMIN_PASSWORD = "correct-horse-battery-9"


@pytest.fixture(scope="session")
def tenants_provisioned(django_db_setup, django_db_blocker):
    """{slug: Tenant} committed for the whole session: alpha and beta in SaaS, the one on desktop."""
    from accounts.onboarding import workspace_signup
    from tenants.models import Tenant
    from tenants.runtime import workspace_context
    from tenants.services import tenant_single_ensure

    with django_db_blocker.unblock():
        if SAAS:
            out = {}
            for slug in ("alpha", "beta"):
                tenant = Tenant.objects.filter(slug=slug).first()
                if tenant is None:
                    tenant = workspace_signup(
                        name=slug.title() + " Ltd",
                        slug=slug,
                        admin_email=f"admin@{slug}.test",
                        admin_password=ADMIN_PASSWORD,
                        admin_name=f"{slug.title()} Admin",
                    ).tenant
                out[slug] = tenant
            return out
        from accounts.models import User
        from accounts.services import user_create
        from rbac.roles import Role

        tenant = tenant_single_ensure(name="Alpha Ltd")
        with workspace_context(tenant):
            if not User.objects.filter(email="admin@alpha.test").exists():
                user_create(email="admin@alpha.test", password=ADMIN_PASSWORD, full_name="Alpha Admin", role=Role.ADMIN)
        return {"alpha": tenant}


@pytest.fixture
def tenant(tenants_provisioned, db):
    """Tenant alpha, entered for the duration of the test (schema in SaaS; the database on desktop)."""
    from tenants.runtime import workspace_context

    alpha = tenants_provisioned["alpha"]
    alpha.refresh_from_db()  # the object lives for the session: a test's in-memory edits must not leak
    with workspace_context(alpha) as t:
        yield t


@pytest.fixture
def tenant_b(tenants_provisioned, db):
    if "beta" not in tenants_provisioned:
        pytest.fail("tenant_b exists only in the SaaS runtime: mark the test saas_only")
    return tenants_provisioned["beta"]


def host_of(tenant) -> str:
    return tenant.host() if SAAS else "127.0.0.1"


@pytest.fixture
def admin_user(tenant):
    from accounts.models import User

    return User.objects.get(email="admin@alpha.test")


@pytest.fixture
def make_user(tenant):
    from accounts.services import user_create
    from rbac.roles import Role

    counter = {"n": 0}

    def make(role: str = Role.VIEWER, email: str | None = None, password: str = ADMIN_PASSWORD, **kw):
        counter["n"] += 1
        return user_create(email=email or f"{role}{counter['n']}@alpha.test", password=password, role=role, **kw)

    return make


class TenantClient(Client):
    """A test client that speaks to one tenant's host (sessions are created in that tenant)."""

    def __init__(self, tenant, **kwargs):
        self.tenant = tenant
        super().__init__(HTTP_HOST=host_of(tenant), **kwargs)

    def force_login(self, user, backend="accounts.backends.EmailPasswordBackend"):
        from tenants.runtime import workspace_context

        with workspace_context(self.tenant):
            super().force_login(user, backend=backend)


@pytest.fixture
def client_for():
    def make(tenant, user=None, **kwargs) -> TenantClient:
        client = TenantClient(tenant, **kwargs)
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture
def admin_client(tenant, admin_user, client_for):
    return client_for(tenant, admin_user)


@pytest.fixture
def anon_client(tenant, client_for):
    return client_for(tenant)


# --- the REST API (/api/v1) -------------------------------------------------------------------------

API_SCOPES = (
    "records:read",
    "records:write",
    "collections:read",
    "collections:write",
    "webhooks:manage",
    "events:read",
    "analytics:read",
)


class ApiClient(TenantClient):
    """Speaks JSON to one tenant's /api/v1, with a bearer key (or, without one, a console session)."""

    def __init__(self, tenant, raw_key: str | None = None, **kwargs):
        if raw_key:
            kwargs["HTTP_AUTHORIZATION"] = f"Bearer {raw_key}"
        super().__init__(tenant, **kwargs)
        self.raw_key = raw_key

    def post(self, path, data=None, content_type="application/json", **kwargs):
        return super().post(path, data, content_type=content_type, **kwargs)

    def patch(self, path, data=None, content_type="application/merge-patch+json", **kwargs):
        return super().patch(path, data, content_type=content_type, **kwargs)

    def put(self, path, data=None, content_type="application/json", **kwargs):
        return super().put(path, data, content_type=content_type, **kwargs)


@pytest.fixture
def api_key_for(admin_user):
    """api_key_for(scopes=..., mode="live") -> (ApiKey, raw key) of tenant alpha."""
    from partners.services import api_key_create

    def make(*, scopes=API_SCOPES, mode: str = "live", name: str = "Test integration"):
        return api_key_create(actor=admin_user, name=name, mode=mode, scopes=list(scopes))

    return make


@pytest.fixture
def api(tenant, api_key_for):
    """api(scopes=..., mode="live") -> ApiClient of tenant alpha holding a new key (`.key`, `.raw_key`)."""

    def make(*, scopes=API_SCOPES, mode: str = "live") -> ApiClient:
        key, raw = api_key_for(scopes=scopes, mode=mode)
        client = ApiClient(tenant, raw)
        client.key = key
        return client

    return make
