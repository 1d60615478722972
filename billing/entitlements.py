"""What a workspace may do under its plan and its standing with Stripe. Every surface that can cross a
limit or write data asks here, and nowhere else holds a limit.

- Standing: trialing / active (and Free without a subscription) = full service; `past_due` = full
  service with a banner until the grace period ends; after it, and when `unpaid`, `canceled`,
  `paused` or `incomplete_expired`, the workspace is read-only: reads and exports keep working, every
  write is refused with `payment_required` (402). Nothing is deleted; paying again lifts it at once.
- Limits (billing.plans): a check refuses only what would go beyond a limit (`plan_limit_exceeded`,
  402, with the limit, the usage and the billing page's URL); data already over a limit after a
  downgrade is kept.
- Usage is counted by the apps that own the things counted, named in `settings.TESSERA_USAGE_COUNTERS`
  (billing knows no app above it).
- The desktop edition (`TESSERA_BILLING_ENABLED = False`) has no plans: every answer is "unlimited",
  and nothing of Stripe's or of billing's models is imported.

Rate limits scale with TESSERA_RATE_LIMIT_SCALE (tests and benchmarks turn them up or down).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from billing.plans import LIMIT_NAMES, PLANS, Plan, PlanLimits, plan_limits_of
from core.errors import LimitExceeded, ServiceError
from core.token_buckets import Limit
from tenants.runtime import workspace_current

if settings.TESSERA_BILLING_ENABLED:  # the desktop does not install billing's models
    from billing.models import BillingAccount, SubscriptionStatus

READ_ONLY_STATUSES = frozenset({"unpaid", "canceled", "paused", "incomplete_expired"})


class PaymentRequired(ServiceError):
    """The workspace is read-only until its subscription is paid (or a plan chosen again)."""

    status, code = 402, "payment_required"


def _scale() -> float:
    return getattr(settings, "TESSERA_RATE_LIMIT_SCALE", 1)


def billing_url(workspace) -> str:
    """The console's billing page of `workspace`, as an absolute URL for API clients and e-mails: at the
    workspace's configured address (TESSERA_PUBLIC_URL's scheme and port), never a request's Host."""
    base = workspace.base_url() or f"{settings.TESSERA_PUBLIC_SCHEME}://{workspace.host()}"
    return f"{base}/billing/"


# --- standing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    """A workspace's billing standing at one moment, as every surface shows it."""

    plan: str
    status: str  # a SubscriptionStatus value ("none": Free without a subscription)
    read_only: bool
    trial_end: datetime | None = None
    grace_ends_at: datetime | None = None  # set while past due
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False

    @property
    def in_grace(self) -> bool:
        return self.grace_ends_at is not None and not self.read_only

    @property
    def trial_days_left(self) -> int | None:
        if self.status != "trialing" or self.trial_end is None:
            return None
        return max(0, math.ceil((self.trial_end - timezone.now()).total_seconds() / 86400))

    @property
    def reason(self) -> str:
        """Why writes are refused (or about to be), in words for people."""
        if self.status == "past_due":
            if self.read_only:
                return "The last payment failed and the grace period has ended: the workspace is read-only."
            return "The last payment failed. Update the payment method before the grace period ends."
        if self.status == "canceled":
            return "The subscription was canceled: the workspace is read-only. Choose a plan to write again."
        if self.status in READ_ONLY_STATUSES:
            return "The subscription is unpaid: the workspace is read-only until the invoice is paid."
        return ""


UNLIMITED_STANDING = Standing(plan=Plan.ENTERPRISE, status="none", read_only=False)


def grace_period() -> timedelta:
    return timedelta(days=getattr(settings, "TESSERA_BILLING_GRACE_DAYS", 7))


def standing_of_account(account, plan: str) -> Standing:
    """The standing a billing account gives (pure: no database), as of now."""
    if account is None:
        return Standing(plan=plan, status="none", read_only=False)
    grace_ends_at = None
    read_only = account.status in READ_ONLY_STATUSES
    if account.status == SubscriptionStatus.PAST_DUE:
        grace_ends_at = (account.past_due_since or timezone.now()) + grace_period()
        read_only = timezone.now() >= grace_ends_at
    return Standing(
        plan=plan,
        status=account.status,
        read_only=read_only,
        trial_end=account.trial_end,
        grace_ends_at=grace_ends_at,
        current_period_end=account.current_period_end,
        cancel_at_period_end=account.cancel_at_period_end,
    )


