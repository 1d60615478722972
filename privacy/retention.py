"""Retention policies: records past their collection's policy are erased or anonymised through the
write spine (records.services.record_erase), so webhooks, phones, the audit vault and cached answers
all hear of it; logs past theirs (webhook deliveries, log-in attempts: settings.TESSERA_LOG_RETENTION)
are deleted by the app that owns them. A dry run lists exactly what the real run would take; every
run is audited."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string

from audit.services import audit_event_record
from core.actors import Actor, Principal
from core.errors import ServiceError
from privacy.models import LogRetentionPolicy, PersonalDataField, RetentionPolicy, RetentionRun
from privacy.services import compliance_require
from records.models import Collection, Record
from records.services import record_erase

RUN_IDS_KEPT = 10_000  # a run keeps up to this many record ids (what a dry run shows and a report lists)


def _personal_fields(collection: Collection) -> list[str]:
    return list(
        PersonalDataField.objects.filter(collection=collection)
        .order_by("field_key")
        .values_list("field_key", flat=True)
    )


def retention_policy_set(
    *,
    actor: Actor | Principal,
    collection: Collection,
    days: int,
    action: str = RetentionPolicy.Action.ERASE,
    status_field: str = "",
    status_value: str = "",
    enabled: bool = True,
) -> RetentionPolicy:
    compliance_require(actor)
    if not isinstance(days, int) or not 1 <= days <= 36500:
        raise ServiceError("Keep records between 1 and 36,500 days.", param="days")
    if action not in RetentionPolicy.Action.values:
        raise ServiceError("Choose erase or anonymise.", param="action")
    if status_field and collection.field(status_field) is None:
        raise ServiceError(f"No field {status_field} in {collection.slug}.", param="status_field")
    if status_field and not status_value:
        raise ServiceError("Say which status value the policy applies to.", param="status_value")
    if action == RetentionPolicy.Action.ANONYMISE and not _personal_fields(collection):
        raise ServiceError(
            "Mark the collection's personal fields in the personal-data map first: anonymising removes them.",
            param="action",
        )
    with transaction.atomic():
        policy, _ = RetentionPolicy.objects.update_or_create(
            collection=collection,
            defaults={
                "days": days,
                "action": action,
                "status_field": status_field,
                "status_value": status_value if status_field else "",
                "enabled": enabled,
            },
        )
        audit_event_record(
            action="retention_policy.changed",
            actor=actor,
            target=collection,
            changes={
                "after": {
                    "days": days,
                    "action": action,
                    "status_field": status_field,
                    "status_value": policy.status_value,
                    "enabled": enabled,
                }
            },
        )
    return policy


def retention_candidates(policy: RetentionPolicy, *, cutoff: datetime) -> QuerySet[Record]:
    """The live records the policy takes at `cutoff` (not changed since), oldest change first. A record
    whose processing is restricted is kept (GDPR art. 18(1)(c): the subject may need it for a claim)."""
    qs = Record.objects.filter(
        collection_id=policy.collection_id, livemode=True, updated_at__lt=cutoff, restricted_at=None
    )
    if policy.status_field:
        qs = qs.filter(**{f"data__{policy.status_field}": policy.status_value})
    if policy.action == RetentionPolicy.Action.ANONYMISE:
        personal = _personal_fields(policy.collection)
        has_any = Q()
        for key in personal:
            has_any |= Q(data__has_key=key)
        qs = qs.filter(has_any, deleted_at=None) if personal else qs.none()
    else:
        qs = qs.exclude(data={})  # erased already (a tombstone without values)
    return qs.order_by("updated_at", "id")


def retention_apply(
    *, policy: RetentionPolicy, dry_run: bool = False, actor: Actor | Principal | None = None, now=None
) -> RetentionRun:
    """Apply one policy now (or list what it would take, for a dry run)."""
    actor = actor or Actor.system("retention policy")
    compliance_require(actor)
    now = now or timezone.now()
    cutoff = now - timedelta(days=policy.days)
    ids = list(retention_candidates(policy, cutoff=cutoff).values_list("id", flat=True))
    run = RetentionRun.objects.create(
        policy=policy,
        collection_slug=policy.collection.slug,
        action=policy.action,
        dry_run=dry_run,
        cutoff=cutoff,
        started_at=now,
        matched=len(ids),
        record_ids=ids[:RUN_IDS_KEPT],
        actor=Actor.of(actor).stamp(),
    )
    applied = 0
    if not dry_run:
        fields = _personal_fields(policy.collection) if policy.action == RetentionPolicy.Action.ANONYMISE else None
        for record in Record.objects.filter(livemode=True, id__in=ids).iterator(chunk_size=500):
            record_erase(actor=actor, record=record, fields=fields, reason=f"retention policy {policy.pk}")
            applied += 1
    run.applied = applied
    run.finished_at = timezone.now()
    run.save(update_fields=["applied", "finished_at"])
    audit_event_record(
        action="retention.applied",
        actor=actor,
        target=("retention_run", run.pk, f"{run.collection_slug} ({'dry run' if dry_run else run.action})"),
        changes={"dry_run": dry_run, "matched": len(ids), "applied": applied, "cutoff": cutoff.isoformat()},
    )
    return run


def log_retention_policy_set(
    *, actor: Actor | Principal, log: str, days: int, enabled: bool = True
) -> LogRetentionPolicy:
    compliance_require(actor)
    if log not in settings.TESSERA_LOG_RETENTION:
        raise ServiceError(f"`log` must be one of {', '.join(settings.TESSERA_LOG_RETENTION)}.", param="log")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 36500:
        raise ServiceError("Keep logs between 1 and 36,500 days.", param="days")
    with transaction.atomic():
        policy, _ = LogRetentionPolicy.objects.update_or_create(log=log, defaults={"days": days, "enabled": enabled})
        audit_event_record(
            action="retention_policy.changed",
            actor=actor,
            target=("log", log, settings.TESSERA_LOG_RETENTION[log][0]),
            changes={"after": {"days": days, "enabled": enabled}},
        )
    return policy


def log_retention_apply(
    *, policy: LogRetentionPolicy, dry_run: bool = False, actor: Actor | Principal | None = None, now=None
) -> RetentionRun:
    """Delete the log's entries older than the policy allows (a dry run counts the same entries)."""
    actor = actor or Actor.system("retention policy")
    compliance_require(actor)
    now = now or timezone.now()
    cutoff = now - timedelta(days=policy.days)
    expire = import_string(settings.TESSERA_LOG_RETENTION[policy.log][1])
    with transaction.atomic():
        matched = expire(cutoff=cutoff, dry_run=True)
        applied = 0 if dry_run else expire(cutoff=cutoff, dry_run=False)
        run = RetentionRun.objects.create(
            collection_slug=f"log:{policy.log}",
            action="delete",
            dry_run=dry_run,
            cutoff=cutoff,
            started_at=now,
            finished_at=timezone.now(),
            matched=matched,
            applied=applied,
            actor=Actor.of(actor).stamp(),
        )
        audit_event_record(
            action="retention.applied",
            actor=actor,
            target=("retention_run", run.pk, f"{run.collection_slug} ({'dry run' if dry_run else 'delete'})"),
            changes={"dry_run": dry_run, "matched": matched, "applied": applied, "cutoff": cutoff.isoformat()},
        )
    return run


def retention_apply_all(*, now=None) -> list[RetentionRun]:
    """Every enabled policy of the workspace, collections' and logs' (the daily beat task)."""
    runs = [
        retention_apply(policy=policy, now=now)
        for policy in RetentionPolicy.objects.filter(enabled=True, collection__deleted_at=None).select_related(
            "collection"
        )
    ]
    return runs + [
        log_retention_apply(policy=policy, now=now)
        for policy in LogRetentionPolicy.objects.filter(enabled=True, log__in=list(settings.TESSERA_LOG_RETENTION))
    ]
