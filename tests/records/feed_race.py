"""Several writer threads and one cursor reader race on the change feed.

Used by test_change_feed.py in both runtimes (SQLite through a subprocess with its own database).
Without commit-ordered sequence numbers the reader would skip changes: a writer that took N
could commit after one that took N+1, after the reader had moved its cursor past N.
"""

from __future__ import annotations

import random
import threading
import time

from django.db import connection


def race(*, tenant, actor, collection, writers: int = 4, writes_each: int = 40, page: int = 7) -> dict:
    from records.models import Change
    from records.selectors import change_list
    from records.services import record_create, record_update
    from tenants.runtime import workspace_context

    done = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []

    def write(n: int) -> None:
        try:
            with workspace_context(tenant):
                mine = []
                for i in range(writes_each):
                    if mine and random.random() < 0.4:
                        record_update(actor=actor, record=random.choice(mine), data={"n": i})
                    else:
                        mine.append(record_create(actor=actor, collection=collection, data={"n": i, "w": n}))
                    time.sleep(random.random() / 500)
        except BaseException as exc:  # surfaced by the test
            errors.append(exc)
        finally:
            connection.close()

    def read() -> None:
        try:
            with workspace_context(tenant):
                cursor = (
                    Change.objects.filter(livemode=collection.livemode)
                    .order_by("-seq")
                    .values_list("seq", flat=True)
                    .first()
                    or 0
                )
                start = cursor
                while True:
                    finished = done.is_set()
                    batch = change_list(livemode=collection.livemode, after_seq=cursor, limit=page)
                    for change in batch:
                        if change.collection_id == collection.pk:
                            seen.append(change.seq)
                        cursor = change.seq
                    if finished and not batch:
                        break
                    if not batch:
                        time.sleep(0.001)
                result["start"] = start
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    result: dict = {}
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join()
    with workspace_context(tenant):
        committed = list(Change.objects.filter(collection=collection).order_by("seq").values_list("seq", flat=True))
    return {"seen": seen, "committed": committed, "errors": errors}