# The billing accounts read during one request (billing.middleware.StandingPerRequest), by workspace id:
# every check of a request and the console's banner share one read. None outside a request (a Celery
# task, a websocket message, a service called directly): every check reads afresh.
_accounts_this_request: ContextVar[dict | None] = ContextVar("tessera_billing_accounts", default=None)


@contextmanager
def standing_per_request(workspace=None) -> Iterator[None]:
    """Read each workspace's standing at most once inside this block (one request). The request's
    `workspace`, when its host lookup loaded its billing account with it (settings.
    TESSERA_WORKSPACE_LOADED_WITH), is not read again at all."""
    accounts = {}
    if workspace is not None and settings.TESSERA_BILLING_ENABLED:
        relation = BillingAccount._meta.get_field("workspace").remote_field
        if relation.is_cached(workspace):
            accounts[workspace.pk] = relation.get_cached_value(workspace)
    token = _accounts_this_request.set(accounts)
    try:
        yield
    finally:
        _accounts_this_request.reset(token)


def standing_forget(workspace_id: int) -> None:
    """The workspace's billing account changed in this request: the next check reads it again."""
    accounts = _accounts_this_request.get()
    if accounts is not None:
        accounts.pop(workspace_id, None)


def _account_of(workspace):
    accounts = _accounts_this_request.get()
    if accounts is not None and workspace.pk in accounts:
        return accounts[workspace.pk]
    account = BillingAccount.objects.filter(workspace_id=workspace.pk).first()
    if accounts is not None:
        accounts[workspace.pk] = account
    return account


def standing(workspace=None) -> Standing:
    """The workspace's standing (the current one by default): one indexed read of the public schema,
    once per request (the time-dependent part, the end of a grace period, is worked out at each call)."""
    if not settings.TESSERA_BILLING_ENABLED:
        return UNLIMITED_STANDING
    workspace = workspace or workspace_current()
    return standing_of_account(_account_of(workspace), workspace.plan)


def limits(workspace=None) -> PlanLimits:
    """The workspace's plan limits (the desktop: none)."""
    workspace = workspace or workspace_current()
    plan_limits = plan_limits_of(workspace.plan)
    if not settings.TESSERA_BILLING_ENABLED:
        return replace(PLANS[Plan.ENTERPRISE], api_key=plan_limits.api_key, api_workspace=plan_limits.api_workspace)
    return plan_limits


# --- checks -----------------------------------------------------------------------------------------


def writes_check(workspace=None) -> Standing:
    """Refuse any write while the workspace is read-only; returns the standing for further checks."""
    if not settings.TESSERA_BILLING_ENABLED:
        return UNLIMITED_STANDING
    workspace = workspace or workspace_current()
    current = standing(workspace)
    if current.read_only:
        raise PaymentRequired(
            f"{current.reason} Reading and exporting still work; an Admin can pay on the billing page.",
            subscription_status=current.status,
            billing_url=billing_url(workspace),
        )
    return current


def usage_count(name: str) -> int:
    """The current workspace's usage of one limit, counted by the app that owns it."""
    return import_string(settings.TESSERA_USAGE_COUNTERS[name])()


def limit_check(name: str, *, workspace=None, adding: int = 1, current: int | Callable[[], int] | None = None) -> None:
    """Refuse a write while read-only, and one that would take usage of `name` beyond the plan's limit.

    `current` is the usage now when the caller knows it (or a callable that finds it, asked only when
    the plan limits `name` at all); otherwise the owning app counts it, under the same condition."""
    if not settings.TESSERA_BILLING_ENABLED:
        return
    workspace = workspace or workspace_current()
    writes_check(workspace)
    allowed = getattr(limits(workspace), name)
    if allowed is None:
        return
    if current is None:
        current = usage_count(name)
    elif callable(current):
        current = current()
    if current + adding > allowed:
        label, unit = LIMIT_NAMES[name]
        raise LimitExceeded(
            f"The {plan_label(workspace)} plan allows {allowed:,} {unit} ({label.lower()}); this workspace has "
            f"{current:,}. Upgrade the plan on the billing page, or remove some first.",
            limit_name=name,
            limit=allowed,
            usage=current,
            billing_url=billing_url(workspace),
        )


