"""The analytics API (/api/v1/analytics): run a query (filters, group by, aggregates, comparison),
list the workspace's saved queries and run one, and export records or a result in the background.
Needs the `analytics:read` scope; the key's mode picks the data set (test keys aggregate the sandbox
records, live keys the live ones)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.response import Response

from analytics import selectors
from analytics.api import serializers as s
from analytics.export_jobs import export_file_response, export_job_get, export_job_start, export_link_token
from analytics.queries import query_for, query_run
from api.base import ApiView, caller_of
from api.pagination import PAGE_PARAMS, keyset_page, list_body, page_request
from api.problems import ApiProblem
from api.schema import IDEMPOTENCY_KEY, error_responses
from tenants.runtime import workspace_current

TAG = "Analytics"
QUERY_EXAMPLE = OpenApiExample(
    "Revenue by month and region, this year against last",
    value={
        "collection": "orders",
        "filters": {"status": "paid"},
        "group_by": [{"field": "closed_on", "bucket": "month"}, {"field": "region"}],
        "aggregates": [{"fn": "sum", "field": "amount"}, {"fn": "count"}],
        "date_from": "2026-01-01",
        "date_to": "2026-12-31",
        "compare": "previous_year",
    },
    request_only=True,
)
QUERY_ID = OpenApiParameter("query_id", int, OpenApiParameter.PATH, description="The saved query's id.")


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _plain(data):
    """Validated serializer data (OrderedDicts, nested) as the plain JSON the query reader takes."""
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    return data


def _run(raw: dict, *, livemode: bool) -> dict:
    _collection, spec = query_for(raw=raw, livemode=livemode)
    return query_run(spec=spec, livemode=livemode, time_zone=workspace_current().timezone).as_dict()


class QueryApi(ApiView):
    permissions = {"POST": "analytics.read"}

    @extend_schema(
        operation_id="analytics_query",
        tags=[TAG],
        summary="Run an analytics query",
        description="Aggregates of a collection's records: filtered with the records API's filter grammar, "
        "grouped by up to two fields or time buckets (day, week, month, quarter, year — in the workspace's time "
        "zone), with count, count_distinct, sum, avg, min, max, median and percentile, sorted and limited, and "
        "optionally compared with the previous period or the same period last year (needs `date_from` and "
        "`date_to`). Numeric aggregates skip values that are not numbers. A query that does not fit the "
        "collection (unknown field, an aggregate its type has not) is a 422 naming the member at fault.",
        request=s.QueryIn,
        examples=[QUERY_EXAMPLE],
        responses={200: s.ResultOut, **error_responses(400, 404, 413, 415, 422)},
    )
    def post(self, request):
        self.query_params_check(set())
        raw = _plain(validated(s.QueryIn, request.data))
        return Response(_run(raw, livemode=self.livemode))


class SavedQueriesApi(ApiView):
    permissions = {"GET": "analytics.read"}

    @extend_schema(
        operation_id="analytics_saved_queries_list",
        tags=[TAG],
        summary="List saved queries",
        description="The queries the workspace's analysts saved, newest first (shared within the workspace).",
        parameters=[
            OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}),
            OpenApiParameter("starting_after", {"type": "string", "pattern": r"^[0-9]{1,18}$"}),
            OpenApiParameter("ending_before", {"type": "string", "pattern": r"^[0-9]{1,18}$"}),
        ],
        responses={200: s.SavedQueryListOut, **error_responses(400)},
    )
    def get(self, request):
        self.query_params_check(PAGE_PARAMS)
        page = page_request(request.query_params)
        rows, has_more = keyset_page(
            selectors.saved_query_list().select_related("owner"),
            order=["-id"],
            limit=page.limit,
            after=_cursor(page.starting_after, "starting_after"),
            before=_cursor(page.ending_before, "ending_before"),
        )
        return Response(list_body(request, s.SavedQueryOut(rows, many=True).data, has_more=has_more))


def _cursor(raw: str | None, param: str) -> dict | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise ApiProblem(400, "invalid_request", f"`{param}` must be a saved query's id.", param=param)
    return {"id": int(raw)}


class SavedQueryResultApi(ApiView):
    permissions = {"GET": "analytics.read"}

    @extend_schema(
        operation_id="analytics_saved_query_result",
        tags=[TAG],
        summary="Run a saved query",
        description="The saved query's result now, over the data set of the key's mode.",
        parameters=[QUERY_ID],
        responses={200: s.ResultOut, **error_responses(404, 422)},
    )
    def get(self, request, query_id: int):
        self.query_params_check(set())
        saved = selectors.saved_query_get(query_id=query_id)
        return Response(_run(saved.spec, livemode=self.livemode))


EXPORT_ID = OpenApiParameter("export_id", str, OpenApiParameter.PATH, description="The export's id (`exp_…`).")


def _export_body(request, job) -> dict:
    url = None
    if job.status == job.Status.DONE:
        url = request.build_absolute_uri(reverse("analytics:export_download", args=[export_link_token(job)]))
    return s.ExportOut({**{f: getattr(job, f) for f in EXPORT_FIELDS}, "url": url}).data


EXPORT_FIELDS = (
    "token",
    "status",
    "what",
    "fmt",
    "collection",
    "rows_done",
    "rows_total",
    "size",
    "error",
    "created_at",
    "finished_at",
    "expires_at",
)


class ExportsApi(ApiView):
    permissions = {"POST": "analytics.read"}

    @extend_schema(
        operation_id="analytics_export_start",
        tags=[TAG],
        summary="Start a background export",
        description="Export a collection's records (matching the records API's `filters`) or a query's result as "
        "CSV, JSON, NDJSON or XLSX, written by a background worker. Answers 202 with the export; poll "
        "`GET /analytics/exports/{export_id}` for progress, then download `url` (a signed link that needs no key "
        "and expires) or `GET /analytics/exports/{export_id}/file` with the key. A records export needs the "
        "`records:read` scope as well. CSV cells a spreadsheet would run as a formula start with an apostrophe.",
        request=s.ExportIn,
        parameters=[IDEMPOTENCY_KEY],
        responses={202: s.ExportOut, **error_responses(400, 404, 413, 415, 422)},
    )
    def post(self, request):
        self.query_params_check(set())
        data = _plain(validated(s.ExportIn, request.data))
        job = export_job_start(
            actor=caller_of(request),
            livemode=self.livemode,
            fmt=data["format"],
            collection=data.get("collection", ""),
            filters=data.get("filters"),
            query=data.get("query"),
        )
        return Response(_export_body(request, job), status=202)


class ExportApi(ApiView):
    permissions = {"GET": "analytics.read"}

    @extend_schema(
        operation_id="analytics_export_get",
        tags=[TAG],
        summary="An export's progress",
        description="Only the key that started an export sees it (another key of the workspace gets 404). "
        "`status` is queued, running, done or failed (`error` says why); `rows_done` of `rows_total` "
        "tell the progress; once done, `url` downloads the file until `expires_at`.",
        parameters=[EXPORT_ID],
        responses={200: s.ExportOut, **error_responses(404)},
    )
    def get(self, request, export_id: str):
        self.query_params_check(set())
        return Response(
            _export_body(request, export_job_get(token=export_id, livemode=self.livemode, actor=caller_of(request)))
        )


class ExportFileApi(ApiView):
    permissions = {"GET": "analytics.read"}

    @extend_schema(
        operation_id="analytics_export_file",
        tags=[TAG],
        summary="Download an export's file",
        description="The finished file (404 until the export is done, and once it has expired).",
        parameters=[EXPORT_ID],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **error_responses(404)},
    )
    def get(self, request, export_id: str):
        self.query_params_check(set())
        job = export_job_get(token=export_id, livemode=self.livemode, actor=caller_of(request))
        if job.status != job.Status.DONE:
            raise ApiProblem(404, "export_not_ready", "The export is not finished (see its `status`).")
        return export_file_response(job)
