import pytest


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
            {"key": "tier", "type": "choice", "choices": ["free", "pro"], "default": "free"},
            {"key": "score", "type": "integer"},
            {"key": "notes", "type": "long_text"},
        ],
    )