def records_check(*, creating: int, current: int | Callable[[], int] | None = None) -> None:
    """The write spine, before it creates records (inside the write's transaction); `current` is the
    live-record count it keeps with its lock (records.services), so the check counts nothing."""
    limit_check("records", adding=creating, current=current)


def members_check(workspace=None, *, adding: int = 1) -> None:
    limit_check("members", workspace=workspace, adding=adding)


def devices_check(workspace=None, *, adding: int = 1) -> None:
    limit_check("devices", workspace=workspace, adding=adding)


def scheduled_reports_check(workspace=None, *, existing: int | Callable[[], int]) -> None:
    """Refuse one more scheduled report beyond the plan's (`existing`: the count, or a callable that counts)."""
    limit_check("scheduled_reports", workspace=workspace, current=existing)


def webhook_endpoints_check(workspace, *, existing: int) -> None:
    """Refuse one more webhook endpoint (per mode) beyond the plan's."""
    limit_check("webhook_endpoints", workspace=workspace, current=existing)


def api_calls_check(workspace, *, used: Callable[[], int]) -> None:
    """Refuse an API call beyond the month's included calls, on plans that do not bill the rest (Free).
    Paid plans keep serving: the calls above the included amount are billed through the meter.
    `used()` is asked only where the plan caps calls."""
    if not settings.TESSERA_BILLING_ENABLED:
        return
    plan_limits = limits(workspace)
    if plan_limits.api_calls_month is None or workspace.plan != Plan.FREE:
        return
    used = used()
    if used >= plan_limits.api_calls_month:
        raise LimitExceeded(
            f"The Free plan includes {plan_limits.api_calls_month:,} API calls a month and they are used up. "
            "Upgrade the plan on the billing page; calls beyond a paid plan's amount are billed by use.",
            limit_name="api_calls_month",
            limit=plan_limits.api_calls_month,
            usage=used,
            billing_url=billing_url(workspace),
        )


# --- for people ---------------------------------------------------------------------------------------


def api_rate_limits(workspace) -> dict[str, Limit]:
    """The API's token buckets for `workspace`'s plan: each key's, and all its keys' together."""
    plan_limits = plan_limits_of(workspace.plan)
    factor = _scale()
    return {"key": plan_limits.api_key.scaled(factor), "workspace": plan_limits.api_workspace.scaled(factor)}


def plan_label(workspace) -> str:
    """The name of the workspace's plan, as people read it."""
    return Plan(workspace.plan).label if workspace.plan in Plan.values else workspace.plan


def api_rate_limits_by_plan() -> list[tuple[str, dict[str, Limit]]]:
    """Every plan's API rate limits (the docs' table), scaled as they apply here."""
    factor = _scale()
    return [
        (Plan(code).label, {"key": p.api_key.scaled(factor), "workspace": p.api_workspace.scaled(factor)})
        for code, p in PLANS.items()
    ]


@dataclass(frozen=True)
class UsageLine:
    name: str
    label: str
    used: int
    allowed: int | None

    @property
    def percent(self) -> int:
        if not self.allowed:
            return 0
        return min(100, round(100 * self.used / self.allowed))

    @property
    def over(self) -> bool:
        return self.allowed is not None and self.used > self.allowed


def usage_lines(workspace=None) -> list[UsageLine]:
    """Usage against every limit of the plan (the billing page's bars); limits no app counts yet are
    shown without a figure."""
    plan_limits = limits(workspace)
    lines = []
    for name, (label, _unit) in LIMIT_NAMES.items():
        counter = settings.TESSERA_USAGE_COUNTERS.get(name)
        used = import_string(counter)() if counter else 0
        lines.append(UsageLine(name=name, label=label, used=used, allowed=getattr(plan_limits, name)))
    return lines
