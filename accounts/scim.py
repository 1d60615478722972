"""SCIM 2.0 provisioning (RFC 7643/7644) at /scim/v2/, per workspace, with its own bearer token: the
workspace's IdP creates, updates, deactivates and deletes members, and its groups drive their roles
through the same group → role table as SSO log-ins.

Resources are parsed, patched, filtered and serialised by `scim2-models`; this module maps them to
members (`accounts.User`) and groups (`accounts.SCIMGroup`). Deactivating (or deleting) a member goes
through `member_remove`: their sessions end and `member.removed` revokes their paired devices.
Members are never hard-deleted (the audit log keeps referring to them): a deleted member is
deactivated and hidden from SCIM for good.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from pydantic import ValidationError
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    Email,
    ETag,
    Filter,
    GroupMember,
    GroupMembership,
    ListResponse,
    Meta,
    Patch,
    PatchOp,
    Required,
    ResourceType,
    ResponseParameters,
    SCIMException,
    ScimFilter,
    ServiceProviderConfig,
    Sort,
)
from scim2_models import Error as ScimError
from scim2_models import Group as ScimGroupResource
from scim2_models import User as ScimUser

from accounts.events import member_object
from accounts.identity import member_role_sync, role_for_groups
from accounts.models import SCIMGroup, SSOConfig, User
from accounts.services import AccountError, member_remove
from accounts.sso import scim_token_find
from audit.services import audit_event_record
from core.actors import Actor
from core.events import DomainEvent, event_emit, target_of
from rbac.roles import Role


class MemberResource(ScimUser):
    """SCIM's User as Tessera serves it: a member is always either active or not, so `active` is
    required (published so in /Schemas: that is how a SCIM client learns it). Requests that leave it
    out are still taken (RFC 7643 makes it optional, and some IdPs omit it): see _active_defaulted."""

    active: Annotated[bool | None, Required.true] = None


def _active_defaulted(body: dict, active: bool) -> dict:
    """A User body without `active` (any case, as SCIM attribute names are): a new member is active,
    a replaced one keeps their state. Without this scim2-models refuses the request (the attribute is
    required above), and a member an IdP created that way could never be created nor deactivated."""
    if any(key.lower() == "active" and value is not None for key, value in body.items()):
        return body
    return {**{k: v for k, v in body.items() if k.lower() != "active"}, "active": active}


CONTENT_TYPE = "application/scim+json"
# A member provisioned without any e-mail gets an address under this RFC 2606 reserved domain (never
# delivered, never shown as an e-mail over SCIM) until the IdP sends one; they sign in by SSO.
NO_EMAIL_DOMAIN = "scim.invalid"
MAX_RESULTS = 200
SCIM_ACTOR = Actor.system("SCIM")


class ScimProblem(Exception):
    def __init__(self, status: int, detail: str, scim_type: str | None = None):
        super().__init__(detail)
        self.status, self.detail, self.scim_type = status, detail, scim_type


def _respond(body: dict | None, status: int = 200, location: str | None = None) -> HttpResponse:
    response = HttpResponse(
        json.dumps(body) if body is not None else b"", status=status, content_type=CONTENT_TYPE if body else None
    )
    if location:
        response["Location"] = location
    return response


def _error(status: int, detail: str, scim_type: str | None = None) -> HttpResponse:
    return _respond(ScimError(status=status, scim_type=scim_type, detail=detail).model_dump(), status)


def _base(request: HttpRequest) -> str:
    return request.build_absolute_uri("/scim/v2")


def _body(request: HttpRequest) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise ScimProblem(400, "The request body is not JSON.", "invalidSyntax") from exc
    if not isinstance(body, dict):
        raise ScimProblem(400, "The request body must be a JSON object.", "invalidSyntax")
    return body


def _parse(model, body: dict, ctx: Context):
    try:
        return model.model_validate(body, scim_ctx=ctx)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"msg": str(exc)}
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ScimProblem(400, f"{where + ': ' if where else ''}{first['msg']}", "invalidValue") from exc
    except SCIMException as exc:
        raise ScimProblem(400, str(exc), getattr(exc, "scim_type", None) or "invalidValue") from exc


def scim_endpoint(view):
    """Bearer-token authentication, SCIM errors as SCIM error bodies (never a 500 for bad input)."""

    @csrf_exempt
    def wrapped(request: HttpRequest, *args, **kwargs):
        header = request.headers.get("Authorization", "")
        raw = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if scim_token_find(raw) is None:
            response = _error(401, "A valid SCIM bearer token is required.")
            response["WWW-Authenticate"] = 'Bearer realm="SCIM"'
            return response
        try:
            return view(request, *args, **kwargs)
        except ScimProblem as exc:
            return _error(exc.status, exc.detail, exc.scim_type)
        except AccountError as exc:
            return _error(409 if exc.status == 409 else 400, exc.message, "mutability" if exc.status == 409 else None)

    return wrapped


# --- members as SCIM Users ------------------------------------------------------------------------


def _version(user: User) -> str:
    return f'W/"{int(user.updated_at.timestamp() * 1000)}"'


# Attributes kept in their own columns (or computed); every other User attribute the IdP sends is kept
# as sent (scim_attributes) and returned as it was.
_COLUMN_ATTRIBUTES = {"id", "meta", "schemas", "userName", "active", "externalId", "groups", "password"}


def _valid_email(value: str) -> Email | None:
    try:
        return Email(value=value, primary=True, type="work")
    except ValidationError:
        return None  # an address accepted before (e.g. a reserved test domain): not shown over SCIM


def _kept(user: User) -> dict:
    kept = user.scim_attributes or {}
    if kept:
        return kept
    if not user.full_name:  # a member who never came through SCIM: their name as SCIM writes it
        return {}
    given, _, family = user.full_name.partition(" ")
    name = {"formatted": user.full_name, "givenName": given or None, "familyName": family or None}
    return {"name": {k: v for k, v in name.items() if v}, "displayName": user.full_name}


def user_resource(request: HttpRequest, user: User) -> MemberResource:
    resource = MemberResource.model_validate(_kept(user), scim_ctx=Context.DEFAULT)
    resource.id = str(user.pk)
    resource.external_id = user.scim_external_id or None
    resource.user_name = user.scim_user_name or user.email
    resource.active = user.is_active
    if not resource.emails and not user.email.endswith("@" + NO_EMAIL_DOMAIN):
        email = _valid_email(user.email)
        resource.emails = [email] if email else None
    resource.groups = [
        GroupMembership(
            value=group_scim_id(g), display=g.display_name, ref=f"{_base(request)}/Groups/{group_scim_id(g)}"
        )
        for g in user.scim_groups.all()
    ] or None
    resource.meta = Meta(
        resource_type="User",
        created=user.date_joined,
        last_modified=user.updated_at,
        location=f"{_base(request)}/Users/{user.pk}",
        version=_version(user),
    )
    return resource


def _query(request: HttpRequest) -> dict:
    """The query's parameters: from the URL (GET), or the SearchRequest body (POST …/.search)."""
    if request.method == "POST":
        body = _body(request)
        as_list = lambda v: ",".join(v) if isinstance(v, list) else (v or "")  # noqa: E731
        return {
            "filter": body.get("filter") or "",
            "startIndex": body.get("startIndex", 1),
            "count": body.get("count", MAX_RESULTS),
            "attributes": as_list(body.get("attributes")),
            "excludedAttributes": as_list(body.get("excludedAttributes")),
        }
    return request.GET


