"""Storage failures are named once and answered with a 503 carrying the reason: problem+json on the
API, a page in the console; a damaged database is refused at start with its cause."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from django.db import OperationalError
from django.http import HttpResponse
from django.test import RequestFactory

from desktop.storage import database_check, storage_failure_of

pytestmark = pytest.mark.desktop_only


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (OperationalError("database is locked"), "database_locked"),
        (sqlite3.OperationalError("database or disk is full"), "disk_full"),
        (OSError(errno.ENOSPC, "No space left on device"), "disk_full"),
        (sqlite3.DatabaseError("database disk image is malformed"), "database_damaged"),
        (sqlite3.DatabaseError("file is not a database"), "database_damaged"),
        (OperationalError("attempt to write a readonly database"), "database_unwritable"),
    ],
)
def test_failures_are_named(exc, code, tmp_path):
    failure = storage_failure_of(exc, tmp_path)
    assert failure is not None and failure.code == code and failure.message


def test_other_errors_are_not_storage_failures():
    assert storage_failure_of(ValueError("database is locked")) is None
    assert storage_failure_of(OperationalError("no such column: x")) is None
    wrapped = RuntimeError("saving failed")
    wrapped.__cause__ = OperationalError("database is locked")
    assert storage_failure_of(wrapped).code == "database_locked"


def _through_the_middleware(path: str, exc: Exception, **headers) -> HttpResponse:
    """A request whose handling raised `exc`, as Django's stack handles it: the exception becomes a
    500 (sending got_request_exception while it is handled) inside the storage middleware."""
    from django.core.handlers.exception import response_for_exception

    from desktop.middleware import StorageFailureMiddleware

    request = RequestFactory().post(path, **headers)
    request.id = "req_test"

    def inner(request):
        try:
            raise exc
        except Exception as caught:
            return response_for_exception(request, caught)

    return StorageFailureMiddleware(inner)(request)


def test_the_api_gets_a_503_problem_with_the_reason(db):
    response = _through_the_middleware("/api/v1/collections", OperationalError("database is locked"))
    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/problem+json")
    assert response["Retry-After"] == "5"
    import json

    body = json.loads(response.content)
    assert body["code"] == "database_locked" and "locked by another program" in body["detail"]


def test_the_console_gets_a_503_page_with_the_reason(db):
    response = _through_the_middleware("/records/", OperationalError("database or disk is full"))
    assert response.status_code == 503
    text = response.content.decode()
    assert 'data-code="disk_full"' in text and "is full" in text and "Nothing you entered before this was lost" in text


def test_a_bug_stays_a_500(db):
    response = _through_the_middleware("/records/", ZeroDivisionError("a bug"))
    assert response.status_code == 500


def test_start_up_check_names_a_damaged_or_locked_database_within_seconds(tmp_path):
    import time

    db = tmp_path / "tessera.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    began = time.monotonic()
    failure = database_check(db, tmp_path, lock_timeout=1.0)
    assert failure is not None and failure.code == "database_locked"
    assert time.monotonic() - began < 3
    holder.execute("ROLLBACK")
    holder.close()
    assert database_check(db, tmp_path) is None
    conn.close()
    db.write_bytes(b"\0" * 100 + db.read_bytes()[100:4096] + b"garbage" * 1000)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"tessera.sqlite3{suffix}").unlink(missing_ok=True)
    damaged = database_check(db, tmp_path)
    assert damaged is not None and damaged.code == "database_damaged"
