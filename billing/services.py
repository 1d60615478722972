"""Billing's writes: a workspace's Stripe customer, Checkout and Customer Portal sessions, the Stripe
events received (stored once by id) and what they change (the subscription, re-read from the API).

Why re-read: Stripe does not promise to deliver events in order, and may deliver one twice. The
handler of any event about a subscription fetches the subscription as it is now and stores that, so
whatever order events arrive in, the last one processed leaves the workspace as Stripe has it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from billing import routing, stripe_api
from billing.entitlements import billing_url, grace_period, standing_forget
from billing.models import BillingAccount, StripeEvent, SubscriptionStatus
from billing.plans import OFFERS, PAID_PLANS, Plan, metered_price_lookup_key, price_lookup_key
from core.actors import Actor
from core.errors import ServiceError
from core.events import DomainEvent, event_emit
from tenants.models import Tenant
from tenants.runtime import workspace_context

logger = logging.getLogger(__name__)

# The events the receiver acts on; any other type is stored and marked processed without effect.
HANDLED_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.trial_will_end",
        "invoice.paid",
        "invoice.payment_failed",
        "invoice.upcoming",
    }
)


class BillingError(ServiceError):
    """A billing request that cannot be done (no such plan, Stripe unreachable)."""


def _moment(value) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def account_get(workspace: Tenant) -> BillingAccount:
    account, _ = BillingAccount.objects.get_or_create(workspace=workspace)
    return account


# --- Checkout and the Customer Portal ---------------------------------------------------------------


def customer_ensure(*, workspace: Tenant, email: str) -> BillingAccount:
    """The workspace's Stripe customer, created once (an idempotency key per workspace)."""
    account = account_get(workspace)
    if not account.stripe_customer_id:
        try:
            customer = stripe_api.customer_create(workspace_id=workspace.pk, name=workspace.name, email=email)
        except stripe_api.StripeError as exc:
            raise BillingError("Stripe could not be reached. Try again in a minute.", status=503) from exc
        BillingAccount.objects.filter(pk=account.pk).update(stripe_customer_id=customer["id"])
        account.stripe_customer_id = customer["id"]
        routing.customer_location_set(workspace_slug=workspace.slug, stripe_customer_id=customer["id"])
    return account


def checkout_session_start(*, workspace: Tenant, plan: str, interval: str, email: str, base_url: str) -> str:
    """A Stripe Checkout session (subscription mode) for `plan`; its URL. A workspace that never had a
    subscription gets the trial; the metered price for API calls above the included amount rides along."""
    if plan not in PAID_PLANS or not OFFERS[plan].self_serve or interval not in ("month", "year"):
        raise BillingError("Choose one of the plans on this page.", param="plan")
    account = customer_ensure(workspace=workspace, email=email)
    keys = [price_lookup_key(plan, interval), metered_price_lookup_key(plan, interval)]
    try:
        prices = stripe_api.prices_by_lookup_key(keys)
    except stripe_api.StripeError as exc:
        raise BillingError("Stripe could not be reached. Try again in a minute.", status=503) from exc
    if keys[0] not in prices:
        raise BillingError("This plan is not on sale right now.", param="plan", status=409)
    line_items = [{"price": prices[keys[0]], "quantity": 1}]
    if keys[1] in prices:
        line_items.append({"price": prices[keys[1]]})  # metered: no quantity
    subscription_data: dict = {"metadata": {"workspace_id": str(workspace.pk)}}
    if account.status == SubscriptionStatus.NONE and not account.stripe_subscription_id:
        subscription_data["trial_period_days"] = settings.TESSERA_BILLING_TRIAL_DAYS
    params = {
        "mode": "subscription",
        "customer": account.stripe_customer_id,
        "client_reference_id": str(workspace.pk),
        "line_items": line_items,
        "subscription_data": subscription_data,
        "success_url": base_url + "billing/?checkout=done",
        "cancel_url": base_url + "billing/?checkout=canceled",
    }
    try:
        session = stripe_api.checkout_session_create(params)
    except stripe_api.StripeError as exc:
        raise BillingError("Stripe could not start Checkout. Try again in a minute.", status=503) from exc
    return session["url"]


