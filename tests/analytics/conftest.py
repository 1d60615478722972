"""An `orders` collection with awkward data, written through the write spine, and the plain Python
rows the tests compute their expected results from independently of analytics.queries."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

REGIONS = ["EU", "US", "APAC"]
ORDER_FIELDS = [
    {"key": "customer", "type": "text"},
    {"key": "region", "type": "choice", "choices": REGIONS},
    {"key": "amount", "type": "number"},
    {"key": "qty", "type": "integer"},
    {"key": "closed_on", "type": "date"},
    {"key": "closed_at", "type": "datetime"},
]


def order_rows(n: int = 80, seed: int = 17) -> list[dict]:
    """Orders over 2025–2026, some with missing values; times placed around DST changes too."""
    rnd = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(n):
        at = start + timedelta(minutes=rnd.randrange(0, 2 * 365 * 24 * 60))
        data = {"customer": f"c{rnd.randrange(12)}", "closed_at": at.isoformat().replace("+00:00", "Z")}
        if i % 9:
            data["region"] = rnd.choice(REGIONS)
        if i % 7:
            data["amount"] = round(rnd.uniform(-50, 500), 2) if i % 5 else rnd.randrange(1, 100)
        if i % 11:
            data["qty"] = rnd.randrange(0, 20)
        if i % 6:
            data["closed_on"] = at.date().isoformat()
        rows.append(data)
    # Instants that fall on another local day, month or week in Europe/Berlin than in UTC, around DST.
    for at in (
        "2026-03-28T23:30:00Z",  # 29 March 00:30 CET: the day the clocks go forward
        "2026-03-29T22:30:00Z",  # Monday 30 March 00:30 CEST: a new week
        "2026-03-31T22:30:00Z",  # 1 April 00:30 CEST: a new month and quarter
        "2026-10-24T22:30:00Z",  # 25 October 00:30 CEST: the day the clocks go back
        "2026-10-31T23:30:00Z",  # 1 November 00:30 CET
        "2025-12-31T23:30:00Z",  # 1 January 2026 00:30 CET: a new year
        "2026-06-30T23:59:59+02:00",  # an offset of its own
    ):
        rows.append({"customer": "edge", "region": "EU", "amount": 10, "qty": 1, "closed_at": at})
    return rows


# Values of the wrong type, which the spine refuses today: the fixture writes this row around it, as data
# from before a validation rule or a restored old backup would be.
WRONG_TYPED = {"customer": "legacy", "region": "US", "amount": "12.50", "qty": True, "closed_on": "03/02/2026"}


@pytest.fixture
def orders(tenant, admin_user):
    """The collection and the data of every live record in it (as the spine stored it)."""
    from records.models import Record
    from records.services import collection_create, record_bulk_upsert, record_create

    collection = collection_create(actor=admin_user, name="Orders", slug="orders", fields=ORDER_FIELDS)
    legacy = record_create(actor=admin_user, collection=collection, data={"customer": "legacy"})
    Record.objects.filter(pk=legacy.pk).update(data=WRONG_TYPED)
    results = record_bulk_upsert(actor=admin_user, collection=collection, items=[{"data": d} for d in order_rows()])
    assert all(r.status == "created" for r in results), [r.error for r in results if r.error]
    stored = list(Record.objects.filter(collection=collection, deleted_at=None).values("data", "created_at"))
    return collection, stored


@pytest.fixture
def orders_empty(tenant, admin_user):
    from records.services import collection_create

    return collection_create(actor=admin_user, name="Orders", slug="orders", fields=ORDER_FIELDS)
