"""Pairing a phone: the console starts it (QR code + PIN), the phone exchanges it for a token at
POST /sync/v1/pair; codes expire, are single-use and PIN guessing is rate-limited."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from rbac.roles import Role

PAIR = "/sync/v1/pair"

pytestmark = pytest.mark.usefixtures("own_counters", "own_channel_layer")


def _start(client, **data):
    response = client.post("/devices/", data)
    assert response.status_code == 201, response.content[:2000]
    html = response.content.decode()
    pin = re.search(r'data-testid="pairing-pin"[^>]*>(\d{4}) (\d{4})<', html)
    code = re.search(r"/sync/v1/pair\?code=(tpc_[A-Za-z0-9_-]+)", html)
    return "".join(pin.groups()), code.group(1), response


def _pair(client, REMOTE_ADDR="127.0.0.1", **body):
    body = {"name": "Anna's phone", "client_version": "rxdb/17.6", **body}
    return client.post(PAIR, body, content_type="application/json", REMOTE_ADDR=REMOTE_ADDR)


def test_manager_pairs_a_phone_with_the_pin(tenant, make_user, client_for):
    from audit.models import AuditEvent
    from sync.models import Device
    from sync.services import device_for_token

    manager = make_user(Role.MANAGER)
    client = client_for(tenant, manager)
    pin, _, page = _start(client, user=manager.pk, role=Role.MANAGER)
    assert "no-store" in page["Cache-Control"]
    assert "<svg" in page.content.decode()  # the QR code, inline
    assert len(pin) == 8

    response = _pair(client_for(tenant), pin=pin)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token"].startswith("tsd_") and body["device"]["role"] == "manager"
    assert body["websocket_url"].endswith("/sync/v1/")
    device = Device.objects.get()
    assert device.token_hash != body["token"] and body["token"] not in str(Device.objects.values().get())
    assert device.user == manager and device.client_version == "rxdb/17.6" and device.paired_by == manager
    assert device_for_token(body["token"]) == device
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"pairing.started", "device.paired"} <= actions


def test_the_qr_code_pairs_once(tenant, admin_client, client_for):
    _, code, _ = _start(admin_client, user=admin_client.session["_auth_user_id"], role=Role.VIEWER)
    phone = client_for(tenant)
    assert _pair(phone, code=code).status_code == 201
    again = _pair(phone, code=code)
    assert again.status_code == 400
    assert again["Content-Type"].startswith("application/problem+json")
    assert again.json()["code"] == "pairing_code_used"


def test_an_expired_code_does_not_pair(tenant, admin_user, client_for):
    from sync.models import PairingCode
    from sync.services import pairing_start

    started = pairing_start(actor=admin_user)
    PairingCode.objects.filter(pk=started.pairing.pk).update(
        expires_at=started.pairing.expires_at - timedelta(minutes=11)
    )
    for body in ({"pin": started.pin}, {"code": started.code}):
        response = _pair(client_for(tenant), **body)
        assert response.status_code == 400 and response.json()["code"] == "pairing_code_expired"


def test_bad_pairing_requests_are_problems(tenant, client_for):
    phone = client_for(tenant)
    response = phone.post(PAIR, "{nope", content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_json"
    assert _pair(phone).json()["code"] == "invalid_request"  # neither code nor pin
    assert _pair(phone, pin="1234", name="").json()["param"] == "name"
    assert _pair(phone, pin=12345678).status_code == 400
    assert _pair(phone, code="tpc_unknown").json()["code"] == "pairing_code_invalid"
    response = phone.get(PAIR)
    assert response.status_code == 405 and response["Allow"] == "POST"


def test_pin_guessing_is_rate_limited_per_address_and_per_workspace(tenant, admin_user, client_for):
    from sync.services import pairing_start

    started = pairing_start(actor=admin_user)
    wrong = "00000000" if started.pin != "00000000" else "11111111"
    phone = client_for(tenant)
    for _ in range(10):
        assert _pair(phone, pin=wrong, REMOTE_ADDR="10.0.0.1").json()["code"] == "pairing_code_invalid"
    limited = _pair(phone, pin=started.pin, REMOTE_ADDR="10.0.0.1")  # even the right PIN, for now
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert limited.json()["code"] == "rate_limited"
    # Guesses from many addresses together hit the workspace's limit.
    for i in range(20):
        assert _pair(phone, pin=wrong, REMOTE_ADDR=f"10.0.1.{i}").status_code == 400
    assert _pair(phone, pin=started.pin, REMOTE_ADDR="10.0.2.1").status_code == 429


def test_pin_guessing_cannot_lock_the_qr_path(tenant, admin_client, client_for):
    """Wrong PINs from many addresses spend the workspace's PIN budget; a valid QR code still pairs."""
    pin, code, _ = _start(admin_client, user=admin_client.session["_auth_user_id"], role=Role.VIEWER)
    wrong = "00000000" if pin != "00000000" else "11111111"
    phone = client_for(tenant)
    for i in range(40):
        _pair(phone, pin=wrong, REMOTE_ADDR=f"10.9.{i}.1")
    assert _pair(phone, pin=pin, REMOTE_ADDR="10.8.0.1").status_code == 429  # the PIN path is locked
    response = _pair(phone, code=code, REMOTE_ADDR="10.8.0.2")
    assert response.status_code == 201 and response.json()["token"].startswith("tsd_")


