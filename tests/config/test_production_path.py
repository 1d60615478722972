"""The README's SaaS how-to, run as written: a fresh virtual environment with requirements/saas.txt
alone, the documented commands one by one (two web servers, a worker and beat, each a process of its
own), then a webhook test event made in the demo workspace and delivered and verified.

What this model of a deployment leaves out, and why: the database and Redis are the test run's
private servers (the README's addresses are swapped for theirs, and `createdb` gets their port);
the receiver listens on 127.0.0.1, so loopback is allowed and plain HTTP accepted for it
(TESSERA_OUTBOUND_ALLOWED_HOSTS, TESSERA_WEBHOOK_HTTPS_REQUIRED). The event is made with `manage.py
shell`, standing in for the console's two clicks. Building the environment takes minutes:
TESSERA_PRODUCTION_VENV names one to reuse (rebuilt when requirements/saas.txt changes)."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from standardwebhooks import Webhook

pytestmark = pytest.mark.saas_only

ROOT = Path(__file__).resolve().parents[2]
MAKE_EVENT = """
from django.db import transaction
from accounts.models import User
from tenants.models import Tenant
from tenants.runtime import workspace_context
from webhooks.maintenance import test_event_send
from webhooks.services import endpoint_create
with workspace_context(Tenant.objects.get(slug="demo")):
    admin = User.objects.filter(role="admin").first()
    endpoint, secret = endpoint_create(actor=admin, url="http://127.0.0.1:%d/hook")
    with transaction.atomic():
        test_event_send(actor=admin, endpoint=endpoint)
    print("SECRET=" + secret)
"""


def readme_saas_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("### Running the SaaS runtime locally", 1)[1].split("\nOpen ", 1)[0]
    return [line[4:].split("  #")[0].strip() for line in block.splitlines() if line.startswith("    ")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Receiver(http.server.BaseHTTPRequestHandler):
    got: list[tuple[dict, bytes]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _venv(first_command: str, tmp_path: Path) -> Path:
    wanted = hashlib.sha256((ROOT / "requirements/saas.txt").read_bytes()).hexdigest()
    venv = Path(os.environ.get("TESSERA_PRODUCTION_VENV") or tmp_path / "venv")
    stamp = venv / ".saas.sha"
    if stamp.exists() and stamp.read_text() == wanted:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    create, install = (part.strip() for part in first_command.split("&&"))
    assert create.startswith("python3.11 -m venv .venv") and "requirements/saas.txt" in install
    subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [*shlex.split(install.replace(".venv/", f"{venv}/")), "-q"]
    subprocess.run(pip, cwd=ROOT, check=True, timeout=1200)
    stamp.write_text(wanted)
    return venv


def test_the_readme_saas_how_to_delivers_a_webhook(tmp_path):
    commands = readme_saas_commands()
    venv = _venv(commands[0], tmp_path)
    database = urlsplit(os.environ["TESSERA_TEST_DATABASE_URL"])
    name = f"prodpath_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_", "TESSERA_"))}
    env.update(
        TESSERA_OUTBOUND_ALLOWED_HOSTS="127.0.0.1", TESSERA_WEBHOOK_HTTPS_REQUIRED="0", TESSERA_LOG_FORMAT="text"
    )
    ports = [_free_port(), _free_port()]
    processes: list[subprocess.Popen] = []
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        for command in commands[1:]:
            if command.startswith("export "):
                key, value = command[len("export ") :].split("=", 1)
                if key == "TESSERA_DATABASE_URL":
                    value = database._replace(path=f"/{name}").geturl()
                elif key == "TESSERA_REDIS_URL":
                    value = os.environ["TESSERA_TEST_REDIS_URL"]
                elif key == "TESSERA_PUBLIC_URL":
                    value = value.replace(":8000", f":{ports[0]}")
                env[key] = value
                continue
            argv = shlex.split(command.replace(".venv/", f"{venv}/"))
            if argv[0] == "createdb":  # tessera -> <name>, tessera_directory -> <name>_directory
                argv[1:1] = ["-p", str(database.port)]
                argv[-1] = name + argv[-1].removeprefix("tessera")
            if argv[0].endswith(("uvicorn", "celery")):  # the long-running ones
                for port in ports if argv[0].endswith("uvicorn") else [None]:
                    args = [a if a != "8000" else str(port) for a in argv]
                    log = (logs / f"{Path(argv[0]).name}-{len(processes)}.log").open("w")
                    processes.append(
                        subprocess.Popen(
                            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                        )
                    )
                continue
            done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-3000:])
        assert len(processes) == 4, "two web servers, a worker and beat"
        for port in ports:
            _wait_healthy(port, processes, logs)
        made = subprocess.run(
            [f"{venv}/bin/python", "manage.py", "shell", "-c", MAKE_EVENT % receiver.server_address[1]],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr[-3000:]
        secret = re.search(r"SECRET=(\S+)", made.stdout).group(1)
        deadline = time.monotonic() + 60
        while not _Receiver.got:
            assert time.monotonic() < deadline, "no webhook arrived:\n" + _tails(logs)
            assert all(p.poll() is None for p in processes), "a process died:\n" + _tails(logs)
            time.sleep(0.2)
        headers, body = _Receiver.got[0]
        assert Webhook(secret).verify(body, headers)["type"] == "test.ping"
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        receiver.shutdown()
        for db in (name, f"{name}_directory"):
            subprocess.run(["dropdb", "-h", database.hostname, "-p", str(database.port), "-U", "postgres", db])


def _wait_healthy(port: int, processes, logs: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers={"Host": "tessera.localhost"})
            if urllib.request.urlopen(request, timeout=2).status == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"port {port} never became healthy:\n" + _tails(logs)
        assert all(p.poll() is None for p in processes), "a process died:\n" + _tails(logs)
        time.sleep(0.5)


def _tails(logs: Path) -> str:
    return "\n".join(f"--- {f.name}\n{f.read_text()[-1500:]}" for f in sorted(logs.iterdir()))
