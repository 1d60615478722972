"""django_tenants' models without its PostgreSQL backend, for the desktop (SQLite, no PostgreSQL driver).

`django_tenants.models` imports its PostgreSQL backend for one function, the schema-name validator
`_check_schema_name`; loading that backend loads psycopg and libpq (about 7 MB resident), and the
desktop's bundle ships no PostgreSQL driver at all. `install()` puts a stand-in module under the
backend's name that holds that validator and nothing else: the same rule, the same dotted path, so
the Tenant model, its migrations and `makemigrations --check` are the same in both runtimes.
Anything else reaching for the PostgreSQL backend on the desktop fails loudly (AttributeError).
"""

from __future__ import annotations

import re
import sys
import types

from django.core.exceptions import ValidationError

BACKEND = "django_tenants.postgresql_backend.base"
# django_tenants.postgresql_backend.base.PGSQL_VALID_SCHEMA_NAME (4.0.1), the rule the SaaS applies
PGSQL_VALID_SCHEMA_NAME = re.compile(r'^(?!pg_)[^"\'\\;\x00\r\n]{1,63}\Z', re.IGNORECASE)


def is_valid_schema_name(name):
    return PGSQL_VALID_SCHEMA_NAME.match(name)


def _check_schema_name(name):
    if not is_valid_schema_name(name):
        raise ValidationError("Invalid string used for the schema name.")


def install() -> None:
    """Before the first import of django_tenants.models. A no-op once the real backend is loaded."""
    if BACKEND in sys.modules:
        return
    import django_tenants.postgresql_backend as package  # an empty package: no driver behind it

    stand_in = types.ModuleType(BACKEND, __doc__)
    for function in (is_valid_schema_name, _check_schema_name):
        clone = types.FunctionType(function.__code__, function.__globals__, function.__name__)
        clone.__module__ = BACKEND  # how migrations name the validator
        clone.__qualname__ = function.__qualname__
        setattr(stand_in, function.__name__, clone)
    stand_in.PGSQL_VALID_SCHEMA_NAME = PGSQL_VALID_SCHEMA_NAME
    sys.modules[BACKEND] = stand_in
    package.base = stand_in