# Subscriptions that can change plan in place (a canceled or expired one starts again through Checkout).
CHANGEABLE_STATUSES = frozenset({"trialing", "active", "past_due"})


def subscription_plan_change(*, workspace: Tenant, plan: str, interval: str) -> str:
    """Move the workspace's running subscription to `plan` and `interval`, prorated (Stripe's subscription
    update): the flat price's item and the metered API-calls item each take the new plan's price. The
    subscription is then stored as Stripe answers, so the new plan's limits apply at once (an upgrade
    lifts them; a downgrade keeps data over them and refuses only new items). What was done, in words."""
    if plan not in PAID_PLANS or not OFFERS[plan].self_serve or interval not in ("month", "year"):
        raise BillingError("Choose one of the plans on this page.", param="plan")
    account = account_get(workspace)
    if not account.stripe_subscription_id or account.status not in CHANGEABLE_STATUSES:
        raise BillingError("There is no running subscription to change: choose a plan below.", status=409)
    if (account.plan, account.interval) == (plan, interval):
        raise BillingError(f"The workspace is on {Plan(plan).label} already.", param="plan", status=409)
    keys = {"flat": price_lookup_key(plan, interval), "metered": metered_price_lookup_key(plan, interval)}
    try:
        prices = stripe_api.prices_by_lookup_key(list(keys.values()))
        subscription = stripe_api.subscription_retrieve(account.stripe_subscription_id)
    except stripe_api.StripeError as exc:
        raise BillingError("Stripe could not be reached. Try again in a minute.", status=503) from exc
    if keys["flat"] not in prices:
        raise BillingError("This plan is not on sale right now.", param="plan", status=409)
    items = []
    for item in subscription["items"]["data"]:
        metered = (item["price"].get("recurring") or {}).get("usage_type") == "metered"
        new_key = keys["metered" if metered else "flat"]
        if new_key in prices:
            items.append({"id": item["id"], "price": prices[new_key]})
        else:  # the new plan bills no API calls by use: the old metered item goes
            items.append({"id": item["id"], "deleted": True})
    read_at = int(account.synced_at.timestamp()) if account.synced_at else 0  # a later change back is new
    change = f"tessera-plan-{account.stripe_subscription_id}-{plan}-{interval}-{read_at}"
    try:
        stripe_api.subscription_items_update(account.stripe_subscription_id, items=items, idempotency_key=change)
    except stripe_api.StripeError as exc:
        raise BillingError("Stripe could not change the plan. Try again in a minute.", status=503) from exc
    subscription_sync(subscription_id=account.stripe_subscription_id, cause="billing.plan_changed")
    return f"The plan is now {Plan(plan).label}; the difference is prorated on the next invoice."


def portal_session_start(*, workspace: Tenant, return_url: str) -> str:
    account = account_get(workspace)
    if not account.stripe_customer_id:
        raise BillingError("Choose a plan first: there is no payment method or invoice yet.", status=409)
    try:
        return stripe_api.portal_session_create(customer=account.stripe_customer_id, return_url=return_url)["url"]
    except stripe_api.StripeError as exc:
        raise BillingError("Stripe could not open the billing portal. Try again in a minute.", status=503) from exc


# --- events -----------------------------------------------------------------------------------------


def event_store(event) -> StripeEvent | None:
    """Keep a verified event once by its id; None if it was received before (a duplicate delivery).
    An event another cell handed on (billing.routing) says so inside its signed body."""
    forwarded_from = event.pop(routing.FORWARDED_KEY, "")
    try:
        with transaction.atomic():
            return StripeEvent.objects.create(
                id=event["id"],
                forwarded_from=str(forwarded_from)[:63],
                type=event["type"],
                livemode=bool(event.get("livemode")),
                created=_moment(event.get("created")) or timezone.now(),
                payload=event,
            )
    except IntegrityError:
        return None


def _subscription_of(event_type: str, obj: dict) -> str | None:
    if event_type.startswith("customer.subscription."):
        return obj.get("id")
    if event_type == "checkout.session.completed":
        return obj.get("subscription")
    if event_type.startswith("invoice."):
        parent = (obj.get("parent") or {}).get("subscription_details") or {}
        return parent.get("subscription") or obj.get("subscription")
    return None


