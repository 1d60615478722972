"""The access package (GDPR art. 15 and 20, CCPA right to know): a ZIP of JSON and CSV files with a
README of what each file is, produced as a stream, behind an expiring signed link.

The package is made from the workspace's data at download time and is never stored (a stored copy
would be one more place to erase). The link names the request and is signed for this workspace; it
stops working after settings.TESSERA_DSR_PACKAGE_LINK_SECONDS.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.utils import timezone

from core.events import instant
from privacy.models import SubjectRequest
from privacy.selectors import SubjectData, subject_data_collect
from tenants.runtime import workspace_current

README = """Your data held by {workspace}
{underline}

This package answers data-subject request {request} ({kind}), made on {made}.
It holds every value {workspace} stores about you in Tessera, found by "{identifier}".

Files
- request.json          the request this package answers: when it was received and is due.
- records.json          every record about you: its collection, id, values, when made and last changed.
- records/<name>.csv    the same records, one spreadsheet per collection (columns: the record's fields).
- history.json          every change made to those records, oldest first, with the values after each.
                        Webhook notifications and phone sync carry these same change bodies.
- audit.json            the workspace's audit log entries about those records (what changed, when).
- member.json           your account, if you are a member of this workspace (role, last log-in).

Dates are ISO 8601 in UTC. Values are as stored; fields without a value are left out.
"""


def _salt() -> str:
    return f"privacy.package.{workspace_current().pk}"


def package_token(request: SubjectRequest) -> tuple[str, datetime]:
    """A signed token for the request's package link, and when it stops working."""
    token = signing.TimestampSigner(salt=_salt()).sign(request.pk)
    return token, timezone.now() + timedelta(seconds=settings.TESSERA_DSR_PACKAGE_LINK_SECONDS)


def package_token_request_id(token: str) -> str | None:
    """The request a token names, or None when it is forged, of another workspace, or expired."""
    try:
        return signing.TimestampSigner(salt=_salt()).unsign(token, max_age=settings.TESSERA_DSR_PACKAGE_LINK_SECONDS)
    except signing.BadSignature:
        return None


class _Sink(io.RawIOBase):
    """An unseekable stream that hands on what the ZIP writer wrote (zipfile then writes data
    descriptors instead of seeking back)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def _files(request: SubjectRequest, found: SubjectData) -> Iterator[tuple[str, str]]:
    workspace = workspace_current().name
    yield (
        "README.txt",
        README.format(
            workspace=workspace,
            underline="=" * (len(workspace) + 18),
            request=request.pk,
            kind=request.get_kind_display().lower(),
            made=timezone.now().strftime("%Y-%m-%d %H:%M UTC"),
            identifier=request.subject_identifier,
        ),
    )
    yield (
        "request.json",
        _json(
            {
                "id": request.pk,
                "kind": request.kind,
                "regime": request.regime,
                "received_at": instant(request.received_at),
                "due_at": instant(request.due_at),
            }
        ),
    )
    records = [
        {
            "collection": r.collection.slug,
            "id": r.id,
            "data": r.data,
            "created_at": instant(r.created_at),
            "updated_at": instant(r.updated_at),
            "deleted": r.deleted_at is not None,
        }
        for r in found.records
    ]
    yield "records.json", _json(records)
    for slug, collection in sorted(found.collections.items()):
        keys = [f["key"] for f in collection.fields]
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", *keys])
        for r in found.records:
            if r.collection_id == collection.pk:
                writer.writerow([r.id, *[_cell(r.data.get(k)) for k in keys]])
        yield f"records/{slug}.csv", out.getvalue()
    yield (
        "history.json",
        _json(
            [
                {
                    "record": c.record_id,
                    "seq": c.seq,
                    "op": c.op,
                    "version": c.version,
                    "data": c.data,
                    "changed_fields": c.changed_fields,
                    "occurred_at": instant(c.occurred_at),
                }
                for c in found.history
            ]
        ),
    )
    yield "audit.json", _json(found.audit)
    if found.member is not None:
        yield "member.json", _json(found.member)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def package_chunks(request: SubjectRequest) -> Iterator[bytes]:
    """The package as ZIP bytes, file by file."""
    found = subject_data_collect(request.subject_identifier)
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in _files(request, found):
            archive.writestr(name, text)
            yield sink.take()
    yield sink.take()
