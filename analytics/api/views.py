"""The analytics API (/api/v1/analytics): run a query (filters, group by, aggregates, comparison),
list the workspace's saved queries and run one. Needs the `analytics:read` scope; the key's mode
picks the data set (test keys aggregate the sandbox records, live keys the live ones)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.response import Response

from analytics import selectors
from analytics.api import serializers as s
from analytics.queries import query_for, query_run
from api.base import ApiView
from api.pagination import PAGE_PARAMS, keyset_page, list_body, page_request
from api.problems import ApiProblem
from api.schema import error_responses
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