def _workspace_of(obj: dict, subscription) -> Tenant | None:
    """The workspace a Stripe object belongs to: the customer's billing account, else our metadata or
    the Checkout reference. The customer first: a workspace moved to another cell has another row id
    there (cells.moves), so the id in the metadata may name another workspace of that cell."""
    customer = (subscription or {}).get("customer") or obj.get("customer")
    if customer:
        account = BillingAccount.objects.filter(stripe_customer_id=customer).select_related("workspace").first()
        if account is not None:
            return account.workspace
    for source in (subscription or {}, obj):
        metadata = source.get("metadata") or {}
        ref = metadata.get("workspace_id") or (obj.get("client_reference_id") if source is obj else None)
        if ref and str(ref).isdigit():
            tenant = Tenant.objects.filter(pk=int(ref)).first()
            if tenant is not None:
                return tenant
    return None


def event_process(event_id: str) -> str:
    """Act on a stored event (the Celery task's body); what was done, for the log. Safe to repeat."""
    stored = StripeEvent.objects.filter(pk=event_id).first()
    if stored is None:
        return "unknown event"
    if stored.processed_at is not None:
        return "already processed"
    StripeEvent.objects.filter(pk=event_id).update(attempts=stored.attempts + 1)
    cell = None if stored.forwarded_from else routing.event_cell_elsewhere(stored.payload)
    if cell is not None:  # another cell bills this customer: handed on there (ForwardFailed: retried)
        routing.event_forward(event=stored.payload, cell=cell)
        StripeEvent.objects.filter(pk=event_id).update(
            processed_at=timezone.now(), last_error="", forwarded_to=cell.name
        )
        return f"forwarded to cell {cell.name}"
    outcome = "ignored"
    if stored.type in HANDLED_EVENTS:
        obj = stored.payload["data"]["object"]
        subscription_id = _subscription_of(stored.type, obj)
        if subscription_id:
            outcome = subscription_sync(subscription_id=subscription_id, reference=obj, cause=stored.type)
        else:
            outcome = "no subscription"
    StripeEvent.objects.filter(pk=event_id).update(processed_at=timezone.now(), last_error="")
    return outcome


def subscription_sync(*, subscription_id: str, reference: dict | None = None, cause: str = "") -> str:
    """Store the subscription as Stripe has it now; the workspace's plan and standing follow."""
    subscription = stripe_api.subscription_retrieve(subscription_id)
    workspace = _workspace_of(reference or {}, subscription)
    if workspace is None:
        logger.warning("Stripe subscription %s belongs to no workspace", subscription_id)
        return "no workspace"
    with transaction.atomic():
        account = BillingAccount.objects.select_for_update().filter(workspace=workspace).first()
        if account is None:
            account = BillingAccount.objects.create(workspace=workspace)
        before = {"plan": workspace.plan, "status": account.status}
        status = subscription["status"]
        found = stripe_api.subscription_plan(subscription)
        plan, interval = found if found else (account.plan, account.interval)
        items = subscription["items"]["data"]
        period_end = subscription.get("current_period_end") or (items[0].get("current_period_end") if items else None)
        now = timezone.now()
        customer_new = account.stripe_customer_id != subscription["customer"]
        account.stripe_customer_id = subscription["customer"]
        account.stripe_subscription_id = subscription["id"]
        account.status = status
        account.plan, account.interval = plan, interval
        account.trial_end = _moment(subscription.get("trial_end"))
        account.current_period_end = _moment(period_end)
        account.cancel_at_period_end = bool(subscription.get("cancel_at_period_end"))
        if status == SubscriptionStatus.PAST_DUE:
            account.past_due_since = account.past_due_since or now
        else:
            account.past_due_since, account.past_due_notified_at = None, None
        notify = status == SubscriptionStatus.PAST_DUE and account.past_due_notified_at is None
        if notify:
            account.past_due_notified_at = now
        account.synced_at = now
        account.save()
        standing_forget(workspace.pk)
        # The plan the workspace's limits follow: a running (or past-due, or read-only) subscription's.
        new_plan = plan if status != SubscriptionStatus.INCOMPLETE_EXPIRED else Plan.FREE
        if new_plan != workspace.plan:
            Tenant.objects.filter(pk=workspace.pk).update(plan=new_plan)
            workspace.plan = new_plan
        # account.save() told the processes remembering the host (billing.models: tenants.hostcache): a
        # lapse to read-only, a payment or a new plan applies at the API's next request.
        after = {"plan": workspace.plan, "status": status}
        if before != after or notify or cause == "customer.subscription.trial_will_end":
            _subscription_event(workspace, before=before, after=after, cause=cause, account=account, notify=notify)
    if customer_new:
        routing.customer_location_set(workspace_slug=workspace.slug, stripe_customer_id=subscription["customer"])
    return f"{status} {plan}"


