"""Geometry of the console's usage bar chart, drawn as inline SVG by the template (no script, no
external assets, so it renders offline and without JavaScript)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from partners.selectors import UsageDay

WIDTH, HEIGHT, AXIS = 720, 160, 18  # viewBox units; AXIS is the strip under the bars for dates


@dataclass(frozen=True)
class Bar:
    day: UsageDay
    x: float
    width: float
    calls_y: float
    calls_height: float
    errors_y: float
    errors_height: float


def _nice_ceiling(value: int) -> int:
    """1, 2, 5, 10, 20, 50, … at or above `value` (so the scale reads easily)."""
    if value <= 0:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


def usage_chart(days: Sequence[UsageDay]) -> dict:
    plot = HEIGHT - AXIS
    top = _nice_ceiling(max((d.calls for d in days), default=0))
    slot = WIDTH / max(len(days), 1)
    bars = []
    for i, d in enumerate(days):
        calls_h = plot * d.calls / top
        errors_h = plot * d.errors / top
        bars.append(
            Bar(
                day=d,
                x=round(i * slot + slot * 0.15, 2),
                width=round(slot * 0.7, 2),
                calls_y=round(plot - calls_h, 2),
                calls_height=round(calls_h, 2),
                errors_y=round(plot - errors_h, 2),
                errors_height=round(errors_h, 2),
            )
        )
    return {
        "bars": bars,
        "top": top,
        "width": WIDTH,
        "height": HEIGHT,
        "plot_height": plot,
        "mid_y": plot / 2,
        "label_y": HEIGHT - 4,
        "total_calls": sum(d.calls for d in days),
        "total_errors": sum(d.errors for d in days),
        "first": days[0].day if days else None,
        "last": days[-1].day if days else None,
    }