def test_roles_decide_who_pairs_and_what_the_device_may_do(tenant, make_user, client_for):
    viewer, analyst, manager = make_user(Role.VIEWER), make_user(Role.ANALYST), make_user(Role.MANAGER)
    for user in (viewer, analyst):
        assert client_for(tenant, user).get("/devices/").status_code == 403
    client = client_for(tenant, manager)
    page = client.get("/devices/")
    assert page.status_code == 200 and 'value="admin"' not in page.content.decode()
    # a Manager cannot hand out Admin, nor more than the member holds
    assert client.post("/devices/", {"user": manager.pk, "role": Role.ADMIN}).status_code == 400
    response = client.post("/devices/", {"user": viewer.pk, "role": Role.MANAGER})
    assert response.status_code == 400 and "cannot have more rights" in response.content.decode()
    assert client.post("/devices/", {"user": viewer.pk, "role": Role.VIEWER}).status_code == 201


def test_a_manager_cannot_pair_a_phone_that_acts_as_an_admin(tenant, make_user, admin_user, client_for):
    from sync.models import PairingCode
    from sync.services import SyncError, pairing_start

    manager = make_user(Role.MANAGER)
    client = client_for(tenant, manager)
    assert f'value="{admin_user.pk}"' not in client.get("/devices/").content.decode()
    assert client.post("/devices/", {"user": admin_user.pk, "role": Role.VIEWER}).status_code == 400
    with pytest.raises(SyncError) as refused:
        pairing_start(actor=manager, user=admin_user, role=Role.VIEWER)
    assert refused.value.code == "forbidden"
    assert not PairingCode.objects.filter(user=admin_user).exists()
    assert pairing_start(actor=admin_user, user=manager, role=Role.VIEWER).code  # Admins pair for anyone


def test_device_list_shows_last_seen_client_and_lag(tenant, admin_client, admin_user, pair, jobs):
    from records.services import record_create
    from sync.services import device_checkpoints_save

    device, _ = pair(name="Depot tablet")
    for i in range(3):
        record_create(actor=admin_user, collection=jobs, data={"title": str(i)}, record_id=f"l{i}")
    first_seq = jobs.records.order_by("seq").first().seq
    device_checkpoints_save(device=device, checkpoints={jobs.pk: (first_seq, "l0")})
    html = admin_client.get("/devices/").content.decode()
    assert "Depot tablet" in html and "test/1" in html
    assert "2 changes behind" in html


def test_checkpoints_only_move_forwards_and_keep_their_time(tenant, admin_user, pair, jobs):
    """A device's stored position per collection: a later pull moves it, an older one (a socket that
    reported late) never rewinds it; several collections are stored at once."""
    from datetime import timedelta

    from django.utils import timezone

    from records.services import collection_create
    from sync.models import DeviceCheckpoint
    from sync.services import device_checkpoints_save

    device, _ = pair()
    other, _ = pair(name="Other phone")
    notes = collection_create(actor=admin_user, name="Notes", slug="notes", fields=[])

    def stored():
        rows = DeviceCheckpoint.objects.filter(device=device).values_list("collection_id", "seq", "record_id")
        return sorted(rows)

    device_checkpoints_save(device=device, checkpoints={jobs.pk: (5, "e"), notes.pk: (2, "b")})
    assert stored() == sorted([(jobs.pk, 5, "e"), (notes.pk, 2, "b")])
    device_checkpoints_save(device=device, checkpoints={jobs.pk: (3, "c"), notes.pk: (9, "i")})
    assert stored() == sorted([(jobs.pk, 5, "e"), (notes.pk, 9, "i")])
    device_checkpoints_save(device=other, checkpoints={jobs.pk: (1, "a")})
    assert stored() == sorted([(jobs.pk, 5, "e"), (notes.pk, 9, "i")])
    saved = DeviceCheckpoint.objects.get(device=device, collection=notes).updated_at
    assert abs(timezone.now() - saved) < timedelta(seconds=30)


def test_revoke_from_the_console(tenant, admin_user, make_user, client_for, pair):
    from audit.models import AuditEvent
    from sync.services import device_for_token

    manager, other = make_user(Role.MANAGER), make_user(Role.MANAGER)
    own, own_token = pair(user=manager, name="Mine")
    theirs, _ = pair(user=other, name="Theirs")
    client = client_for(tenant, manager)
    assert client.post(f"/devices/{theirs.pk}/revoke/").status_code == 403  # only Admins revoke anyone's
    response = client.post(f"/devices/{own.pk}/revoke/")
    assert response.status_code == 302
    assert device_for_token(own_token) is None
    assert AuditEvent.objects.filter(action="device.revoked", target_id=str(own.pk)).exists()
    assert client_for(tenant, admin_user).post(f"/devices/{theirs.pk}/revoke/").status_code == 302


