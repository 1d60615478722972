"""A real Tessera server for tests: uvicorn running `config.asgi:application` with the production
settings (`config.settings`, not the test ones) on a free 127.0.0.1 port, in a subprocess, pointed at
a database the caller names — normally the very test database pytest-django created for this (xdist)
worker. Used by the browser tests (tests/browser) and the API fuzzing run (tests/partners).
"""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from django.db import connections

from tests.conftest import MODE, SAAS

SERVER_START_TIMEOUT = 60.0
SERVER_DATABASE_VARIABLES = {"TESSERA_SQLITE_PATH", "TESSERA_DATABASE_URL", "TESSERA_DIRECTORY_DATABASE_URL"}
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class TesseraServer:
    port: int
    process: subprocess.Popen
    log_path: Path
    base_domain: str = ""
    workdir: Path | None = None

    @property
    def origin(self) -> str:
        """The console's origin on the desktop (and the bare-IP origin in SaaS)."""
        return f"http://127.0.0.1:{self.port}"

    def public_url(self, path: str = "/") -> str:
        """SaaS: the public site (sign-up) on the bare domain."""
        return f"http://{self.base_domain}:{self.port}{path}"

    def tenant_url(self, slug: str, path: str = "/") -> str:
        """SaaS: a workspace on its own subdomain."""
        return f"http://{slug}.{self.base_domain}:{self.port}{path}"

    def url(self, path: str = "/") -> str:
        return self.origin + path

    def log_tail(self, lines: int = 150) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no server log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_env(connection) -> dict[str, str]:
    """Point the server at the test database pytest-django created (worker suffix included)."""
    sd = connection.settings_dict
    if SAAS:
        user = urllib.parse.quote(sd.get("USER") or "", safe="")
        password = urllib.parse.quote(sd.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = sd.get("HOST") or "127.0.0.1"
        if host.startswith("/"):  # a Unix socket directory
            query = "?host=" + urllib.parse.quote(host, safe="")
            host = ""
        else:
            query = ""
        port = f":{sd['PORT']}" if sd.get("PORT") else ""
        # the cells' directory: the test database pytest-django made for it (same server)
        directory = connections["directory"].settings_dict["NAME"]
        return {
            "TESSERA_DATABASE_URL": f"postgres://{auth}{host}{port}/{sd['NAME']}{query}",
            "TESSERA_DIRECTORY_DATABASE_URL": f"postgres://{auth}{host}{port}/{directory}{query}",
        }
    name = str(sd["NAME"])
    if name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
        raise RuntimeError(f"The desktop test database must be a file for a real server to share it, not {name!r}")
    return {"TESSERA_SQLITE_PATH": name}


def committed_database_env(connection, workdir: Path, name: str) -> dict[str, str]:
    """A server's database for a test that commits: the test database itself in SaaS (its workspace
    gets a schema of its own), a copy of it on the desktop, so nothing committed reaches the rest of
    the suite."""
    env = database_env(connection)
    if SAAS:
        return env
    copy = workdir / f"{name}.sqlite3"
    source, target = sqlite3.connect(env["TESSERA_SQLITE_PATH"]), sqlite3.connect(copy)
    with target:
        source.backup(target)
    source.close()
    target.close()
    return {"TESSERA_SQLITE_PATH": str(copy)}


def run_module(module: str, env: dict, *args: str, timeout: float = 120) -> str:
    """Run `python -m <module> args…` with the production settings against `env`'s database; its stdout."""
    out = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def wait_healthy(server: TesseraServer) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"The server exited with status {server.process.returncode} while starting.\n"
                f"--- server log ---\n{server.log_tail()}"
            )
        try:
            with opener.open(server.url("/health"), timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(
        f"The server did not become healthy within {SERVER_START_TIMEOUT:.0f} s (last: {last}).\n"
        f"--- server log ---\n{server.log_tail()}"
    )


def start_server(
    env_db: dict[str, str], base_domain: str, port: int | None = None, extra_env: dict[str, str] | None = None
) -> TesseraServer:
    """Start a server; on `port` when given (a restart on the same address), else on a free one.
    `extra_env` is set last (a test's own settings: a Stripe stand-in, a broker, the secret key)."""
    workdir = Path(tempfile.mkdtemp(prefix="tessera-browser-server-"))
    log_path = workdir / "server.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "DJANGO_")) and key not in SERVER_DATABASE_VARIABLES
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",  # the production settings, not config.settings.test
            "TESSERA_MODE": MODE,
            "TESSERA_SECRET_KEY": secrets.token_urlsafe(40),
            "TESSERA_LOG_FORMAT": "text",
            "TESSERA_DEBUG": "0",
            # The tests' identity providers and receivers listen on this machine (core.ssrf's allow-list)
            "TESSERA_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
            # Background exports' files: the server's own folder, never the repository's var/
            "TESSERA_EXPORTS_DIR": str(workdir / "exports"),
            **env_db,
            **(extra_env or {}),
        }
    )
    if SAAS:
        env["TESSERA_BASE_DOMAIN"] = base_domain
    else:
        # The server's own data folder (secret key, logs, queue); the database is the test one.
        env["TESSERA_DATA_DIR"] = str(workdir / "data")
    last_error: Exception | None = None
    wanted = port
    for _attempt in range(3):  # a free port can be taken between choosing and binding it
        port = wanted or free_port()
        if SAAS:  # links in e-mails and the sign-up hand-off point here (TESSERA_PUBLIC_URL)
            env["TESSERA_PUBLIC_URL"] = f"http://{base_domain}:{port}"
        log = log_path.open("ab")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--lifespan",
                "off",
                "--log-level",
                "info",
                "--timeout-graceful-shutdown",
                "3",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        server = TesseraServer(port, process, log_path, base_domain, workdir)
        try:
            wait_healthy(server)
            return server
        except RuntimeError as exc:
            server.stop()
            last_error = exc
            if "address already in use" not in server.log_tail().lower():
                break
    raise RuntimeError(str(last_error))


def test_databases_missing() -> set[str]:
    """The aliases a real server needs (SaaS: the cells' directory too) whose test database
    pytest-django has not set up, because no collected test asked for them (`db`, `django_db`)."""
    aliases = {"default", "directory"} if SAAS else {"default"}
    return {alias for alias in aliases if not is_test_database(connections[alias].settings_dict)}


def is_test_database(settings_dict) -> bool:
    """Whether the connection already points at its test database (decided without connecting)."""
    test_name = (settings_dict.get("TEST") or {}).get("NAME")
    if test_name:
        return str(settings_dict["NAME"]) == str(test_name)
    return str(settings_dict["NAME"]).startswith("test_")