# --- missed events ------------------------------------------------------------------------------------

# A subscription read longer ago than this is read again even if nothing says it changed.
RESYNC_AFTER = timedelta(hours=24)


def _resync_due(now: datetime):
    """Billing accounts whose stored subscription may no longer be Stripe's: a customer without a
    subscription (Checkout's events missed), never read, read over RESYNC_AFTER ago, or read before a
    moment at which Stripe changes it by itself (a trial's end, a period's renewal)."""
    moments_passed = Q(trial_end__lte=now, synced_at__lt=F("trial_end")) | Q(
        current_period_end__lte=now, synced_at__lt=F("current_period_end")
    )
    customer_only = Q(stripe_subscription_id="") & ~Q(stripe_customer_id="")
    with_subscription = ~Q(stripe_subscription_id="") & (
        Q(synced_at=None) | Q(synced_at__lt=now - RESYNC_AFTER) | moments_passed
    )
    oldest_first = F("synced_at").asc(nulls_first=True)
    return BillingAccount.objects.filter(customer_only | with_subscription).order_by(oldest_first)


def subscriptions_resync(*, limit: int = 200) -> dict[str, int]:
    """Read again from Stripe the subscriptions whose events may have been missed (webhook endpoint down
    for longer than Stripe retries, an event lost in a deploy): the beat task's body. A customer whose
    Checkout events never came gets its newest subscription found by listing the customer's. One
    account's failure (Stripe unreachable) is logged and the rest go on; what was done, counted."""
    done = {"synced": 0, "unchanged": 0, "failed": 0}
    for account in list(_resync_due(timezone.now()).select_related("workspace")[:limit]):
        try:
            subscription_id = account.stripe_subscription_id
            if not subscription_id:
                found = stripe_api.subscriptions_of_customer(account.stripe_customer_id)
                running = [s for s in found if s["status"] not in ("canceled", "incomplete_expired")]
                subscription_id = (running or found or [{}])[0].get("id", "")
            if not subscription_id:  # a customer who never finished Checkout: nothing to read
                BillingAccount.objects.filter(pk=account.pk).update(synced_at=timezone.now())
                done["unchanged"] += 1
                continue
            before = (account.status, account.plan)
            subscription_sync(
                subscription_id=subscription_id,
                reference={"metadata": {"workspace_id": str(account.workspace_id)}},
                cause="billing.resync",
            )
            after = BillingAccount.objects.filter(pk=account.pk).values_list("status", "plan").first()
            done["synced" if after != before else "unchanged"] += 1
        except Exception:  # Stripe away, an unexpected object: the next run tries again
            logger.exception("subscription of workspace %s not re-read", account.workspace_id)
            done["failed"] += 1
    return done


def _subscription_event(workspace: Tenant, *, before: dict, after: dict, cause: str, account, notify: bool):
    """The change, as the workspace's domain event (audited; Admins e-mailed when payment failed or a
    trial is about to end: accounts.notices)."""
    kind = "billing.payment_failed" if notify else "billing.subscription_changed"
    if cause == "customer.subscription.trial_will_end" and before == after:
        kind = "billing.trial_ending"
    data = {
        "object": {
            "object": "billing_standing",
            "plan": after["plan"],
            "status": after["status"],
            "trial_end": account.trial_end.isoformat() if account.trial_end else None,
            "grace_ends_at": (account.past_due_since + grace_period()).isoformat() if account.past_due_since else None,
            "billing_url": billing_url(workspace),
            "cause": cause,
        }
    }
    with workspace_context(workspace):
        event_emit(
            DomainEvent(
                type=kind,
                actor=Actor.system("stripe"),
                data=data,
                target=("workspace", str(workspace.pk), workspace.name),
                changes={"before": before, "after": after},
            )
        )
