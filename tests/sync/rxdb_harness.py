"""Python side of the Node RxDB harness (tests/sync/rxdb/driver.mjs): start it, send it commands, read
its JSON replies. Used by tests/sync/test_rxdb_clients.py and bench/sync/run.py.

The driver runs real RxDB clients (npm `rxdb`, pinned in tests/sync/rxdb/package.json; installed by
./test.sh with `npm ci`). Commands run concurrently in the driver; `send` returns a sequence number
and `result` waits for that command's reply.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HARNESS_DIR = Path(__file__).resolve().parent / "rxdb"
DRIVER = HARNESS_DIR / "driver.mjs"


class DriverError(RuntimeError):
    pass


def harness_check() -> None:
    """Fail with the fix when Node or the pinned packages are missing (./test.sh installs them)."""
    if shutil.which("node") is None:
        raise DriverError("Node 20+ is required for the RxDB harness (apt-get install nodejs npm).")
    if not (HARNESS_DIR / "node_modules" / "rxdb").is_dir():
        raise DriverError(f"The RxDB harness is not installed: cd {HARNESS_DIR} && npm ci --no-audit --no-fund")
    if not (HARNESS_DIR / "node_modules" / "@tessera" / "sync").is_dir():
        raise DriverError("The client SDK is not built into the harness: ./test.sh packs clients/js and installs it")


class RxDriver:
    def __init__(self, *, trace: bool = False):
        harness_check()
        trace = trace or os.environ.get("TESSERA_RXDB_TRACE") == "1"  # frames to the log, kept
        self.trace = trace
        self.log = tempfile.NamedTemporaryFile(prefix="tessera-rxdb-", suffix=".log", delete=False)  # noqa: SIM115
        env = {**os.environ, "TESSERA_RXDB_TRACE": "1" if trace else "0"}
        self.process = subprocess.Popen(
            ["node", str(DRIVER)],
            cwd=HARNESS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            text=True,
            bufsize=1,
        )
        self._seq = 0
        self._lock = threading.Lock()
        self._replies: dict[int, queue.Queue] = {}
        self._reader = threading.Thread(target=self._read, name="rxdb-driver", daemon=True)
        self._reader.start()

    def _box(self, seq: int) -> queue.Queue:
        with self._lock:
            return self._replies.setdefault(seq, queue.Queue(maxsize=1))

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            if isinstance(reply, dict) and isinstance(reply.get("seq"), int):
                self._box(reply["seq"]).put(reply)

    def send(self, cmd: str, **params: Any) -> int:
        with self._lock:
            self._seq += 1
            seq = self._seq
        self.process.stdin.write(json.dumps({"seq": seq, "cmd": cmd, **params}) + "\n")
        self.process.stdin.flush()
        return seq

    def result(self, seq: int, timeout: float = 90) -> dict:
        try:
            reply = self._box(seq).get(timeout=timeout)
        except queue.Empty:
            raise DriverError(f"no reply to command #{seq} within {timeout} s\n{self.log_tail()}") from None
        with self._lock:
            self._replies.pop(seq, None)
        if not reply.get("ok"):
            raise DriverError(f"{reply.get('error')}\n--- driver log ---\n{self.log_tail()}")
        return reply

    def call(self, cmd: str, reply_timeout: float = 90, **params: Any) -> dict:
        """Send a command and wait for its reply (`timeout` in params is the driver's own, in ms)."""
        return self.result(self.send(cmd, **params), timeout=reply_timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()
        if self.trace:
            print(f"RxDB driver log (frames): {self.log.name}")
        else:
            os.unlink(self.log.name)


def wait_until(predicate, timeout: float = 15, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def rows_as_the_spine_writes(actor, collection, numbers, data=lambda n: {"title": f"Job {n}", "qty": n}) -> None:
    """Records and their change-feed rows as records.services._record_commit writes them for a
    creation (sequence numbers reserved under the same counter lock), in bulk, without the per-record
    audit event and hooks (nothing listens to this collection yet)."""
    from django.db import transaction
    from django.utils import timezone

    from core.actors import Actor
    from records import models
    from records.models import Change, Record, record_id_new
    from records.services import _seq_lock, _seq_next

    numbers = list(numbers)
    with transaction.atomic():
        _seq_lock()
        first = _seq_next(len(numbers))
        now, stamp = timezone.now(), Actor.of(actor).stamp()
        records, changes = [], []
        for offset, n in enumerate(numbers):
            values = data(n)
            record = Record(
                id=record_id_new(),
                livemode=collection.livemode,
                collection=collection,
                data=values,
                version=1,
                seq=first + offset,
                created_at=now,
                updated_at=now,
                created_by=stamp,
                updated_by=stamp,
            )
            if hasattr(models, "record_key"):  # records keyed by (livemode, id)
                record.key = models.record_key(livemode=record.livemode, record_id=record.id)
            records.append(record)
            changes.append(
                Change(
                    seq=record.seq,
                    livemode=record.livemode,
                    collection=collection,
                    record_id=record.id,
                    op=Change.Op.CREATED,
                    version=1,
                    data=values,
                    changed_fields=sorted(values),
                    actor=stamp,
                    occurred_at=now,
                )
            )
        Record.objects.bulk_create(records, batch_size=2000)
        Change.objects.bulk_create(changes, batch_size=2000)
