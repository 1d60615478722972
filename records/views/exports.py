"""CSV/JSON export of a collection's table, as filtered, streamed."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from rbac.permissions import permission_required
from records.errors import RecordError
from records.exports import FORMATS, records_export
from records.forms import message_plain
from records.query import table_query_parse
from records.views.common import _collection, _streaming


@require_http_methods(["GET"])
@permission_required("records.export")
def record_export(request: HttpRequest, slug: str, fmt: str) -> HttpResponse:
    if fmt not in FORMATS:
        raise Http404("No such export format.")
    collection = _collection(slug)
    try:
        query = table_query_parse(collection, request.GET)
        chunks = records_export(actor=request.user, collection=collection, query=query, fmt=fmt)
    except RecordError as exc:
        return HttpResponse(message_plain(exc.message), status=400, content_type="text/plain; charset=utf-8")
    response = _streaming(request, chunks, FORMATS[fmt])
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{collection.slug}-{stamp}.{fmt}"'
    return response
