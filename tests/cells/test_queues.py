"""Each cell's background work on its own Celery queue: two real workers, one of cell `main` (eu) and
one of cell `b` (us), share one broker on purpose (the worst case: a broker pointed at the wrong cell)
and each runs its own cell's tasks only. The task is Celery's own `celery.accumulate` (returns its
arguments, touches no data), so the test shows the routing alone."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import pytest
from django.conf import settings

from config.celery_app import app
from tests.live_server import REPO_ROOT
from tests.webhooks.conftest import Worker, broker  # noqa: F401 (fixture)

pytestmark = pytest.mark.saas_only

CELL_B = {"TESSERA_CELL": "b", "TESSERA_REGION": "us"}


def _ran(worker, task_id: str) -> bool:
    return f"[{task_id}] succeeded" in worker.log_path.read_text(errors="replace")


def _wait_ran(worker, task_ids: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(_ran(worker, t) for t in task_ids):
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker did not run {task_ids}:\n{worker.log_tail()}")
        time.sleep(0.1)


@pytest.fixture
def workers(db, broker, tmp_path, django_db_blocker):  # noqa: F811
    """A worker of cell main and one of cell b on the same broker, started side by side."""
    from django.db import connection

    with django_db_blocker.unblock():
        pair = [
            Worker(broker, tmp_path / "main", connection, concurrency=1),
            Worker(broker, tmp_path / "b", connection, concurrency=1, extra_env=CELL_B),
        ]
    starts = [threading.Thread(target=w.start) for w in pair]
    for thread in starts:
        thread.start()
    for thread in starts:
        thread.join()
    try:
        for w in pair:
            assert w.process is not None and w.process.poll() is None, w.log_tail()
        yield pair
    finally:
        for w in pair:
            w.kill()  # nothing of theirs to finish


def test_the_workers_of_a_cell_run_its_tasks_and_never_another_cells(workers):
    assert settings.CELERY_TASK_DEFAULT_QUEUE == "tessera.main"  # this process is cell `main`
    worker_main, worker_b = workers

    # cell main's tasks, sent by this process as any web process of the cell sends them
    ours = [str(uuid.uuid4()) for _ in range(3)]
    for task_id in ours:
        app.send_task("celery.accumulate", args=[1], task_id=task_id)
    # cell b's, sent by a process of cell b (its settings, the same broker)
    theirs = [str(uuid.uuid4()) for _ in range(3)]
    sender = (
        "import django\ndjango.setup()\nfrom config.celery_app import app\n"
        f"for task_id in {theirs!r}:\n"
        "    app.send_task('celery.accumulate', args=[2], task_id=task_id)\n"
    )
    env = {**worker_b.env}
    subprocess.run([sys.executable, "-c", sender], cwd=REPO_ROOT, env=env, check=True, timeout=120)

    _wait_ran(worker_main, ours)
    _wait_ran(worker_b, theirs)
    assert not any(_ran(worker_b, t) for t in ours), "cell b's worker ran cell main's work"
    assert not any(_ran(worker_main, t) for t in theirs), "cell main's worker ran cell b's work"
    assert "tessera.b" in worker_b.log_path.read_text(errors="replace")  # its banner names its queue
