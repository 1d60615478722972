"""The webhook endpoints API (/api/v1/webhook_endpoints): list, create, retrieve, update, delete,
rotate the signing secret, and read an endpoint's deliveries. Needs the `webhooks:manage` scope; the
key's mode picks the endpoints (test keys see and make test endpoints only, live keys live ones).

Thin handlers: shapes checked by webhooks.api.serializers, the URL and headers by the same checks
the console uses, writes by webhooks.services (whose typed errors become problem+json here)."""

from __future__ import annotations

import re
from datetime import timedelta

from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.response import Response

from api.base import ApiJSONParser, ApiView, MergePatchParser
from api.idempotency import idempotent
from api.pagination import LIMIT_DEFAULT, LIMIT_MAX, PAGE_PARAMS, keyset_page, list_body, page_request
from api.problems import ApiProblem
from api.schema import IDEMPOTENCY_KEY, error_responses
from webhooks import catalogue, selectors, services
from webhooks.api import serializers as s
from webhooks.models import Delivery, Endpoint

TAG = "Webhook endpoints"
ENDPOINT_ID_RE = re.compile(s.ENDPOINT_ID_PATTERN)
DELIVERY_ID_RE = re.compile(s.DELIVERY_ID_PATTERN)
ENDPOINT_PATH = OpenApiParameter(
    "endpoint_id",
    {"type": "string", "pattern": s.ENDPOINT_ID_PATTERN},
    OpenApiParameter.PATH,
    description="The endpoint's id (`ep_…`).",
)
CREATE_EXAMPLE = OpenApiExample(
    "A test endpoint for record changes",
    value={
        "url": "https://example.com/webhooks/tessera",
        "description": "ERP sync",
        "event_types": ["record.*"],
        "headers": {"X-Api-Token": "abc123"},
    },
    request_only=True,
)


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _endpoint(view: ApiView, endpoint_id: str) -> Endpoint:
    endpoint = None
    if ENDPOINT_ID_RE.fullmatch(endpoint_id):
        endpoint = selectors.endpoint_get(endpoint_id=endpoint_id, livemode=view.livemode)
    if endpoint is None:
        raise ApiProblem(404, "not_found", f"No webhook endpoint `{endpoint_id[:64]}` (in this mode).")
    return endpoint


def _endpoint_out(endpoint: Endpoint, secret: str | None = None) -> dict:
    if secret is None:
        return s.EndpointOut(endpoint).data
    endpoint.secret = secret
    return s.EndpointWithSecretOut(endpoint).data


def _cursor(value: str | None, param: str, pattern: re.Pattern, key: str, convert=str) -> dict | None:
    if value is None:
        return None
    if not pattern.fullmatch(value):
        raise ApiProblem(400, "invalid_request", f"`{param}` must be an id of this list.", param=param)
    return {key: convert(value)}


def _page_parameters(pattern: str, what: str) -> list[OpenApiParameter]:
    return [
        OpenApiParameter(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX, "default": LIMIT_DEFAULT},
            description=f"How many {what} to return (1–{LIMIT_MAX}).",
        ),
        OpenApiParameter(
            "starting_after",
            {"type": "string", "pattern": pattern},
            description=f"The next page: the {what} after this id (the last of the page you have).",
        ),
        OpenApiParameter(
            "ending_before",
            {"type": "string", "pattern": pattern},
            description=f"The previous page: the {what} before this id (the first of the page you have).",
        ),
    ]


