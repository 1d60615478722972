"""Undo in the records table: the last change a person made there (a cell, a bulk edit or delete) can
be put back for a short while, from a toast with an Undo button. What can be undone is kept in the
person's session (one change: the latest), and undone through records.services.records_revert, which
refuses if any of those records has changed since."""

from __future__ import annotations

import secrets
import time

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from rbac.permissions import permission_required
from records.errors import RecordError
from records.forms import message_plain
from records.models import Collection
from records.services import UNDO_MAX, records_revert
from records.views.common import _collection, _htmx, _page

UNDO_SECONDS = 30
_KEY = "records_undo"


def undo_offer(request: HttpRequest, collection: Collection, versions: dict[str, int], *, label: str, undoes: str):
    """Offer to undo the change just made (`versions`: record id -> the version it made). Replaces any
    earlier offer; a change of more than UNDO_MAX records is not offered."""
    if not versions or len(versions) > UNDO_MAX:
        request.session.pop(_KEY, None)
        return
    request.session[_KEY] = {
        "token": secrets.token_urlsafe(12),
        "collection": collection.slug,
        "versions": versions,
        "label": label,
        "undoes": undoes,
        "expires": time.time() + UNDO_SECONDS,
    }


def undo_pending(request: HttpRequest, collection: Collection) -> dict | None:
    """The offer still open for this collection (for the table's toast), or None."""
    offer = request.session.get(_KEY)
    if not offer or offer.get("collection") != collection.slug or offer.get("expires", 0) < time.time():
        return None
    return {
        "token": offer["token"],
        "label": offer["label"],
        "expires": int(offer["expires"] * 1000),
        "url": reverse("records:undo", args=[collection.slug]),
    }


@require_http_methods(["GET", "POST"])
@permission_required("records.edit")
def records_undo(request: HttpRequest, slug: str) -> HttpResponse:
    """GET (htmx): the toast of what can be undone now. POST: undo it, back to the table."""
    collection = _collection(slug)
    if request.method == "GET":
        if not _htmx(request):
            return redirect("records:table", slug=slug)
        return _page(request, "records/_undo.html", {"undo": undo_pending(request, collection), "here": ""})
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=False):
        back = ""
    back = back or reverse("records:table", args=[slug])
    offer = undo_pending(request, collection)
    if offer is None or not secrets.compare_digest(offer["token"], request.POST.get("token", "")):
        messages.error(request, "Not undone: it is too late to undo that (or it was undone already).")
        return redirect(back)
    pending = request.session.pop(_KEY)
    try:
        reverted = records_revert(
            actor=request.user, collection=collection, versions=pending["versions"], undoes=pending["undoes"]
        )
    except RecordError as exc:
        messages.error(request, message_plain(exc.message))
        return redirect(back)
    n = len(reverted)
    messages.success(
        request, f"Undone: {n:,} record{'s' if n != 1 else ''} put back as {'they were' if n != 1 else 'it was'}."
    )
    return redirect(back)
