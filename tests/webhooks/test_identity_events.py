"""Membership changes the workspace's identity provider makes over SCIM reach webhook endpoints as the
`member.*` events of the catalogue, delivered signed to a real receiver (in this process, as
test_delivery.py does): a provisioned person joins, and deprovisioning them removes them."""

from __future__ import annotations

import json

import pytest
from standardwebhooks import Webhook

from accounts.models import User
from accounts.sso import scim_token_create
from webhooks.delivery import delivery_attempt
from webhooks.models import Delivery
from webhooks.services import endpoint_create

pytestmark = pytest.mark.usefixtures("loopback_allowed")

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def test_scim_provisioning_and_deprovisioning_are_delivered_as_member_events(tenant, admin_user, client_for, receiver):
    endpoint, secret = endpoint_create(actor=admin_user, url=receiver.url(), event_types=["member.*"])
    client = client_for(tenant)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {scim_token_create(actor=admin_user).raw}"}

    def scim(method: str, path: str, body: dict):
        response = getattr(client, method)(
            f"/scim/v2/{path}", data=json.dumps(body), content_type="application/scim+json", **auth
        )
        assert response.status_code in (200, 201), response.content[:500]
        return json.loads(response.content)

    email = "vera@acme-corp.com"
    created = scim(
        "post", "Users", {"schemas": [USER], "userName": email, "emails": [{"value": email}], "active": True}
    )
    deprovision = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    scim("patch", f"Users/{created['id']}", deprovision)
    assert not User.objects.get(email=email).is_active

    deliveries = Delivery.objects.filter(endpoint=endpoint).order_by("created_at")
    assert [delivery_attempt(d.pk).result for d in deliveries] == ["succeeded", "succeeded"]
    bodies = [Webhook(secret).verify(r.body, r.headers) for r in receiver.received]
    assert [b["type"] for b in bodies] == ["member.joined", "member.removed"]
    member = {
        "object": "member",
        "id": str(User.objects.get(email="vera@acme-corp.com").pk),
        "email": "vera@acme-corp.com",
    }
    for body in bodies:
        assert {k: body["data"]["object"][k] for k in member} == member
