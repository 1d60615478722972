"""The data-subject requests API (/api/v1/subject_requests): list, open, retrieve, extend, erase,
make the access package link, close. Needs the `compliance:manage` scope and a live key (a test key
must never reach real people's data)."""

from __future__ import annotations

import re

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from api.base import ApiView
from api.idempotency import idempotent
from api.pagination import PAGE_PARAMS, keyset_page, list_body, page_request
from api.problems import ApiProblem
from api.schema import IDEMPOTENCY_KEY, error_responses
from privacy import selectors, services
from privacy.api import serializers as s
from privacy.models import SubjectRequest

TAG = "Data-subject requests"
REQUEST_ID_RE = re.compile(s.REQUEST_ID_PATTERN)
REQUEST_PATH = OpenApiParameter(
    "request_id", {"type": "string", "pattern": s.REQUEST_ID_PATTERN}, OpenApiParameter.PATH
)


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class _Compliance(ApiView):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not self.livemode:
            raise ApiProblem(403, "livemode_required", "Data-subject requests need a live key.")

    def _get(self, request_id: str) -> SubjectRequest:
        found = selectors.subject_request_get(request_id) if REQUEST_ID_RE.fullmatch(request_id) else None
        if found is None:
            raise ApiProblem(404, "not_found", f"No subject request `{request_id[:64]}`.")
        return found


def _out(dsr: SubjectRequest) -> dict:
    return s.SubjectRequestOut(dsr).data


class SubjectRequestsApi(_Compliance):
    permissions = {"GET": "compliance.manage", "POST": "compliance.manage"}

    @extend_schema(
        operation_id="subject_requests_list",
        tags=[TAG],
        summary="List data-subject requests",
        description="Soonest due first. `status`: open, overdue, completed, rejected.",
        responses={200: s.SubjectRequestListOut, **error_responses(400)},
    )
    def get(self, request):
        self.query_params_check(PAGE_PARAMS | {"status"})
        status = request.query_params.get("status", "")
        if status not in ("", "open", "overdue", "completed", "rejected"):
            raise ApiProblem(400, "invalid_request", "Unknown `status`.", param="status")
        page = page_request(request.query_params)
        cursor = None
        if page.starting_after:
            after = self._get(page.starting_after)
            cursor = {"due_at": after.due_at, "id": after.pk}
        rows, has_more = keyset_page(
            selectors.subject_request_list(status=status), order=["due_at", "id"], limit=page.limit, after=cursor
        )
        return Response(list_body(request, [_out(r) for r in rows], has_more=has_more))

    @extend_schema(
        operation_id="subject_requests_create",
        tags=[TAG],
        summary="Open a data-subject request",
        description="Due 30 days after `received_at` under the GDPR, 45 under the CCPA.",
        request=s.SubjectRequestCreateIn,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: s.SubjectRequestOut, **error_responses(400, 413, 415, 422)},
    )
    @idempotent
    def post(self, request):
        self.query_params_check(set())
        data = validated(s.SubjectRequestCreateIn, request.data)
        dsr = services.subject_request_open(
            actor=request.user,
            kind=data["kind"],
            regime=data["regime"],
            subject_identifier=data["subject"],
            requested_by=data["requested_by"],
            verification=data["verification"],
            received_at=data.get("received_at"),
        )
        location = reverse("api:subject_request", kwargs={"request_id": dsr.pk})
        return Response(_out(dsr), status=201, headers={"Location": location})


class SubjectRequestApi(_Compliance):
    permissions = {"GET": "compliance.manage"}

    @extend_schema(
        operation_id="subject_requests_retrieve",
        tags=[TAG],
        summary="Retrieve a data-subject request",
        parameters=[REQUEST_PATH],
        responses={200: s.SubjectRequestOut, **error_responses(404)},
    )
    def get(self, request, request_id: str):
        self.query_params_check(set())
        return Response(_out(self._get(request_id)))


class _SubjectRequestActionApi(_Compliance):
    permissions = {"POST": "compliance.manage"}


def _action_schema(name: str, summary: str, description: str, request=None, response=s.SubjectRequestOut):
    return extend_schema(
        operation_id=f"subject_requests_{name}",
        tags=[TAG],
        summary=summary,
        description=description,
        parameters=[REQUEST_PATH],
        request=request,
        responses={200: response, **error_responses(400, 404, 409, 413, 415, 422)},
    )


