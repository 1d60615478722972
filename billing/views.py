"""The console's billing page (Admin, `billing.manage`): the plan and its standing, trial days left,
usage against every limit, and the plans to choose from."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from billing import entitlements
from billing.plans import OFFERS, ORDER, PLANS, Plan, plan_rank
from rbac.permissions import permission_required
from tenants.runtime import workspace_current


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
    context = {
        "standing": current,
        "plan_label": entitlements.plan_label(workspace),
        "usage": entitlements.usage_lines(workspace),
        "plans": plans,
    }
    return render(request, "billing/page.html", context)