def _response_parameters(request: HttpRequest, model) -> ResponseParameters | None:
    query = _query(request) if request.method in ("GET", "POST") and request.path.endswith(".search") else request.GET
    attributes = [a.strip() for a in str(query.get("attributes", "")).split(",") if a.strip()]
    excluded = [a.strip() for a in str(query.get("excludedAttributes", "")).split(",") if a.strip()]
    if not attributes and not excluded:
        return None
    try:
        return ResponseParameters[model].model_validate(
            {"attributes": attributes or None, "excludedAttributes": excluded or None}
        )
    except (ValidationError, SCIMException) as exc:
        raise ScimProblem(400, f"attributes / excludedAttributes cannot be used: {exc}", "invalidPath") from exc


def _user_dump(request, user: User, ctx: Context = Context.RESOURCE_QUERY_RESPONSE) -> dict:
    return user_resource(request, user).model_dump(
        scim_ctx=ctx, response_parameters=_response_parameters(request, MemberResource)
    )


def _users() -> Any:
    return User.objects.filter(is_operator=False, scim_deleted_at=None).prefetch_related("scim_groups")


def _user_get(pk: str) -> User:
    user = _users().filter(pk=int(pk)).first() if str(pk).isdigit() else None
    if user is None:
        raise ScimProblem(404, f"No member {pk}.")
    return user


