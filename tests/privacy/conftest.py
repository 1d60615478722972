"""Fixtures for privacy tests: a customers collection and an orders collection whose personal fields
are mapped, one data subject (Ada) seeded in both, and another (Grace) who must stay untouched."""

from __future__ import annotations

import pytest

from tests.sync.conftest import own_channel_layer, own_counters, pair  # noqa: F401
from tests.webhooks.conftest import loopback_allowed, receiver  # noqa: F401

ADA = {
    "name": "Ada Subjectova",
    "email": "ada.subjectova@example.org",
    "phone": "+44 20 7946 0018",
    "notes": "prefers calls before 9, code zq7k",
}
GRACE = {"name": "Grace Keepmeier", "email": "grace.keepmeier@example.org", "phone": "+1 202 555 0147"}
ADA_VALUES = [ADA["name"], ADA["email"], ADA["phone"], "zq7k", "Subjectova"]
GRACE_VALUES = [GRACE["name"], GRACE["email"], GRACE["phone"]]


@pytest.fixture
def customers(tenant, admin_user):
    from records.services import collection_create

    return collection_create(
        actor=admin_user,
        name="Customers",
        slug="customers",
        fields=[
            {"key": "name", "type": "text", "required": True},
            {"key": "email", "type": "email", "unique": True},
            {"key": "phone", "type": "text"},
            {"key": "notes", "type": "long_text"},
            {"key": "tier", "type": "choice", "choices": ["free", "pro"], "default": "free"},
        ],
    )


@pytest.fixture
def orders(tenant, admin_user):
    from records.services import collection_create

    return collection_create(
        actor=admin_user,
        name="Orders",
        slug="orders",
        fields=[{"key": "customer_email", "type": "email"}, {"key": "item", "type": "text"}],
    )


@pytest.fixture
def mapped(customers, orders, admin_user):
    """The personal-data map: e-mail identifies the subject in both collections."""
    from privacy.services import personal_data_map_set

    personal_data_map_set(
        actor=admin_user, collection=customers, personal=["name", "phone", "notes"], identifying=["email"]
    )
    personal_data_map_set(actor=admin_user, collection=orders, personal=[], identifying=["customer_email"])
    return customers, orders
