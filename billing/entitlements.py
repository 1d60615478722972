"""What a workspace may do under its plan. Every surface that can cross a limit asks here, and
nowhere else holds a limit.

Rate limits scale with TESSERA_RATE_LIMIT_SCALE (tests and benchmarks turn them up or down).
"""

from __future__ import annotations

from django.conf import settings

from billing.plans import PLANS, Plan, plan_limits_of
from core.errors import LimitExceeded
from core.token_buckets import Limit


def _scale() -> float:
    return getattr(settings, "TESSERA_RATE_LIMIT_SCALE", 1)


def api_rate_limits(workspace) -> dict[str, Limit]:
    """The API's token buckets for `workspace`'s plan: each key's, and all its keys' together."""
    limits = plan_limits_of(workspace.plan)
    factor = _scale()
    return {"key": limits.api_key.scaled(factor), "workspace": limits.api_workspace.scaled(factor)}


def plan_label(workspace) -> str:
    """The name of the workspace's plan, as people read it."""
    return Plan(workspace.plan).label if workspace.plan in Plan.values else workspace.plan


def api_rate_limits_by_plan() -> list[tuple[str, dict[str, Limit]]]:
    """Every plan's API rate limits (the docs' table), scaled as they apply here."""
    factor = _scale()
    return [
        (Plan(code).label, {"key": limits.api_key.scaled(factor), "workspace": limits.api_workspace.scaled(factor)})
        for code, limits in PLANS.items()
    ]


def webhook_endpoints_check(workspace, *, existing: int) -> None:
    """Refuse one more webhook endpoint (per mode) beyond the plan's."""
    allowed = plan_limits_of(workspace.plan).webhook_endpoints
    if existing >= allowed:
        raise LimitExceeded(
            f"A workspace has at most {allowed} webhook endpoints per mode.",
            limit="webhook_endpoints",
            allowed=allowed,
            current=existing,
        )


def records_check(*, creating: int) -> None:
    """Called by the write spine before it creates records. No plan limits the number of records yet:
    this is where such a limit is checked, inside the write's transaction."""
