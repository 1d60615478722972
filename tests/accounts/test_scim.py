"""SCIM 2.0 provisioning at /scim/v2/ with the workspace's own bearer token (the SCIM payloads are
what Okta and Entra ID send). The whole server is also checked by scim2-tester against a live server
(tests/browser/test_sso.py)."""

from __future__ import annotations

import json

import pytest

from accounts.models import User
from accounts.sso import scim_token_create, sso_group_roles_set
from audit.models import AuditEvent
from rbac.roles import Role
from tests.conftest import ADMIN_PASSWORD
from tests.sync.conftest import Socket, db, own_channel_layer, run  # noqa: F401 - a fixture

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class Scim:
    def __init__(self, client, token: str | None):
        self.client, self.headers = client, ({"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {})

    def __call__(self, method: str, path: str, body=None):
        kwargs = {"content_type": "application/scim+json", **self.headers}
        if body is not None:
            kwargs["data"] = body if isinstance(body, str) else json.dumps(body)
        response = getattr(self.client, method.lower())(f"/scim/v2/{path}", **kwargs)
        response.json_body = json.loads(response.content) if response.content else None
        return response


@pytest.fixture
def scim(tenant, admin_user, client_for):
    return Scim(client_for(tenant), scim_token_create(actor=admin_user).raw)


def new_user(scim, email="ursula@acme-corp.com", **extra):
    body = {
        "schemas": [USER],
        "userName": email,
        "externalId": f"okta-{email}",
        "name": {"givenName": "Ursula", "familyName": "Ulm"},
        "emails": [{"value": email, "primary": True, "type": "work"}],
        "active": True,
        **extra,
    }
    response = scim("POST", "Users", body)
    assert response.status_code == 201, response.json_body
    return response.json_body


def test_a_token_is_required(tenant, client_for, admin_user):
    assert Scim(client_for(tenant), None)("GET", "Users").status_code == 401
    assert Scim(client_for(tenant), "tss_nope")("GET", "Users").status_code == 401
    issued = scim_token_create(actor=admin_user)
    from accounts.sso import scim_token_revoke

    scim_token_revoke(actor=admin_user, token=issued.token)
    response = Scim(client_for(tenant), issued.raw)("GET", "Users")
    assert response.status_code == 401 and response.json_body["status"] == "401"


@pytest.mark.saas_only
def test_a_token_of_one_workspace_means_nothing_on_another(tenant, tenant_b, admin_user, client_for):
    raw = scim_token_create(actor=admin_user).raw
    assert Scim(client_for(tenant_b), raw)("GET", "Users").status_code == 401
    assert Scim(client_for(tenant), raw)("GET", "Users").status_code == 200


def test_create_read_filter_update_and_patch_a_member(scim):
    created = new_user(scim)
    assert created["userName"] == "ursula@acme-corp.com" and created["active"] is True
    user = User.objects.get(email="ursula@acme-corp.com")
    assert (user.full_name, user.role, user.has_usable_password()) == ("Ursula Ulm", Role.VIEWER, False)
    assert AuditEvent.objects.filter(action="member.joined", target_id=str(user.pk)).exists()

    found = scim("GET", 'Users?filter=userName eq "URSULA@acme-corp.com"').json_body
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == created["id"]
    assert scim("GET", 'Users?filter=userName eq "nobody@acme-corp.com"').json_body["totalResults"] == 0

    replaced = scim("PUT", f"Users/{created['id']}", {**created, "name": {"formatted": "Ursula Ulm-Berg"}})
    assert replaced.status_code == 200 and replaced.json_body["name"]["formatted"] == "Ursula Ulm-Berg"
    patched = scim(
        "PATCH",
        f"Users/{created['id']}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "replace", "path": "userName", "value": "ursula.b@acme-corp.com"},
                {"op": "replace", "path": "emails", "value": [{"value": "ursula.b@acme-corp.com", "primary": True}]},
            ],
        },
    )
    assert patched.status_code == 200 and patched.json_body["userName"] == "ursula.b@acme-corp.com"
    user.refresh_from_db()
    assert (user.email, user.full_name) == ("ursula.b@acme-corp.com", "Ursula Ulm-Berg")
    assert AuditEvent.objects.filter(action="member.updated", target_id=str(user.pk)).count() == 2