def _email_of(resource: ScimUser) -> str:
    """The member's e-mail: the primary one sent, else the first, else a userName that is one."""
    emails = [e.value for e in (resource.emails or []) if e.value]
    primary = [e.value for e in (resource.emails or []) if e.value and e.primary]
    email = (primary or emails or [resource.user_name if "@" in (resource.user_name or "") else ""])[0]
    if not email and resource.user_name:
        local = "".join(c if c.isalnum() or c in "._-" else "-" for c in resource.user_name.strip().lower())[:64]
        email = f"{local or 'member'}@{NO_EMAIL_DOMAIN}"
    return User.objects.normalize_email((email or "").strip()).lower()


def _sent_attributes(resource: ScimUser) -> dict:
    dumped = resource.model_dump(scim_ctx=Context.DEFAULT, mode="json")
    return {k: v for k, v in dumped.items() if k not in _COLUMN_ATTRIBUTES and v not in (None, [], {})}


def _user_name_taken(user_name: str, email: str, *, excluding: int | None = None) -> bool:
    others = User.objects.exclude(pk=excluding) if excluding else User.objects.all()
    return (
        others.filter(email__iexact=email).exists()
        or others.filter(scim_user_name__iexact=user_name).exists()
        or others.filter(scim_user_name="", email__iexact=user_name).exists()
    )


def _name_of(resource: ScimUser) -> str:
    if resource.name is not None:
        if resource.name.formatted:
            return resource.name.formatted[:150]
        joined = " ".join(p for p in (resource.name.given_name, resource.name.family_name) if p)
        if joined:
            return joined[:150]
    return (resource.display_name or "")[:150]


def member_provision(*, resource: ScimUser) -> User:
    """Create a member from a SCIM User (the workspace's default role; groups set roles later)."""
    email = _email_of(resource)
    if not email or "@" not in email:
        raise ScimProblem(400, "userName is required.", "invalidValue")
    user_name = (resource.user_name or email).strip()[:255]
    config = SSOConfig.objects.first()
    with transaction.atomic():
        if _user_name_taken(user_name, email):
            raise ScimProblem(409, f"A member with the userName or e-mail {user_name} already exists.", "uniqueness")
        user = User.objects.create_user(
            email=email,
            password=None,
            full_name=_name_of(resource),
            role=(config.default_role if config else Role.VIEWER) or Role.VIEWER,
            auth_source=User.AuthSource.SSO,
            scim_external_id=(resource.external_id or "")[:255],
            scim_user_name=user_name,
            scim_attributes=_sent_attributes(resource),
        )
        event_emit(
            DomainEvent(
                type="member.joined",
                actor=SCIM_ACTOR,
                data={"object": member_object(user)},
                target=target_of(user),
                changes={"after": {"role": user.role, "via": "SCIM"}},
            )
        )
        if resource.active is False:
            member_remove(actor=SCIM_ACTOR, member=user)
            user.refresh_from_db()
    return user


def member_replace(*, user: User, resource: ScimUser) -> User:
    """Apply a SCIM User (PUT, or a PATCH already applied to the current one) to the member."""
    email = _email_of(resource)
    if not email or "@" not in email:
        raise ScimProblem(400, "userName is required.", "invalidValue")
    user_name = (resource.user_name or email).strip()[:255]
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        before = {"email": user.email, "full_name": user.full_name, "external_id": user.scim_external_id}
        if _user_name_taken(user_name, email, excluding=user.pk):
            raise ScimProblem(409, f"Another member has the userName or e-mail {user_name}.", "uniqueness")
        user.email, user.full_name = email, _name_of(resource)
        user.scim_external_id = (resource.external_id or "")[:255]
        user.scim_user_name, user.scim_attributes = user_name, _sent_attributes(resource)
        after = {"email": user.email, "full_name": user.full_name, "external_id": user.scim_external_id}
        user.save(
            update_fields=["email", "full_name", "scim_external_id", "scim_user_name", "scim_attributes", "updated_at"]
        )
        if after != before:
            audit_event_record(
                action="member.updated",
                actor=SCIM_ACTOR,
                target=user,
                changes={k: {"before": before[k], "after": after[k]} for k in after if after[k] != before[k]},
            )
        if resource.active is False and user.is_active:
            member_remove(actor=SCIM_ACTOR, member=user)
        elif resource.active is True and not user.is_active:
            _member_reactivate(user)
    user.refresh_from_db()
    return user