@pytest.mark.saas_only
def test_a_pairing_code_means_nothing_on_another_workspace(tenant, tenant_b, admin_user, client_for):
    from sync.services import pairing_start

    started = pairing_start(actor=admin_user)
    response = _pair(client_for(tenant_b), pin=started.pin)
    assert response.status_code == 400 and response.json()["code"] == "pairing_code_invalid"
    assert client_for(tenant_b).get("/devices/").status_code == 302  # their console: log in first


@pytest.mark.saas_only
def test_another_workspaces_device_cannot_be_revoked_from_here(tenant, tenant_b, admin_client):
    from accounts.models import User
    from sync.models import Device
    from sync.services import pairing_exchange, pairing_start
    from tenants.runtime import workspace_context

    ours = set(Device.objects.values_list("pk", flat=True))
    with workspace_context(tenant_b):
        admin_b = User.objects.get(email="admin@beta.test")
        theirs = None
        while theirs is None or theirs.pk in ours:  # a pk that names no device of alpha's
            started = pairing_start(actor=admin_b)
            theirs, _ = pairing_exchange(tenant=tenant_b, code=started.code, name="Beta phone")
    assert admin_client.post(f"/devices/{theirs.pk}/revoke/").status_code == 404
    assert "Beta phone" not in admin_client.get("/devices/").content.decode()
    with workspace_context(tenant_b):
        assert Device.objects.get(pk=theirs.pk).revoked_at is None


def test_the_devices_page_offers_the_sdk_as_an_npm_package(tenant, admin_client, make_user, client_for):
    import io
    import json
    import tarfile
    from pathlib import Path

    page = admin_client.get("/devices/").content.decode()
    assert 'href="/devices/sdk/tessera-sync.tgz"' in page
    response = admin_client.get("/devices/sdk/tessera-sync.tgz")
    assert response.status_code == 200 and response["Content-Type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        names = set(tar.getnames())
        package = json.loads(tar.extractfile("package/package.json").read())
        source = tar.extractfile("package/src/index.js").read()
    assert {"package/package.json", "package/README.md", "package/src/index.js", "package/src/index.d.ts"} <= names
    assert package["name"] == "@tessera/sync" and package["peerDependencies"]["rxdb"] == "17.6.0"
    assert source == (Path(__file__).resolve().parents[2] / "clients/js/src/index.js").read_bytes()
    # Only those who may pair devices see it (as the Devices page).
    assert client_for(tenant, make_user(Role.VIEWER)).get("/devices/sdk/tessera-sync.tgz").status_code == 403


@pytest.mark.desktop_only
def test_a_qr_code_no_phone_can_reach_warns_and_links_to_the_lan_hub(admin_client, admin_user, settings):
    """The desktop's console is on 127.0.0.1: while the LAN hub is off the code holds that address and
    the page says a phone cannot use it; with the hub listening, the code holds the LAN address."""
    _, _, off = _start(admin_client, user=admin_user.pk, role=Role.MANAGER)
    settings.TESSERA_PAIRING_BASE_URL = "tests.sync.test_pairing.lan_hub_listening"
    _, _, on = _start(admin_client, user=admin_user.pk, role=Role.MANAGER)

    assert 'data-testid="pairing-loopback"' in off.content.decode()
    assert 'href="/settings/desktop/#lan-hub"' in off.content.decode()
    assert "http://127.0.0.1" in re.search(r'data-testid="pair-url">([^<]+)<', off.content.decode()).group(1)
    assert 'data-testid="pairing-loopback"' not in on.content.decode()
    assert "http://192.168.1.20:47800/sync/v1/pair?code=" in on.content.decode()
    assert "ws://192.168.1.20:47800/sync/v1/" in on.content.decode()


def lan_hub_listening() -> str:
    return "http://192.168.1.20:47800"


def test_the_pairing_page_waits_for_the_phone_live_and_only_its_starter_sees_it(tenant, make_user, client_for):
    manager, other = make_user(Role.MANAGER), make_user(Role.MANAGER)
    client = client_for(tenant, manager)
    pin, _, page = _start(client, user=manager.pk, role=Role.MANAGER)
    status_url = re.search(r'hx-get="(/devices/pairing/\d+/)"', page.content.decode()).group(1)

    waiting = client.get(status_url)
    assert "Waiting for the phone…" in waiting.content.decode() and 'hx-trigger="every 2s"' in waiting.content.decode()
    assert client_for(tenant, other).get(status_url).status_code == 404
    assert _pair(client_for(tenant), pin=pin, name="Depot phone").status_code == 201
    paired = client.get(status_url).content.decode()
    assert "“Depot phone” is connected" in paired and "hx-trigger" not in paired  # polling stops
