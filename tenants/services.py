"""Provisioning: a new workspace's tenant row, domain and schema (cloned from the migrated template).

Who its first members are is onboarding's business (accounts.onboarding); `tenant_provision` runs the
caller's `populate` inside the new schema and the same transaction, so a sign-up is all or nothing.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from core.errors import ServiceError
from tenants.backends import tenancy_backend
from tenants.hostcache import workspace_changed
from tenants.models import Domain, HeldSlug, Tenant, validate_workspace_slug
from tenants.runtime import public_context, workspace_context, workspace_sockets_close

if settings.TESSERA_DIRECTORY_ENABLED:  # SaaS: slugs are unique across cells (the desktop has no directory)
    from directory import selectors as directory_selectors
    from directory import services as directory_services

logger = logging.getLogger(__name__)


class ProvisioningError(ServiceError):
    """A workspace that cannot be created; `param` names the input at fault."""


@dataclass(frozen=True)
class Provisioned:
    tenant: Tenant
    populated: Any  # what the caller's `populate` returned (onboarding: the first Admin)
    seconds: float


_template_checked = False


def tenant_template_ensure() -> Tenant:
    """The template tenant exists and is fully migrated (a stale template would clone broken tenants)."""
    global _template_checked
    # SaaS only, so loaded here: the desktop never provisions and does not pay for these modules.
    from django.core.management import call_command

    from tenants.migration import schemas_pending

    backend = tenancy_backend()
    schema = settings.TESSERA_TEMPLATE_SCHEMA
    with public_context():
        template = Tenant.objects.filter(schema_name=schema).first()
        if template is None:
            template = Tenant(schema_name=schema, name="Template", slug="-template", is_template=True)
            template.save()
        if not _template_checked or not _schema_exists(schema):
            if not _schema_exists(schema):
                template.create_schema(check_if_exists=True, verbosity=0)
            elif schemas_pending([schema]):
                call_command("migrate_schemas", schema_name=schema, tenant=True, interactive=False, verbosity=0)
            _template_checked = True
    assert backend.multi_tenant
    return template


def _schema_exists(schema: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        return cursor.fetchone() is not None


def tenant_schema_prepare(*, schema_name: str) -> None:
    """An empty copy of the migrated template's tables as `schema_name` (a workspace moving in from
    another cell fills it: cells.moves). Its own transaction."""
    template = tenant_template_ensure()
    with public_context():
        _schema_clone(template.schema_name, schema_name, mode="NODATA")


def tenant_schema_drop(*, schema_name: str) -> None:
    """Remove a schema no tenant row names (a move that failed half-way)."""
    with public_context(), connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {connection.ops.quote_name(schema_name)} CASCADE")


def _schema_clone(source: str, target: str, mode: str = "DATA") -> None:
    from django_tenants.clone import CloneSchema  # SaaS only (see tenant_template_ensure)

    class OnceInstalled(CloneSchema):
        _create_clone_schema_function = staticmethod(_clone_function_ensure)

    # clone_schema() joins catalog views to each other (pg_indexes to pg_indexes, per table). Left to
    # merge them, the planner can pair every schema's copy of a table before filtering by schema:
    # 16-36 s a clone was seen at 200 tenants. from_collapse_limit = 1 plans each view on its own;
    # only for this call, restored after it.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('from_collapse_limit'), set_config('from_collapse_limit', '1', true)")
        previous = cursor.fetchone()[0]
        OnceInstalled().clone_schema(source, target, mode, set_connection=False)
        cursor.execute("SELECT set_config('from_collapse_limit', %s, true)", [previous])


def _clone_function_ensure() -> None:
    """Install django-tenants' clone_schema() SQL once per database, not on every clone as it does.

    Re-installing it (DROP TYPE ... CASCADE, then ~4,500 lines of PL/pgSQL) cost 20-40 ms of every
    sign-up and left dead catalog rows behind. A comment on the function holds a hash of the SQL that
    made it: another django-tenants version (whose SQL drops and recreates the function, comment
    included) or database user reinstalls it.
    """
    from django_tenants.clone import CLONE_SCHEMA_FUNCTION

    db_user = settings.DATABASES["default"].get("USER", None) or "postgres"
    ddl = CLONE_SCHEMA_FUNCTION.format(db_user=db_user)
    tag = "tessera:" + hashlib.sha256(ddl.encode()).hexdigest()[:32]
    installed = (
        "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'public' AND p.proname = 'clone_schema' AND obj_description(p.oid, 'pg_proc') = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(installed, [tag])
        if cursor.fetchone():
            return
        with transaction.atomic():
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('tessera.clone_schema'))")
            cursor.execute(installed, [tag])  # another sign-up may have installed it while we waited
            if cursor.fetchone():
                return
            cursor.execute(ddl)
            cursor.execute(f"COMMENT ON FUNCTION public.clone_schema(text, text, public.cloneparms[]) IS '{tag}'")


def tenant_slug_check(slug: str) -> str:
    slug = (slug or "").strip().lower()
    try:
        validate_workspace_slug(slug)
    except ValidationError as exc:
        raise ProvisioningError(exc.messages[0], param="slug") from exc
    backend = tenancy_backend()
    schema = backend.schema_name_for(slug)
    with public_context():
        if (
            Tenant.objects.filter(slug=slug).exists()
            or Tenant.objects.filter(schema_name=schema).exists()
            # a schema left behind by a removed workspace: cloning onto it would fail
            or (backend.multi_tenant and _schema_exists(schema))
        ):
            raise ProvisioningError("That address is already taken.", param="slug", code="slug_taken", status=409)
        held = HeldSlug.objects.filter(slug=slug, held_until__gt=timezone.now()).first()
        if held is not None:
            raise ProvisioningError(
                f"That address belonged to a workspace that was removed; it is free again on "
                f"{held.held_until:%Y-%m-%d}.",
                param="slug",
                code="slug_taken",
                status=409,
            )
    if settings.TESSERA_DIRECTORY_ENABLED and _directory_call(directory_selectors.slug_reserved, slug):
        # another cell holds it (or is creating it right now)
        raise ProvisioningError("That address is already taken.", param="slug", code="slug_taken", status=409)
    return slug


def _directory_call(function, *args, **kwargs):
    """A directory read or write; the directory being unreachable refuses the sign-up, clearly."""
    try:
        return function(*args, **kwargs)
    except DatabaseError as exc:
        logger.exception("the cells' directory is unreachable")
        raise ProvisioningError(
            "Workspaces cannot be created right now. Please try again in a few minutes.",
            code="directory_unavailable",
            status=503,
        ) from exc


def tenant_provision(*, name: str, slug: str, plan: str, populate: Callable[[Tenant], Any]) -> Provisioned:
    """Create a workspace: tenant row, domain, schema (cloned), then `populate(tenant)` inside the new
    schema. All in one transaction: if `populate` raises, nothing is left behind."""
    started = time.perf_counter()
    backend = tenancy_backend()
    if not backend.multi_tenant:
        raise ProvisioningError("This installation holds a single business.", param="slug")
    name = (name or "").strip()
    if not name:
        raise ProvisioningError("Enter your business name.", param="name")
    slug = tenant_slug_check(slug)
    template = tenant_template_ensure()

    # The directory (another database) first: two cells cannot both create `slug`. Released again
    # if the workspace's own transaction fails; activated once it has committed.
    if settings.TESSERA_DIRECTORY_ENABLED:
        try:
            _directory_call(
                directory_services.workspace_location_reserve,
                slug=slug,
                cell=settings.TESSERA_CELL,
                region=settings.TESSERA_REGION,
            )
        except directory_services.SlugTaken as exc:
            raise ProvisioningError(exc.message, param="slug", code="slug_taken", status=409) from exc
    try:
        with public_context(), transaction.atomic():
            tenant = Tenant(schema_name=backend.schema_name_for(slug), name=name[:120], slug=slug, plan=plan)
            tenant.save()
            Domain.objects.create(domain=f"{slug}.{settings.TESSERA_BASE_DOMAIN}", tenant=tenant, is_primary=True)
            _schema_clone(template.schema_name, tenant.schema_name)
            with workspace_context(tenant):
                populated = populate(tenant)
    except BaseException:
        if settings.TESSERA_DIRECTORY_ENABLED:
            directory_services.workspace_location_release(slug=slug, cell=settings.TESSERA_CELL)
        raise
    if settings.TESSERA_DIRECTORY_ENABLED:
        directory_services.workspace_location_activate(slug=slug, cell=settings.TESSERA_CELL)
    seconds = time.perf_counter() - started
    logger.info("tenant provisioned", extra={"tenant": tenant.schema_name, "seconds": round(seconds, 3)})
    return Provisioned(tenant=tenant, populated=populated, seconds=seconds)


def tenant_single_ensure(*, name: str = "My business") -> Tenant:
    """Desktop: the one tenant row, created on first run."""
    backend = tenancy_backend()
    tenant = backend.current()
    if tenant is None:
        tenant = Tenant(schema_name=backend.schema_name_for(backend.SINGLE_SLUG), name=name, slug=backend.SINGLE_SLUG)
        tenant.save()
    return tenant


def tenant_drop(*, tenant: Tenant, hold_slug: bool = True) -> None:
    """Remove a business and its schema (operators and tests only); its open sockets close at once, and
    its address is held back from sign-ups for TESSERA_SLUG_HOLD_DAYS (`hold_slug=False`: tests that
    reuse an address)."""
    days = int(settings.TESSERA_SLUG_HOLD_DAYS)
    with public_context(), transaction.atomic():
        tenant.delete(force_drop=True)
        if hold_slug and days > 0:
            HeldSlug.objects.update_or_create(
                slug=tenant.slug, defaults={"held_until": timezone.now() + timedelta(days=days)}
            )
    if settings.TESSERA_DIRECTORY_ENABLED:
        directory_services.workspace_location_release(slug=tenant.slug, cell=settings.TESSERA_CELL)
    workspace_sockets_close(tenant)


def tenant_status_set(*, tenant: Tenant, status: str) -> None:
    """Suspend or reactivate a business; a suspended one's open sockets close at once (its HTTP
    answers 403 from the next request: tenants.middleware)."""
    with public_context():
        Tenant.objects.filter(pk=tenant.pk).update(status=status)
        workspace_changed(tenant.pk)  # an update() sends no post_save: every process forgets the host
    tenant.status = status
    if status != Tenant.Status.ACTIVE:
        workspace_sockets_close(tenant)
