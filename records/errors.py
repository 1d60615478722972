"""Typed errors of the write spine: ServiceErrors that API, console and sync each map once."""

from __future__ import annotations

from core import errors as core_errors
from core.errors import ServiceError


class RecordError(ServiceError):
    """A write the spine refuses although the request was well formed (HTTP 422 unless a subclass
    says otherwise): a field definition that makes no sense, a missing name, a reference to nothing."""


class InvalidQuery(RecordError):
    """A read asked for something malformed: an unknown filter, a value of the wrong type."""

    status, code = 400, "invalid_query"


class Conflict(RecordError, core_errors.Conflict):
    """The write collides with existing data (a slug or id taken, a collection still in use)."""

    status, code = 409, "conflict"


class WriteForbidden(RecordError, core_errors.Forbidden):
    status, code = 403, "forbidden"


class NotFound(RecordError, core_errors.NotFound):
    status, code = 404, "not_found"


class ValidationFailed(RecordError):
    status, code = 422, "validation_failed"

    def __init__(self, errors: list[dict]):
        first = errors[0] if errors else {"message": "Invalid data.", "param": "data"}
        super().__init__(first["message"], param=first.get("param"), errors=errors)
        self.errors = errors


class UniqueViolation(RecordError):
    status, code = 409, "unique_violation"


class VersionMismatch(RecordError):
    """If-Match named a version that is no longer current."""

    status, code = 412, "version_mismatch"


class MergeConflict(RecordError):
    """A stale write changed a field that was also changed, differently, since its base."""

    status, code = 409, "merge_conflict"

    def __init__(self, conflicts: list, current_version: int):
        fields = ", ".join(c.field for c in conflicts)
        super().__init__(
            f"Conflicting changes to {fields} since your version.",
            param=f"data.{conflicts[0].field}" if conflicts else None,
            conflicts=[c.as_dict() for c in conflicts],
            current_version=current_version,
        )
        self.conflicts = conflicts


class SubjectRestricted(RecordError):
    """The record belongs to a data subject whose processing is restricted (GDPR art. 18): it is kept
    but not changed until a compliance manager lifts the restriction."""

    status, code = 409, "subject_restricted"