class SubjectRequestExtendApi(_SubjectRequestActionApi):
    @_action_schema(
        "extend",
        "Extend the due date",
        "Once per request: GDPR by 60 days (art. 12(3)), CCPA by 45. 409 `already_extended` the second time.",
        request=s.SubjectRequestExtendIn,
    )
    def post(self, request, request_id: str):
        self.query_params_check(set())
        dsr = self._get(request_id)
        data = validated(s.SubjectRequestExtendIn, request.data)
        return Response(_out(services.subject_request_extend(actor=request.user, request=dsr, reason=data["reason"])))


class SubjectRequestEraseApi(_SubjectRequestActionApi):
    @_action_schema(
        "erase",
        "Erase the subject's data",
        "Erases every record the personal-data map finds for the subject, everywhere (history, webhook "
        "payloads and logs, cached responses, the audit vault), sends `record.deleted` to webhooks and phones, "
        "and completes the request with its `certificate`. The request forgets the subject's identifier.",
    )
    def post(self, request, request_id: str):
        self.query_params_check(set())
        dsr = self._get(request_id)
        return Response(_out(services.subject_request_erase(actor=request.user, request=dsr)))


class SubjectRequestRectifyApi(_SubjectRequestActionApi):
    @_action_schema(
        "rectify",
        "Correct the subject's data",
        "Writes `corrections` to every live record of the subject whose collection has those fields, through "
        "the usual edit path (validated, audited, sent to webhooks and phones), all or none, and completes the "
        "request with its `certificate`. 400 when no record of the subject has a field named. An API key needs "
        "the `records:write` scope too (a correction is an edit).",
        request=s.SubjectRequestRectifyIn,
    )
    def post(self, request, request_id: str):
        self.query_params_check(set())
        dsr = self._get(request_id)
        data = validated(s.SubjectRequestRectifyIn, request.data)
        return Response(
            _out(services.subject_request_rectify(actor=request.user, request=dsr, corrections=data["corrections"]))
        )


class SubjectRequestRestrictApi(_SubjectRequestActionApi):
    @_action_schema(
        "restrict",
        "Restrict the processing of the subject's data",
        "GDPR art. 18: every live record of the subject is kept but no longer processed: edits are refused "
        "(409 `subject_restricted`), exports and analytics leave it out, webhook deliveries about it are held "
        "and phones drop it. Completes the request with its `certificate`; the restriction stays in force "
        "until lifted (`lift_restriction`).",
    )
    def post(self, request, request_id: str):
        self.query_params_check(set())
        dsr = self._get(request_id)
        return Response(_out(services.subject_request_restrict(actor=request.user, request=dsr)))


class SubjectRequestLiftApi(_SubjectRequestActionApi):
    @_action_schema(
        "lift_restriction",
        "Lift the restriction",
        "The records the request restricted are processed again (held webhook deliveries go out, phones get "
        "them back). Audited. 409 `not_restricted` when no restriction of this request is in force.",
        request=s.SubjectRequestLiftIn,
    )
    def post(self, request, request_id: str):
        self.query_params_check(set())
        dsr = self._get(request_id)
        data = validated(s.SubjectRequestLiftIn, request.data)
        return Response(
            _out(services.subject_request_restriction_lift(actor=request.user, request=dsr, reason=data["reason"]))
        )


class SubjectRequestPackageApi(_SubjectRequestActionApi):
    @_action_schema(
        "package",
        "Make the access package link",
        "A signed link to a ZIP of everything held about the subject (JSON and CSV, with a README). "
        "It needs no log-in and stops working at `expires_at`.",
        response=s.PackageLinkOut,
    )
    def post(self, request, request_id: str):
        self.query_params_check(set())
        dsr = self._get(request_id)
        token, expires_at = services.subject_request_package(actor=request.user, request=dsr)
        url = request.build_absolute_uri(reverse("privacy:package", args=[token]))
        return Response(s.PackageLinkOut({"object": "package_link", "url": url, "expires_at": expires_at}).data)


class SubjectRequestCloseApi(_SubjectRequestActionApi):
    @_action_schema(
        "close",
        "Close the request",
        "As completed (access sent, rectified, restricted) or rejected (a `note` says why).",
        request=s.SubjectRequestCloseIn,
    )
    def post(self, request, request_id: str):
        self.query_params_check(set())
        dsr = self._get(request_id)
        data = validated(s.SubjectRequestCloseIn, request.data)
        closed = services.subject_request_close(
            actor=request.user, request=dsr, status=data["status"], note=data["note"]
        )
        return Response(_out(closed))