def _member_reactivate(user: User) -> None:
    user.is_active, user.deactivated_at = True, None
    user.save(update_fields=["is_active", "deactivated_at", "updated_at"])
    event_emit(
        DomainEvent(
            type="member.joined",
            actor=SCIM_ACTOR,
            data={"object": member_object(user)},
            target=target_of(user),
            changes={"after": {"role": user.role, "via": "SCIM reactivation"}},
        )
    )


def member_deprovision(*, user: User) -> None:
    """SCIM DELETE: deactivate (sessions end, devices revoked) and hide from SCIM for good."""
    with transaction.atomic():
        if user.is_active:
            member_remove(actor=SCIM_ACTOR, member=user)
        User.objects.filter(pk=user.pk).update(scim_deleted_at=timezone.now())
        SCIMGroup.members.through.objects.filter(user_id=user.pk).delete()


def _filtered(resources: list, model, raw_filter: str) -> list:
    if not raw_filter:
        return resources
    try:
        bound = ScimFilter[model](raw_filter)
        return [r for r in resources if bound.match(r)]
    except (SCIMException, TypeError, ValueError) as exc:
        raise ScimProblem(400, f"The filter cannot be used: {exc}", "invalidFilter") from exc


def _list(request: HttpRequest, kinds: list[tuple[list, type]]) -> HttpResponse:
    """One page of the resources of `kinds` ([(resources, model)]) the query's filter keeps."""
    query = _query(request)
    resources = [r for items, model in kinds for r in _filtered(items, model, query.get("filter") or "")]
    try:
        start = max(int(query.get("startIndex", 1)), 1)
        count = min(max(int(query.get("count", MAX_RESULTS)), 0), MAX_RESULTS)
    except (TypeError, ValueError) as exc:
        raise ScimProblem(400, "startIndex and count must be integers.", "invalidValue") from exc
    page = resources[start - 1 : start - 1 + count]
    params = {model: _response_parameters(request, model) for _, model in kinds}
    body = ListResponse[kinds[0][1]](total_results=len(resources), start_index=start, items_per_page=len(page))
    dumped = body.model_dump(scim_ctx=Context.SEARCH_RESPONSE)
    dumped["Resources"] = [
        r.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=params[type(r)]) for r in page
    ]
    return _respond(dumped)


@scim_endpoint
def search(request: HttpRequest, resource_type: str = "") -> HttpResponse:
    """POST /.search, /Users/.search, /Groups/.search (RFC 7644 §3.4.3); the root searches members."""
    if request.method != "POST":
        return _error(405, "Use POST.")
    users = ([user_resource(request, u) for u in _users()], MemberResource)
    groups = ([group_resource(request, g) for g in _groups()], ScimGroupResource)
    kinds = {"": [users, groups], "Users": [users], "Groups": [groups]}.get(resource_type)
    if kinds is None:
        raise ScimProblem(404, f"There is no /scim/v2/{resource_type[:100]}/.search here.")
    return _list(request, kinds)