def test_bad_requests_get_scim_errors_not_500s(scim, admin_user):
    new_user(scim)
    duplicate = scim("POST", "Users", {"schemas": [USER], "userName": "Ursula@acme-corp.com", "active": True})
    assert duplicate.status_code == 409 and duplicate.json_body["scimType"] == "uniqueness"
    assert scim("POST", "Users", "{nope").status_code == 400
    missing = scim("POST", "Users", {"schemas": [USER], "active": True})
    assert missing.status_code == 400 and missing.json_body["scimType"] == "invalidValue"
    bad_email = {"schemas": [USER], "userName": "x", "active": True, "emails": [{"value": "not-an-email"}]}
    assert scim("POST", "Users", bad_email).status_code == 400
    assert scim("GET", "Users/999999").status_code == 404
    assert scim("GET", "Users/abc").status_code == 404
    assert scim("GET", "Users?filter=userName eq").json_body["scimType"] == "invalidFilter"
    bad_patch = scim("PATCH", f"Users/{admin_user.pk}", {"schemas": [PATCH], "Operations": [{"op": "jump"}]})
    assert bad_patch.status_code == 400


def test_discovery_endpoints(scim):
    config = scim("GET", "ServiceProviderConfig").json_body
    assert config["patch"]["supported"] is True and config["bulk"]["supported"] is False
    types = scim("GET", "ResourceTypes").json_body
    assert {r["id"] for r in types["Resources"]} == {"User", "Group"}
    assert scim("GET", f"Schemas/{USER}").json_body["id"] == USER


def test_groups_drive_roles_through_the_mapping_and_keep_the_last_admin(scim, admin_user):
    sso_group_roles_set(actor=admin_user, mapping={"tessera-admins": Role.ADMIN, "staff": Role.MANAGER})
    ursula = new_user(scim)
    group = scim(
        "POST", "Groups", {"schemas": [GROUP], "displayName": "staff", "members": [{"value": ursula["id"]}]}
    ).json_body
    user = User.objects.get(pk=ursula["id"])
    assert user.role == Role.MANAGER
    assert scim("GET", f"Users/{ursula['id']}").json_body["groups"][0]["display"] == "staff"

    removed = scim(
        "PATCH",
        f"Groups/{group['id']}",
        {"schemas": [PATCH], "Operations": [{"op": "remove", "path": f'members[value eq "{ursula["id"]}"]'}]},
    )
    assert removed.status_code == 200 and not removed.json_body.get("members")
    user.refresh_from_db()
    assert user.role == Role.VIEWER

    # The only Admin joins a group that maps to Manager: the workspace keeps its Admin.
    admins = scim(
        "POST", "Groups", {"schemas": [GROUP], "displayName": "staff-2", "members": [{"value": str(admin_user.pk)}]}
    )
    sso_group_roles_set(actor=admin_user, mapping={"staff-2": Role.MANAGER})
    scim("PUT", f"Groups/{admins.json_body['id']}", {**admins.json_body, "displayName": "staff-2"})
    admin_user.refresh_from_db()
    assert admin_user.role == Role.ADMIN
    assert AuditEvent.objects.filter(action="sso.role_kept", target_id=str(admin_user.pk)).exists()


