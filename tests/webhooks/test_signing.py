"""Signing secrets: Standard Webhooks signatures that the `standardwebhooks` library verifies, secrets
encrypted at rest, and rotation (both signatures during the overlap, each secret verifies alone)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from core.secrets_at_rest import SecretUndecryptable, secret_decrypt, secret_encrypt
from webhooks.delivery import delivery_attempt
from webhooks.errors import WebhookError
from webhooks.maintenance import test_event_send
from webhooks.models import Delivery, EndpointSecret
from webhooks.selectors import endpoint_secrets_valid
from webhooks.services import endpoint_create, endpoint_secret_reveal, endpoint_secret_rotate
from webhooks.signing import headers_signed, secret_new


def test_a_signature_made_here_verifies_with_the_partners_library():
    secret = secret_new()
    assert secret.startswith("whsec_")
    body = '{"type":"test.ping","timestamp":"2026-01-01T00:00:00.000000Z","data":{}}'
    headers = headers_signed(secrets_valid=[secret], msg_id="msg_1", timestamp=timezone.now(), body=body)

    assert Webhook(secret).verify(body, headers) == {
        "type": "test.ping",
        "timestamp": "2026-01-01T00:00:00.000000Z",
        "data": {},
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("ping", "pong"), headers)  # tampered body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_new()).verify(body, headers)  # someone else's secret


def test_secrets_are_encrypted_at_rest_and_need_the_key(settings, tenant, admin_user):
    endpoint, secret = endpoint_create(actor=admin_user, url="https://hooks.example.com/in")
    stored = EndpointSecret.objects.get(endpoint=endpoint).secret_encrypted
    assert secret not in stored and secret.removeprefix("whsec_") not in stored
    assert endpoint_secret_reveal(actor=admin_user, endpoint=endpoint) == secret

    settings.TESSERA_SECRETS_KEY = "another installation's key"
    with pytest.raises(SecretUndecryptable):
        secret_decrypt(stored)
    # Key rotation: the new key first encrypts, the old one still decrypts.
    settings.TESSERA_SECRETS_KEY = "new key," + settings.SECRET_KEY
    assert secret_decrypt(stored) == secret
    assert secret_decrypt(secret_encrypt("x")) == "x"


def test_during_rotation_both_signatures_are_sent_and_each_secret_verifies_alone(
    tenant, admin_user, receiver, loopback_allowed
):
    endpoint, old = endpoint_create(actor=admin_user, url=receiver.url())
    new = endpoint_secret_rotate(actor=admin_user, endpoint=endpoint, overlap=timedelta(hours=1))
    assert new != old and new.startswith("whsec_")
    assert endpoint_secrets_valid(endpoint) == [new, old]

    delivery = test_event_send(actor=admin_user, endpoint=endpoint)
    assert delivery_attempt(delivery.pk).result == "succeeded"

    (request,) = receiver.received
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (old, new):
        assert Webhook(secret).verify(request.body, request.headers)["type"] == "test.ping"
    assert request.headers["webhook-id"] == delivery.event_id


def test_after_the_overlap_only_the_new_secret_signs(tenant, admin_user, receiver, loopback_allowed):
    endpoint, old = endpoint_create(actor=admin_user, url=receiver.url())
    new = endpoint_secret_rotate(actor=admin_user, endpoint=endpoint, overlap=timedelta(hours=1))
    EndpointSecret.objects.filter(endpoint=endpoint).exclude(expires_at=None).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    delivery = test_event_send(actor=admin_user, endpoint=endpoint)
    delivery_attempt(delivery.pk)

    (request,) = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    assert Webhook(new).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(request.body, request.headers)
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.SUCCEEDED


def test_rotation_overlap_is_bounded(tenant, admin_user):
    endpoint, _ = endpoint_create(actor=admin_user, url="https://hooks.example.com/in")
    with pytest.raises(WebhookError) as err:
        endpoint_secret_rotate(actor=admin_user, endpoint=endpoint, overlap=timedelta(days=8))
    assert err.value.field == "overlap"
    endpoint_secret_rotate(actor=admin_user, endpoint=endpoint, overlap=timedelta(0))
    assert len(endpoint_secrets_valid(endpoint)) == 1  # zero overlap: the old secret ends at once
