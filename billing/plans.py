"""The plan catalogue: every plan and its limits, in code."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models

from core.token_buckets import Limit


class Plan(models.TextChoices):
    FREE = "free", "Free"
    TEAM = "team", "Team"
    BUSINESS = "business", "Business"
    ENTERPRISE = "enterprise", "Enterprise"


@dataclass(frozen=True)
class PlanLimits:
    api_key: Limit  # each API key's rate
    api_workspace: Limit  # all the workspace's keys together
    webhook_endpoints: int  # per workspace and mode (live / test)


PLANS: dict[str, PlanLimits] = {
    Plan.FREE: PlanLimits(
        api_key=Limit(rate=10, burst=20), api_workspace=Limit(rate=20, burst=40), webhook_endpoints=50
    ),
    Plan.TEAM: PlanLimits(
        api_key=Limit(rate=25, burst=50), api_workspace=Limit(rate=50, burst=100), webhook_endpoints=50
    ),
    Plan.BUSINESS: PlanLimits(
        api_key=Limit(rate=100, burst=200), api_workspace=Limit(rate=200, burst=400), webhook_endpoints=50
    ),
    Plan.ENTERPRISE: PlanLimits(
        api_key=Limit(rate=500, burst=1000), api_workspace=Limit(rate=1000, burst=2000), webhook_endpoints=50
    ),
}


def plan_limits_of(plan: str) -> PlanLimits:
    """A plan's limits; an unknown plan code gets the Free plan's."""
    return PLANS.get(plan, PLANS[Plan.FREE])
