"""Management commands of tenants/: workspace_create, workspace_list, seed_demo."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from tenants.models import Domain, Tenant
from tenants.runtime import workspace_context
from tests.conftest import ADMIN_PASSWORD, SAAS

saas_only = pytest.mark.saas_only


def run(*args, **options) -> str:
    out = StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def log_in(host: str, email: str, password: str) -> bool:
    client = Client(HTTP_HOST=host)
    response = client.post("/accounts/login/", {"username": email, "password": password})
    return response.status_code == 302 and client.get("/").status_code == 200


# --- workspace_create ----------------------------------------------------------------------------------


@saas_only
def test_tenant_create(tenants_provisioned, db):
    from accounts.models import User

    out = run(
        "workspace_create", "gamma", name="Gamma Ltd", admin_email="Boss@Gamma.test", admin_password=ADMIN_PASSWORD
    )
    assert re.match(
        r"Created Gamma Ltd at gamma\.tessera\.localhost \(t_gamma\) in \d+ ms; Admin boss@gamma\.test", out
    )
    tenant = Tenant.objects.get(slug="gamma")
    assert Domain.objects.filter(tenant=tenant, domain="gamma.tessera.localhost").exists()
    with workspace_context(tenant):
        assert User.objects.get().email == "boss@gamma.test"
    assert log_in("gamma.tessera.localhost", "boss@gamma.test", ADMIN_PASSWORD)


@saas_only
def test_tenant_create_with_plan_and_prompted_password(tenants_provisioned, db, monkeypatch):
    monkeypatch.setattr("getpass.getpass", lambda prompt="": ADMIN_PASSWORD)
    run("workspace_create", "gamma", name="Gamma Ltd", admin_email="boss@gamma.test", plan="pro")
    assert Tenant.objects.get(slug="gamma").plan == "pro"
    assert log_in("gamma.tessera.localhost", "boss@gamma.test", ADMIN_PASSWORD)


@saas_only
@pytest.mark.parametrize(
    "slug, password, message",
    [
        ("alpha", ADMIN_PASSWORD, "already taken"),
        ("admin", ADMIN_PASSWORD, "reserved"),
        ("Bad_Slug", ADMIN_PASSWORD, "lowercase letters"),
        ("gamma", "12345678901", "entirely numeric"),
    ],
)
def test_tenant_create_errors_are_command_errors(tenants_provisioned, db, slug, password, message):
    before = Tenant.objects.count()
    with pytest.raises(CommandError, match=message):
        run("workspace_create", slug, name="Gamma Ltd", admin_email="boss@gamma.test", admin_password=password)
    assert Tenant.objects.count() == before


@pytest.mark.desktop_only
def test_tenant_create_is_refused_on_the_desktop(tenants_provisioned, db):
    with pytest.raises(CommandError, match="single business"):
        run("workspace_create", "gamma", name="Gamma Ltd", admin_email="boss@gamma.test", admin_password=ADMIN_PASSWORD)


# --- workspace_list -----------------------------------------------------------------------------------------


def test_tenant_list(tenants_provisioned, db):
    lines = run("workspace_list").splitlines()
    assert lines[0].split() == ["SLUG", "NAME", "PLAN", "STATUS", "HOST", "SCHEMA"]
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert re.fullmatch(r"(\d+) workspace\(s\)", lines[-1])
    assert int(lines[-1].split()[0]) == len(rows)
    if SAAS:
        assert {"alpha", "beta"} <= set(rows)
        assert re.search(r"alpha\s+Alpha Ltd\s+free\s+active\s+alpha\.tessera\.localhost\s+t_alpha$", rows["alpha"])
        assert "tenant_template" not in "\n".join(lines) and "-public" not in rows
    else:
        assert list(rows) == ["workspace"]
        assert re.search(r"workspace\s+Alpha Ltd\s+free\s+active\s+127\.0\.0\.1\s+workspace$", rows["workspace"])


@saas_only
def test_tenant_list_shows_suspension(tenant_b, db):
    Tenant.objects.filter(pk=tenant_b.pk).update(status="suspended", plan="starter")
    row = next(line for line in run("workspace_list").splitlines() if line.startswith("beta "))
    assert re.search(r"\bstarter\s+suspended\b", row)


# --- seed_demo ---------------------------------------------------------------------------------------


def credentials(output: str) -> tuple[str, str]:
    email = re.search(r"^  Admin e-mail:\s+(\S+)$", output, flags=re.M)[1]
    password = re.search(r"^  Password:\s+(\S+)$", output, flags=re.M)[1]
    return email, password


def demo_host() -> str:
    return "demo.tessera.localhost" if SAAS else "127.0.0.1"


def demo_tenant() -> Tenant:
    from tenants.runtime import workspace_list

    return workspace_list().get(slug="demo") if SAAS else workspace_list().get()


def test_seed_demo_prints_credentials_that_log_in(tenants_provisioned, db, tmp_path):
    out = run("seed_demo", credentials_file=str(tmp_path / "pw"))
    assert "Demo workspace: Demo Business" in out
    email, password = credentials(out)
    assert email == "admin@demo.tessera.localhost"
    assert (tmp_path / "pw").read_text() == password
    assert log_in(demo_host(), email, password)


def test_seed_demo_is_idempotent(tenants_provisioned, db, tmp_path):
    from accounts.models import User
    from audit.models import AuditEvent
    from audit.selectors import audit_chain_verify
    from rbac.roles import Role

    first = run("seed_demo", credentials_file=str(tmp_path / "pw"))
    tenant = demo_tenant()
    with workspace_context(tenant):
        users = dict(User.objects.values_list("email", "role"))
        events = AuditEvent.objects.count()

    second = run("seed_demo", credentials_file=str(tmp_path / "pw"))
    assert credentials(second) == credentials(first), "the same password, kept in the credentials file"
    assert demo_tenant().pk == tenant.pk
    if SAAS:
        assert Tenant.objects.filter(slug="demo").count() == 1
    with workspace_context(tenant):
        assert dict(User.objects.values_list("email", "role")) == users
        assert AuditEvent.objects.count() == events
        assert audit_chain_verify().ok
    assert users["admin@demo.tessera.localhost"] == Role.ADMIN
    assert {role for email, role in users.items() if email.endswith("@demo.tessera.localhost")} == set(Role.values)
    assert log_in(demo_host(), *credentials(second))


def test_seed_demo_restores_a_changed_admin(tenants_provisioned, db, tmp_path):
    from accounts.models import User
    from rbac.roles import Role

    out = run("seed_demo", credentials_file=str(tmp_path / "pw"))
    with workspace_context(demo_tenant()):
        admin = User.objects.get(email="admin@demo.tessera.localhost")
        admin.set_password("something-else-entirely")
        admin.role = Role.VIEWER
        admin.save()
    run("seed_demo", credentials_file=str(tmp_path / "pw"))
    assert log_in(demo_host(), *credentials(out))


@saas_only
def test_seed_demo_without_a_credentials_file_prints_the_password_now_in_force(tenants_provisioned, db):
    run("seed_demo")
    second = run("seed_demo")
    assert log_in(demo_host(), *credentials(second))


@pytest.mark.desktop_only
def test_seed_demo_on_the_desktop_uses_the_one_workspace(tenants_provisioned, db, tmp_path):
    from accounts.selectors import workspace_needs_setup

    run("seed_demo", credentials_file=str(tmp_path / "pw"), name="Corner Shop")
    assert Tenant.objects.count() == 1
    assert Tenant.objects.get().name == "Corner Shop"
    assert not workspace_needs_setup()