@scim_endpoint
def users(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _list(request, [([user_resource(request, u) for u in _users()], MemberResource)])
    if request.method == "POST":
        resource = _parse(MemberResource, _active_defaulted(_body(request), True), Context.RESOURCE_CREATION_REQUEST)
        user = member_provision(resource=resource)
        body = _user_dump(request, user, Context.RESOURCE_CREATION_RESPONSE)
        return _respond(body, 201, location=body["meta"]["location"])
    return _error(405, "Use GET or POST.")


@scim_endpoint
def user_detail(request: HttpRequest, pk: str) -> HttpResponse:
    user = _user_get(pk)
    if request.method == "GET":
        return _respond(_user_dump(request, user))
    if request.method == "PUT":
        body = _active_defaulted(_body(request), user.is_active)
        resource = _parse(MemberResource, body, Context.RESOURCE_REPLACEMENT_REQUEST)
        user = member_replace(user=user, resource=resource)
        return _respond(_user_dump(request, user, Context.RESOURCE_REPLACEMENT_RESPONSE))
    if request.method == "PATCH":
        patch = _parse(PatchOp[MemberResource], _body(request), Context.RESOURCE_PATCH_REQUEST)
        current = user_resource(request, user)
        try:
            patch.patch(current)
        except SCIMException as exc:
            raise ScimProblem(400, str(exc), getattr(exc, "scim_type", None) or "invalidValue") from exc
        user = member_replace(user=user, resource=current)
        return _respond(_user_dump(request, user, Context.RESOURCE_PATCH_RESPONSE))
    if request.method == "DELETE":
        member_deprovision(user=user)
        return HttpResponse(status=204)
    return _error(405, "Use GET, PUT, PATCH or DELETE.")


# --- groups ---------------------------------------------------------------------------------------


def group_resource(request: HttpRequest, group: SCIMGroup) -> ScimGroupResource:
    return ScimGroupResource(
        id=group_scim_id(group),
        external_id=group.external_id or None,
        display_name=group.display_name,
        members=[
            GroupMember(
                value=str(u.pk),
                display=group.member_displays.get(str(u.pk)) or u.email,
                ref=f"{_base(request)}/Users/{u.pk}",
                type="User",
            )
            for u in group.members.all()
        ]
        or None,
        meta=Meta(
            resource_type="Group",
            created=group.created_at,
            last_modified=group.updated_at,
            location=f"{_base(request)}/Groups/{group_scim_id(group)}",
            version=f'W/"{int(group.updated_at.timestamp() * 1000)}"',
        ),
    )


def _groups() -> Any:
    return SCIMGroup.objects.prefetch_related("members")


def group_scim_id(group: SCIMGroup) -> str:
    """A group's SCIM id. RFC 7643 §3.1 wants ids unique across every resource the server holds, and
    members' ids are their numbers: a group numbered like a member would be two resources with one id
    (a root /.search answering both, an IdP matching the wrong one)."""
    return f"g{group.pk}"


def _group_get(scim_id: str) -> SCIMGroup:
    number = str(scim_id)[1:] if str(scim_id).startswith("g") else ""
    group = _groups().filter(pk=int(number)).first() if number.isdigit() else None
    if group is None:
        raise ScimProblem(404, f"No group {scim_id[:100]}.")
    return group


def _roles_resync(users: set[int]) -> None:
    """Members whose groups changed get the role their groups map to (last-Admin rule kept)."""
    config = SSOConfig.objects.first()
    default = (config.default_role if config else Role.VIEWER) or Role.VIEWER
    for user in User.objects.filter(pk__in=users, is_active=True).prefetch_related("scim_groups"):
        names = [g.display_name for g in user.scim_groups.all()]
        member_role_sync(
            user=user, role=role_for_groups(names, default=default), actor=SCIM_ACTOR, reason="SCIM groups"
        )


def group_save(*, group: SCIMGroup | None, resource: ScimGroupResource) -> SCIMGroup:
    name = (resource.display_name or "").strip()[:255]
    if not name:
        raise ScimProblem(400, "displayName is required.", "invalidValue")
    member_ids, displays = set(), {}
    for member in resource.members or []:
        if not str(member.value or "").isdigit() or not _users().filter(pk=int(member.value)).exists():
            raise ScimProblem(400, f"No member {member.value}.", "invalidValue")
        member_ids.add(int(member.value))
        if member.display:
            displays[str(member.value)] = member.display[:255]
    with transaction.atomic():
        if SCIMGroup.objects.filter(display_name=name).exclude(pk=getattr(group, "pk", None)).exists():
            raise ScimProblem(409, f"A group named {name} already exists.", "uniqueness")
        created = group is None
        group = group or SCIMGroup()
        before = set() if created else set(group.members.values_list("pk", flat=True))
        before_name = group.display_name
        group.display_name, group.external_id = name, (resource.external_id or "")[:255]
        group.member_displays = displays
        group.save()
        group.members.set(member_ids)
        audit_event_record(
            action="scim.group_changed",
            actor=SCIM_ACTOR,
            target=("scim_group", group.pk, name),
            changes={
                "created" if created else "updated": name,
                "added": sorted(member_ids - before),
                "removed": sorted(before - member_ids),
                **({"renamed_from": before_name} if before_name and before_name != name else {}),
            },
        )
        _roles_resync(member_ids | before)
    return _group_get(group_scim_id(group))


@scim_endpoint
def groups(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _list(request, [([group_resource(request, g) for g in _groups()], ScimGroupResource)])
    if request.method == "POST":
        resource = _parse(ScimGroupResource, _body(request), Context.RESOURCE_CREATION_REQUEST)
        group = group_save(group=None, resource=resource)
        body = group_resource(request, group).model_dump(scim_ctx=Context.RESOURCE_CREATION_RESPONSE)
        return _respond(body, 201, location=body["meta"]["location"])
    return _error(405, "Use GET or POST.")


@scim_endpoint
def group_detail(request: HttpRequest, pk: str) -> HttpResponse:
    group = _group_get(pk)
    if request.method == "GET":
        params = _response_parameters(request, ScimGroupResource)
        return _respond(
            group_resource(request, group).model_dump(
                scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=params
            )
        )
    if request.method in ("PUT", "PATCH"):
        if request.method == "PUT":
            resource = _parse(ScimGroupResource, _body(request), Context.RESOURCE_REPLACEMENT_REQUEST)
        else:
            patch = _parse(PatchOp[ScimGroupResource], _body(request), Context.RESOURCE_PATCH_REQUEST)
            resource = group_resource(request, group)
            try:
                patch.patch(resource)
            except SCIMException as exc:
                raise ScimProblem(400, str(exc), getattr(exc, "scim_type", None) or "invalidValue") from exc
        group = group_save(group=group, resource=resource)
        ctx = Context.RESOURCE_REPLACEMENT_RESPONSE if request.method == "PUT" else Context.RESOURCE_PATCH_RESPONSE
        return _respond(group_resource(request, group).model_dump(scim_ctx=ctx))
    if request.method == "DELETE":
        with transaction.atomic():
            members = set(group.members.values_list("pk", flat=True))
            audit_event_record(
                action="scim.group_changed",
                actor=SCIM_ACTOR,
                target=("scim_group", group.pk, group.display_name),
                changes={"deleted": group.display_name, "removed": sorted(members)},
            )
            group.delete()
            _roles_resync(members)
        return HttpResponse(status=204)
    return _error(405, "Use GET, PUT, PATCH or DELETE.")


# --- discovery ------------------------------------------------------------------------------------


def _resource_types(request: HttpRequest) -> list[ResourceType]:
    out = []
    for model in (MemberResource, ScimGroupResource):
        rt = ResourceType.from_resource(model)
        rt.meta = Meta(resource_type="ResourceType", location=f"{_base(request)}/ResourceTypes/{rt.id}")
        out.append(rt)
    return out


def _schemas(request: HttpRequest) -> list:
    out = []
    for model in (MemberResource, ScimGroupResource):
        schema = model.to_schema()
        schema.meta = Meta(resource_type="Schema", location=f"{_base(request)}/Schemas/{schema.id}")
        out.append(schema)
    return out


@scim_endpoint
def service_provider_config(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _error(405, "Use GET.")
    config = ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="Bearer token",
                description="The workspace's SCIM token (console: Single sign-on).",
                primary=True,
            )
        ],
        meta=Meta(resource_type="ServiceProviderConfig", location=f"{_base(request)}/ServiceProviderConfig"),
    )
    return _respond(config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))


def _discovery_list(request, items, pk):
    if request.method != "GET":
        return _error(405, "Use GET.")
    if pk is not None:
        for item in items:
            if item.id == pk:
                return _respond(item.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
        raise ScimProblem(404, f"No {pk}.")
    body = ListResponse[type(items[0])](
        total_results=len(items), start_index=1, items_per_page=len(items), resources=items
    ).model_dump(scim_ctx=Context.SEARCH_RESPONSE)
    return _respond(body)


@scim_endpoint
def resource_types(request: HttpRequest, pk: str | None = None) -> HttpResponse:
    return _discovery_list(request, _resource_types(request), pk)


@scim_endpoint
def schemas(request: HttpRequest, pk: str | None = None) -> HttpResponse:
    return _discovery_list(request, _schemas(request), pk)


@scim_endpoint
def not_found(request: HttpRequest, rest: str) -> HttpResponse:
    return _error(404, f"There is no /scim/v2/{rest[:100]} here.")
