"""The desktop's PostgreSQL-free stand-in for django_tenants' schema-name validator."""

import sys

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from tenants import pgfree
from tenants.models import Tenant

NAMES = ["acme", "acme_2", "ACME", "a" * 63, "a" * 64, "pg_catalog", "PG_x", 'a"b', "a;b", "a\\b", "a\nb", "", "x'y"]


@pytest.mark.parametrize("name", NAMES)
def test_the_stand_in_accepts_and_refuses_what_django_tenants_does(name):
    """The rule is the SaaS one; in SaaS the real backend is loaded and the two are compared."""
    valid = name and len(name) <= 63 and not name.lower().startswith("pg_") and not set(name) & set("\"'\\;\r\n\0")
    assert bool(pgfree.is_valid_schema_name(name)) == bool(valid)
    if settings.TESSERA_MULTI_TENANT:
        from django_tenants.postgresql_backend.base import is_valid_schema_name

        assert bool(is_valid_schema_name(name)) == bool(valid)


def test_the_tenant_model_validates_its_schema_name_in_both_runtimes():
    field = Tenant._meta.get_field("schema_name")
    validator = next(v for v in field.validators if getattr(v, "__name__", "") == "_check_schema_name")
    # the dotted path migrations record is the same in both runtimes
    assert validator.__module__ == "django_tenants.postgresql_backend.base"
    validator("acme_1")
    with pytest.raises(ValidationError, match="Invalid string used for the schema name"):
        validator("pg_toast")


def test_the_desktop_never_loads_the_postgresql_backend():
    backend = sys.modules["django_tenants.postgresql_backend.base"]
    # the real backend defines the database wrapper (and loaded psycopg for it); the stand-in does not
    assert hasattr(backend, "DatabaseWrapper") == bool(settings.TESSERA_MULTI_TENANT)
