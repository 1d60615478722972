"""The console's billing page (Admin, `billing.manage`): the plan and its standing, trial days left,
usage against every limit, the plans to choose from (through Stripe Checkout), and the payment
method, invoices and cancellation (through Stripe's Customer Portal)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from billing import entitlements, stripe_api
from billing.models import BillingAccount
from billing.plans import OFFERS, ORDER, PLANS, Plan, plan_rank
from billing.services import (
    CHANGEABLE_STATUSES,
    BillingError,
    checkout_session_start,
    portal_session_start,
    subscription_plan_change,
)
from rbac.permissions import permission_required
from tenants.runtime import workspace_current

logger = logging.getLogger(__name__)


@permission_required("billing.manage")
def page(request: HttpRequest) -> HttpResponse:
    workspace = workspace_current()
    current = entitlements.standing(workspace)
    plans = [
        {
            "code": code,
            "label": Plan(code).label,
            "limits": PLANS[code],
            "offer": OFFERS[code],
            "current": code == workspace.plan,
            "upgrade": plan_rank(code) > plan_rank(workspace.plan),
        }
        for code in ORDER
    ]
    account = BillingAccount.objects.filter(workspace=workspace).first()
    invoices, invoices_error = [], ""
    if account is not None and account.stripe_customer_id:
        try:
            invoices = stripe_api.invoices_list(customer=account.stripe_customer_id)
            for invoice in invoices:
                invoice["created_at"] = datetime.fromtimestamp(invoice["created"], tz=UTC)
        except stripe_api.StripeError:
            logger.exception("invoices not listed")
            invoices_error = "Stripe could not be reached: the invoices are not shown right now."
    chosen = request.GET.get("choose", "")
    if chosen in PLANS and chosen != Plan.FREE and current.status == "none":
        messages.info(request, f"Start the 14-day trial of {Plan(chosen).label}: choose monthly or yearly below.")
    if request.GET.get("checkout") == "done":
        messages.success(request, "Thank you: the subscription starts as soon as Stripe confirms it (a few seconds).")
    context = {
        "standing": current,
        "plan_label": entitlements.plan_label(workspace),
        "usage": entitlements.usage_lines(workspace),
        "plans": plans,
        "account": account,
        "invoices": invoices,
        "invoices_error": invoices_error,
        # A running subscription changes plan in place (prorated); otherwise a plan starts through Checkout.
        "changeable": bool(account and account.stripe_subscription_id and account.status in CHANGEABLE_STATUSES),
        "interval": (account.interval if account else "") or "month",
    }
    return render(request, "billing/page.html", context)


@require_POST
@permission_required("billing.manage")
def checkout(request: HttpRequest) -> HttpResponse:
    """To Stripe Checkout for the chosen plan and interval (a new subscription, or a change of plan
    for a workspace whose subscription ended); running subscriptions change plan in the portal."""
    try:
        url = checkout_session_start(
            workspace=workspace_current(),
            plan=request.POST.get("plan", ""),
            interval=request.POST.get("interval", "month"),
            email=request.user.email,
            base_url=request.build_absolute_uri("/"),
        )
    except BillingError as exc:
        messages.error(request, exc.message)
        return redirect("billing:page")
    return redirect(url)


@require_POST
@permission_required("billing.manage")
def plan_change(request: HttpRequest) -> HttpResponse:
    """Move the running subscription to another plan or interval, prorated (billing.services)."""
    try:
        done = subscription_plan_change(
            workspace=workspace_current(),
            plan=request.POST.get("plan", ""),
            interval=request.POST.get("interval", "month"),
        )
    except BillingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("billing:page")


@require_POST
@permission_required("billing.manage")
def portal(request: HttpRequest) -> HttpResponse:
    """To Stripe's Customer Portal: payment method, invoices, plan changes, cancellation."""
    try:
        url = portal_session_start(workspace=workspace_current(), return_url=request.build_absolute_uri("/billing/"))
    except BillingError as exc:
        messages.error(request, exc.message)
        return redirect("billing:page")
    return redirect(url)
