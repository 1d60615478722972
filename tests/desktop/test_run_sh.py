"""./run.sh as the README tells a newcomer to run it: with nothing else started, a webhook test event
is delivered (its background-jobs worker runs beside the web server) and Ctrl+C stops both. The
endpoint and the event are made with `manage.py shell` on the same data folder, standing in for the
console's two clicks (the console itself is tested elsewhere)."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.desktop_only

ROOT = Path(__file__).resolve().parents[2]
MAKE_EVENT = """
from django.db import transaction
from accounts.models import User
from tenants.runtime import workspace_context, workspace_list
from webhooks.maintenance import test_event_send
from webhooks.services import endpoint_create
with workspace_context(list(workspace_list())[0]):
    admin = User.objects.filter(role="admin").first()
    endpoint, _ = endpoint_create(actor=admin, url="http://127.0.0.1:%d/hook")
    with transaction.atomic():
        test_event_send(actor=admin, endpoint=endpoint)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self):
        self.bodies.append(self.rfile.read(int(self.headers.get("content-length", 0))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_run_sh_delivers_a_webhook_with_nothing_else_started(tmp_path):
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_", "TESSERA_"))}
    env.update(TESSERA_DATA_DIR=str(tmp_path / "data"), TESSERA_PORT=str(_free_port()))
    log = (tmp_path / "run.log").open("w+")
    app = subprocess.Popen(
        ["./run.sh"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300  # the first run installs requirements/desktop.txt
        while "Tessera is running" not in Path(log.name).read_text():
            assert app.poll() is None and time.monotonic() < deadline, Path(log.name).read_text()[-3000:]
            time.sleep(0.5)
        shell = {**env, "TESSERA_MODE": "desktop", "DJANGO_SETTINGS_MODULE": "config.settings"}
        made = subprocess.run(
            [".venv/bin/python", "manage.py", "shell", "-c", MAKE_EVENT % receiver.server_address[1]],
            cwd=ROOT, env=shell, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr[-3000:]
        deadline = time.monotonic() + 60
        while not _Receiver.bodies:
            assert time.monotonic() < deadline, "no webhook arrived\n" + Path(log.name).read_text()[-3000:]
            time.sleep(0.2)
        assert b'"type":"test.ping"' in _Receiver.bodies[0]
    finally:
        os.killpg(app.pid, signal.SIGINT)  # Ctrl+C: the server and its worker stop together
        left = _group_left(app.pid, wait=30)
        if left:
            os.killpg(app.pid, signal.SIGKILL)
        app.wait(timeout=10)
        receiver.shutdown()
    assert not left, f"still running after Ctrl+C: {left}"


def _group_left(pgid: int, *, wait: float) -> str:
    """What of the process group still runs after `wait` seconds (zombies do not count)."""
    deadline = time.monotonic() + wait
    while True:
        found = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-g", str(pgid)], capture_output=True, text=True)
        alive = [
            line for line in found.stdout.splitlines() if line.split()[1:2] and not line.split()[1].startswith("Z")
        ]
        if not alive or time.monotonic() > deadline:
            return "\n".join(alive)
        time.sleep(0.5)
