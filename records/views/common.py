"""What every console page of records shares: looking up the collection and record of a URL, the
workspace's time zone, htmx fragments, streamed responses, and how one value is shown in a cell."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers

from billing import entitlements
from core.request_context import console_livemode
from records.errors import NotFound
from records.models import Collection, Record
from records.query import record_titles
from records.selectors import collection_get, record_get
from tenants.runtime import workspace_current


def _live() -> bool:
    """The console's data in this request: live (True), or in test mode the sandbox rows that test-mode
    API keys read and write (False). Every collection a page looks up is of this mode, so its records,
    writes and references are too."""
    return console_livemode()


def writes_open() -> bool:
    """Whether the workspace takes writes now (not read-only for billing). Pages offer their write
    actions only then (the layout's banner says why not); the services refuse writes anyway."""
    return not entitlements.standing().read_only


def _collection(slug: str) -> Collection:
    try:
        return collection_get(livemode=_live(), slug=slug)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def _record(collection: Collection, record_id: str) -> Record:
    try:
        return record_get(collection=collection, record_id=record_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def _tz() -> ZoneInfo:
    try:
        return ZoneInfo(workspace_current().timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _htmx(request: HttpRequest) -> bool:
    """An htmx request that wants a fragment (a history restore wants the whole page)."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get("HX-History-Restore-Request")


def _page(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _streaming(request: HttpRequest, chunks, content_type: str) -> StreamingHttpResponse:
    """Stream `chunks` (a sync iterator). Under ASGI each chunk is produced in the request's own thread
    (sync_to_async, thread-sensitive), so the response really streams instead of being buffered."""
    content = _async_chunks(chunks) if isinstance(request, ASGIRequest) else chunks
    response = StreamingHttpResponse(content, content_type=content_type)
    response["X-Accel-Buffering"] = "no"
    response["Cache-Control"] = "no-store"
    return response


async def _async_chunks(chunks):
    iterator = iter(chunks)
    done = object()
    step = sync_to_async(lambda: next(iterator, done), thread_sensitive=True)
    try:
        while (chunk := await step()) is not done:
            yield chunk
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=True)()


def _qs(params: QueryDict) -> str:
    encoded = params.urlencode()
    return "?" + encoded if encoded else ""


def _reference_titles(collection: Collection, records: list[Record]) -> dict[str, dict[str, str]]:
    """{target slug: {id: title}} for the reference values shown on a page (one query per target)."""
    wanted: dict[str, set[str]] = {}
    for spec in collection.fields:
        if spec["type"] == "reference":
            ids = {r.data[spec["key"]] for r in records if isinstance(r.data.get(spec["key"]), str)}
            wanted.setdefault(spec["collection"], set()).update(ids)
    return {slug: record_titles(livemode=_live(), collection_slug=slug, ids=ids) for slug, ids in wanted.items() if ids}


def _cell(spec: dict, value: Any, tz: ZoneInfo, targets: set[str], titles: dict | None = None) -> dict:
    t = spec["type"]
    cell: dict[str, Any] = {"text": "", "href": "", "kind": t, "title": ""}
    if value is None:
        return cell
    if t == "boolean":
        cell["text"] = "Yes" if value else "No"
    elif t == "datetime" and isinstance(value, str):
        try:
            cell["text"] = (
                datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(tz).strftime("%Y-%m-%d %H:%M")
            )
        except ValueError:
            cell["text"] = value
        cell["title"] = value
    elif t == "json":
        cell["text"] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    elif t == "url" and isinstance(value, str):
        cell["text"], cell["href"] = value, value
    elif t == "email" and isinstance(value, str):
        cell["text"], cell["href"] = value, f"mailto:{value}"
    elif t == "reference" and isinstance(value, str):
        cell["text"] = ((titles or {}).get(spec["collection"]) or {}).get(value, value)
        cell["href"] = reverse("records:record", args=[spec["collection"], value])
        cell["title"] = value
    else:
        cell["text"] = str(value)
    if len(cell["text"]) > 120:
        cell["title"] = cell["title"] or cell["text"][:1000]
        cell["text"] = cell["text"][:119] + "…"
    return cell