class EndpointsApi(ApiView):
    """Webhook endpoints of the key's mode."""

    permissions = {"GET": "webhooks.manage", "POST": "webhooks.manage"}

    @extend_schema(
        operation_id="webhook_endpoints_list",
        tags=[TAG],
        summary="List webhook endpoints",
        description="The endpoints of the key's mode, newest first.",
        parameters=_page_parameters(s.ENDPOINT_ID_PATTERN, "endpoints"),
        responses={200: s.EndpointListOut, **error_responses(400)},
    )
    def get(self, request):
        self.query_params_check(PAGE_PARAMS)
        page = page_request(request.query_params)
        rows, has_more = keyset_page(
            selectors.endpoint_list(livemode=self.livemode),
            order=["-id"],
            limit=page.limit,
            after=_cursor(page.starting_after, "starting_after", ENDPOINT_ID_RE, "id"),
            before=_cursor(page.ending_before, "ending_before", ENDPOINT_ID_RE, "id"),
        )
        return Response(list_body(request, s.EndpointOut(rows, many=True).data, has_more=has_more))

    @extend_schema(
        operation_id="webhook_endpoints_create",
        tags=[TAG],
        summary="Create a webhook endpoint",
        description="A new, enabled endpoint in the key's mode. The response holds its signing secret "
        "(`secret`), shown only here; verify each delivery's `webhook-signature` with it (Standard Webhooks). "
        "A URL whose address is not on the public internet (loopback, private, link-local, …) is refused "
        "with 422 `url_refused`.",
        request=s.EndpointCreateIn,
        parameters=[IDEMPOTENCY_KEY],
        examples=[CREATE_EXAMPLE],
        responses={201: s.EndpointWithSecretOut, **error_responses(400, 409, 413, 415, 422)},
    )
    @idempotent
    def post(self, request):
        self.query_params_check(set())
        data = dict(validated(s.EndpointCreateIn, request.data))
        endpoint, secret = services.endpoint_create(actor=request.user, livemode=self.livemode, **data)
        location = reverse("api:webhook_endpoint", kwargs={"endpoint_id": endpoint.pk})
        return Response(_endpoint_out(endpoint, secret), status=201, headers={"Location": location})


class EndpointApi(ApiView):
    """One webhook endpoint."""

    permissions = {"GET": "webhooks.manage", "PATCH": "webhooks.manage", "DELETE": "webhooks.manage"}
    parser_classes = [ApiJSONParser, MergePatchParser]

    @extend_schema(
        operation_id="webhook_endpoints_retrieve",
        tags=[TAG],
        summary="Retrieve a webhook endpoint",
        parameters=[ENDPOINT_PATH],
        responses={200: s.EndpointOut, **error_responses(400, 404)},
    )
    def get(self, request, endpoint_id: str):
        self.query_params_check(set())
        return Response(_endpoint_out(_endpoint(self, endpoint_id)))

    @extend_schema(
        operation_id="webhook_endpoints_update",
        tags=[TAG],
        summary="Update a webhook endpoint",
        description="Change what you send (a JSON merge patch: members left out stay as they are). "
        "`enabled: true` re-enables an endpoint Tessera disabled and sends what is pending.",
        parameters=[ENDPOINT_PATH],
        request={"application/json": s.EndpointUpdateIn, "application/merge-patch+json": s.EndpointUpdateIn},
        responses={200: s.EndpointOut, **error_responses(400, 404, 413, 415, 422)},
    )
    def patch(self, request, endpoint_id: str):
        self.query_params_check(set())
        data = dict(validated(s.EndpointUpdateIn, request.data))
        endpoint = _endpoint(self, endpoint_id)
        endpoint = services.endpoint_update(actor=request.user, endpoint=endpoint, **data)
        return Response(_endpoint_out(endpoint))

    @extend_schema(
        operation_id="webhook_endpoints_delete",
        tags=[TAG],
        summary="Delete a webhook endpoint",
        description="It receives nothing more; its delivery log goes with it.",
        parameters=[ENDPOINT_PATH],
        responses={200: s.EndpointDeletedOut, **error_responses(400, 404)},
    )
    def delete(self, request, endpoint_id: str):
        self.query_params_check(set())
        endpoint = _endpoint(self, endpoint_id)
        pk = endpoint.pk
        services.endpoint_delete(actor=request.user, endpoint=endpoint)
        return Response(s.EndpointDeletedOut({"id": pk, "deleted": True}).data)


class EndpointSecretRotateApi(ApiView):
    """A new signing secret; the old one stays valid for the overlap."""

    permissions = {"POST": "webhooks.manage"}

    @extend_schema(
        operation_id="webhook_endpoints_rotate_secret",
        tags=[TAG],
        summary="Rotate a webhook endpoint's signing secret",
        description="Deliveries are signed with the old and the new secret until `overlap_seconds` (default 24 "
        "hours, at most 7 days) have passed, so your receiver can switch without missing one.",
        parameters=[ENDPOINT_PATH, IDEMPOTENCY_KEY],
        request=s.SecretRotateIn,
        responses={200: s.SecretOut, **error_responses(400, 404, 409, 413, 415, 422)},
    )
    @idempotent
    def post(self, request, endpoint_id: str):
        self.query_params_check(set())
        data = validated(s.SecretRotateIn, request.data or {})
        endpoint = _endpoint(self, endpoint_id)
        overlap = timedelta(seconds=data["overlap_seconds"])
        secret = services.endpoint_secret_rotate(actor=request.user, endpoint=endpoint, overlap=overlap)
        expires = max((x.expires_at for x in endpoint.secrets.all() if x.expires_at), default=None)
        body = {"endpoint": endpoint.pk, "secret": secret, "previous_secrets_expire_at": expires}
        return Response(s.SecretOut(body).data)