def test_every_resource_has_its_own_id_so_a_root_search_never_mixes_a_member_and_a_group(scim, admin_user):
    """RFC 7643 §3.1: an id is unique across all of the server's resources. Members and groups were
    both numbered from 1, so POST /.search could answer a member and a group with one id and an IdP
    (and scim2-tester, on CI) took the member for the group."""
    members = [new_user(scim, f"m{i}@acme-corp.com") for i in range(3)]
    groups = [scim("POST", "Groups", {"schemas": [GROUP], "displayName": f"team-{i}"}).json_body for i in range(3)]
    found = scim("POST", ".search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]})
    ids = [r["id"] for r in found.json_body["Resources"]]
    assert len(ids) == len(set(ids)) and {m["id"] for m in members} | {g["id"] for g in groups} <= set(ids)
    # A member's id does not name a group, and a group's does not name a member.
    assert scim("GET", f"Groups/{members[0]['id']}").status_code == 404
    assert scim("GET", f"Users/{groups[0]['id']}").status_code == 404
    assert scim("GET", f"Groups/{groups[0]['id']}").json_body["displayName"] == "team-0"


@pytest.mark.usefixtures("own_channel_layer")
def test_deactivation_ends_console_sessions_and_closes_device_sockets(
    scim, tenant, admin_user, client_for, django_capture_on_commit_callbacks
):
    from sync.services import pairing_exchange, pairing_start

    created = new_user(scim, email="dev@acme-corp.com")
    member = User.objects.get(pk=created["id"])
    member.role = Role.MANAGER
    member.set_password(ADMIN_PASSWORD)
    member.save()
    console = client_for(tenant)
    assert console.post("/accounts/login/", {"username": member.email, "password": ADMIN_PASSWORD}).status_code == 302
    assert console.get("/").status_code == 200
    started = pairing_start(actor=admin_user, user=member, role=Role.MANAGER)
    device, token = pairing_exchange(tenant=tenant, code=started.code, name="Dev's phone")

    async def scenario():
        sock = Socket(tenant, token)
        assert (await sock.connect())[0]

        def deactivate():
            with django_capture_on_commit_callbacks(execute=True):
                body = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
                assert scim("PATCH", f"Users/{created['id']}", body).status_code == 200

        await db(deactivate)()
        closed = await sock.comm.receive_output(timeout=5)
        assert closed["type"] == "websocket.close" and closed["code"] == 4401

    run(scenario)
    assert console.get("/").status_code == 302  # the console session is gone: back to log in
    device.refresh_from_db()
    assert device.revoked_at is not None
    assert AuditEvent.objects.filter(action="member.removed", target_id=str(member.pk)).exists()
    assert AuditEvent.objects.filter(action="device.revoked", target_id=str(device.pk)).exists()
    assert scim("GET", f"Users/{created['id']}").json_body["active"] is False

    # Reactivation brings the member back (without their revoked devices).
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": True}]}
    assert scim("PATCH", f"Users/{created['id']}", body).json_body["active"] is True


def test_a_member_without_an_email_keeps_their_user_name(scim):
    created = scim("POST", "Users", {"schemas": [USER], "userName": "Jdoe 42", "active": True}).json_body
    assert created["userName"] == "Jdoe 42" and "emails" not in created
    user = User.objects.get(pk=created["id"])
    assert user.email == "jdoe-42@scim.invalid" and not user.has_usable_password()
    assert scim("GET", 'Users?filter=userName eq "jdoe 42"').json_body["totalResults"] == 1
    duplicate = scim("POST", "Users", {"schemas": [USER], "userName": "JDOE 42", "active": True})
    assert duplicate.status_code == 409


def test_delete_deactivates_and_hides_the_member(scim):
    created = new_user(scim)
    assert scim("DELETE", f"Users/{created['id']}").status_code == 204
    assert scim("GET", f"Users/{created['id']}").status_code == 404
    user = User.objects.get(pk=created["id"])
    assert not user.is_active
    assert scim("GET", "Users").json_body["totalResults"] == User.objects.filter(is_active=True).count()


def test_a_member_created_without_active_is_active_and_can_be_deactivated(scim):
    """RFC 7643 leaves `active` optional: a create without it is an active member, and the IdP can
    later deactivate them the way Okta (value object) and Entra ID ("Replace", the string "False") do."""
    body = {"schemas": [USER], "userName": "nadia@acme-corp.com", "emails": [{"value": "nadia@acme-corp.com"}]}
    created = scim("POST", "Users", body)
    assert created.status_code == 201, created.json_body
    assert created.json_body["active"] is True
    member = User.objects.get(pk=created.json_body["id"])
    assert member.is_active

    okta = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    patched = scim("PATCH", f"Users/{member.pk}", okta)
    assert patched.status_code == 200 and patched.json_body["active"] is False
    member.refresh_from_db()
    assert not member.is_active

    # A PUT without `active` keeps the member's state (here: still deactivated).
    replaced = scim("PUT", f"Users/{member.pk}", {**body, "displayName": "Nadia N"})
    assert replaced.status_code == 200 and replaced.json_body["active"] is False

    reactivate = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": True}]}
    assert scim("PATCH", f"Users/{member.pk}", reactivate).json_body["active"] is True
    entra = {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    patched = scim("PATCH", f"Users/{member.pk}", entra)
    assert patched.status_code == 200 and patched.json_body["active"] is False
    member.refresh_from_db()
    assert not member.is_active
