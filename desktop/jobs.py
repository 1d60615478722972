"""Background jobs on the desktop: the same Celery tasks, run by a worker and beat inside the app.

One process, no Redis: the worker (solo pool: one job at a time, enough for one business) and the
beat scheduler run in threads of the launcher, on the crash-safe filesystem broker (desktop.broker).
Stopping is warm: the job in hand finishes, unacknowledged messages go back to the queue on disk.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

logger = logging.getLogger(__name__)


class JobRunner:
    def __init__(self, *, beat: bool = True, schedule_path: Path | None = None, loglevel: str = "WARNING"):
        self.beat_enabled = beat
        self.schedule_path = schedule_path
        self.loglevel = loglevel
        self.worker = None
        self.beat = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self, ready_timeout: float = 30.0) -> None:
        from celery.worker import state
        from django.conf import settings

        from config.celery_app import app
        from desktop.broker import queue_recover

        queue_recover(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        state.should_stop = None
        state.should_terminate = None
        app.finalize()
        app.set_current()
        app.set_default()
        ready = self._ready

        class Worker(app.WorkController):
            def on_consumer_ready(self, consumer):
                super().on_consumer_ready(consumer)
                ready.set()

        self.worker = Worker(
            app=app,
            hostname="desktop@localhost",
            pool_cls="solo",
            concurrency=1,
            loglevel=self.loglevel,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        self._thread = threading.Thread(target=self.worker.start, name="jobs-worker", daemon=True)
        self._thread.start()
        if not self._ready.wait(ready_timeout):
            logger.error("jobs: the worker did not start within %.0f s", ready_timeout)
        if self.beat_enabled:
            from celery.beat import EmbeddedService

            schedule = self.schedule_path or Path(settings.CELERY_BEAT_SCHEDULE_FILENAME)
            self.beat = EmbeddedService(app, thread=True, schedule_filename=str(schedule))
            self.beat.start()
        logger.info("jobs: worker%s running", " and beat" if self.beat else "")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> bool:
        """Warm shutdown: the job in hand finishes; unacknowledged messages go back to the queue."""
        from celery.worker import state

        if self.beat is not None:
            try:
                self.beat.stop()
            except Exception:
                logger.exception("jobs: beat did not stop cleanly")
            self.beat = None
        if self._thread is None:
            return True
        state.should_stop = 0  # the worker's loop checks this between jobs and shuts down warm
        self._thread.join(timeout)
        stopped = not self._thread.is_alive()
        if not stopped:
            logger.error("jobs: the worker is still busy after %.0f s; leaving its job to be retried", timeout)
        state.should_stop = None
        self._thread = None
        return stopped