class EndpointDeliveriesApi(ApiView):
    """The delivery log of one endpoint."""

    permissions = {"GET": "webhooks.manage"}

    @extend_schema(
        operation_id="webhook_endpoints_deliveries_list",
        tags=[TAG],
        summary="List an endpoint's deliveries",
        description="Every event sent (or being sent) to the endpoint, newest first, with its status and last "
        "answer. Order of arrival is not guaranteed: dedupe on `event_id` (the `webhook-id` header).",
        parameters=[
            ENDPOINT_PATH,
            *_page_parameters(s.DELIVERY_ID_PATTERN, "deliveries"),
            OpenApiParameter("status", enum=list(Delivery.Status.values), description="Only deliveries in this state."),
            OpenApiParameter("event_type", enum=list(catalogue.EVENT_TYPES), description="Only events of this type."),
        ],
        responses={200: s.DeliveryListOut, **error_responses(400, 404)},
    )
    def get(self, request, endpoint_id: str):
        self.query_params_check(PAGE_PARAMS | {"status", "event_type"})
        params = request.query_params
        page = page_request(params)
        status, event_type = params.get("status"), params.get("event_type")
        if status is not None and status not in Delivery.Status.values:
            raise ApiProblem(
                400, "invalid_request", f"`status` must be one of {', '.join(Delivery.Status.values)}.", param="status"
            )
        if event_type is not None and event_type not in catalogue.CATALOGUE:
            raise ApiProblem(
                400, "invalid_request", "`event_type` must be an event type of the catalogue.", param="event_type"
            )
        endpoint = _endpoint(self, endpoint_id)
        qs = selectors.delivery_list(livemode=self.livemode, endpoint=endpoint, status=status, event_type=event_type)

        def number(value: str) -> int:
            return int(value.removeprefix("dlv_"))

        rows, has_more = keyset_page(
            qs,
            order=["-pk"],
            limit=page.limit,
            after=_cursor(page.starting_after, "starting_after", DELIVERY_ID_RE, "pk", number),
            before=_cursor(page.ending_before, "ending_before", DELIVERY_ID_RE, "pk", number),
        )
        return Response(list_body(request, [s.delivery_out(d) for d in rows], has_more=has_more))


class EndpointDeliveryApi(ApiView):
    """One delivery of an endpoint, with every attempt's request and answer."""

    permissions = {"GET": "webhooks.manage"}

    @extend_schema(
        operation_id="webhook_endpoints_deliveries_retrieve",
        tags=[TAG],
        summary="Retrieve a delivery with its attempts",
        description="The delivery and each attempt: the request sent (headers, body) and the answer received "
        "(status, headers, the start of the body) or why none came. Bodies are erased after the workspace's "
        "payload retention.",
        parameters=[
            ENDPOINT_PATH,
            OpenApiParameter(
                "delivery_id",
                {"type": "string", "pattern": s.DELIVERY_ID_PATTERN},
                OpenApiParameter.PATH,
                description="The delivery's id (`dlv_…`).",
            ),
        ],
        responses={200: s.DeliveryDetailOut, **error_responses(400, 404)},
    )
    def get(self, request, endpoint_id: str, delivery_id: str):
        self.query_params_check(set())
        endpoint = _endpoint(self, endpoint_id)
        delivery = None
        if DELIVERY_ID_RE.fullmatch(delivery_id):
            delivery = (
                selectors.delivery_list(livemode=self.livemode, endpoint=endpoint)
                .filter(pk=int(delivery_id.removeprefix("dlv_")))
                .first()
            )
        if delivery is None:
            raise ApiProblem(404, "not_found", f"No delivery `{delivery_id[:64]}` of this endpoint.")
        return Response(s.delivery_out(delivery, selectors.delivery_attempts(delivery)))
