"""Drive the desktop app as a person would: start it as a process, talk HTTP to its console, stop it.

Used for the app run from this checkout (`python -m desktop`) and for the installed .deb
(`/usr/bin/tessera`): the same launcher either way.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Desk-smoke-password-42"


def app_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment a person's session would give the app: no test settings, no display."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "DJANGO_", "TESSERA_")) and k not in {"DISPLAY", "WAYLAND_DISPLAY"}
    }
    env.update({"TESSERA_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", "TESSERA_LOG_LEVEL": "INFO"})
    env.update(extra)
    return env


@dataclass
class AppProcess:
    proc: subprocess.Popen
    data_dir: Path
    log_path: Path
    port: int = 0
    info: dict = field(default_factory=dict)

    @property
    def port_file(self) -> Path:
        return self.data_dir / "tessera.port"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 90.0) -> AppProcess:
        """Until the port file names this process and /health answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the app exited with {self.proc.returncode} while starting:\n{self.log()}")
            try:
                info = json.loads(self.port_file.read_text())
            except (OSError, ValueError):
                info = None
            if info and info.get("pid") == self.proc.pid:
                self.info, self.port = info, int(info["port"])
                try:
                    if httpx.get(f"{self.url}/health", timeout=2, trust_env=False).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"the app did not become ready within {timeout:.0f} s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"the app did not stop within {timeout:.0f} s:\n{self.log()}") from None


def app_start(command: list[str], data_dir: Path, *, log_name: str = "app.log", **env: str) -> AppProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-{log_name}"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            command,
            env=app_env(data_dir, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=data_dir.parent,
        )
    return AppProcess(proc, data_dir, log_path)


def checkout_start(data_dir: Path, *args: str, **env: str) -> AppProcess:
    """The launcher from this checkout (`python -m desktop`), with the test venv's Python."""
    import sys

    return app_start([sys.executable, "-m", "desktop", *args], data_dir, PYTHONPATH=str(REPO), **env)


class Console:
    """A browser-less person at the console: cookies, CSRF token, forms."""

    def __init__(self, base_url: str):
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, trust_env=False, timeout=30)

    def close(self) -> None:
        self.http.close()

    def _csrf(self, path: str) -> str:
        page = self.http.get(path)
        assert page.status_code == 200, (path, page.status_code, page.text[:500])
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def post_form(self, path: str, data: dict, *, page: str | None = None, files=None) -> httpx.Response:
        token = self._csrf(page or path)
        return self.http.post(path, data={"csrfmiddlewaretoken": token, **data}, files=files)

    def set_up(self, email: str, password: str = PASSWORD, business: str = "Smoke Test Shop") -> None:
        response = self.post_form(
            "/setup/",
            {
                "workspace_name": business,
                "full_name": "Sam Smoke",
                "email": email,
                "password": password,
                "password_confirm": password,
            },
        )
        assert response.status_code == 302, response.text[:2000]

    def log_in(self, email: str, password: str = PASSWORD) -> None:
        response = self.post_form("/accounts/login/", {"username": email, "password": password})
        assert response.status_code == 302, response.text[:2000]
        assert self.http.get("/").status_code == 200

    def log_out(self) -> None:
        response = self.post_form("/accounts/logout/", {}, page="/")
        assert response.status_code == 302

    def api(self, method: str, path: str, payload: dict | None = None) -> httpx.Response:
        """The REST API with the console's session (DRF checks the CSRF token on writes)."""
        headers = {"X-CSRFToken": self.http.cookies.get("tessera_csrftoken", ""), "Accept": "application/json"}
        return self.http.request(method, f"/api/v1/{path}", json=payload, headers=headers)
