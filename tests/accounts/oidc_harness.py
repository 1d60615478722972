"""Python side of the OpenID provider harness (tests/accounts/oidc/server.mjs): a real npm
`oidc-provider` (pinned in tests/accounts/oidc/package.json; ./test.sh installs it with `npm ci`) on a
free 127.0.0.1 port, and a headless user agent that signs in at its dev interaction pages.

Used by tests/accounts/test_oidc*.py and bench/sso. Each `OpenIDProvider` is one IdP: two of them are
two workspaces' providers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

HARNESS_DIR = Path(__file__).resolve().parent / "oidc"
START_TIMEOUT = 60.0


class HarnessError(RuntimeError):
    pass


def harness_check() -> None:
    if shutil.which("node") is None:
        raise HarnessError("Node 20+ is required for the OpenID provider harness (apt-get install nodejs npm).")
    if not (HARNESS_DIR / "node_modules" / "oidc-provider").is_dir():
        raise HarnessError(f"The OpenID provider harness is not installed: cd {HARNESS_DIR} && npm ci")


class OpenIDProvider:
    """A running oidc-provider. `clients`: [{client_id, client_secret, redirect_uris, ...}];
    `accounts`: {login (= sub): {email, email_verified, name, groups}}."""

    def __init__(self, *, clients: list[dict], accounts: dict | None = None, **options):
        harness_check()
        self.log = tempfile.NamedTemporaryFile(prefix="tessera-oidc-", suffix=".log", delete=False)  # noqa: SIM115
        config = {"clients": clients, "accounts": accounts or {}, **options}
        self.process = subprocess.Popen(
            ["node", "server.mjs", json.dumps(config)],
            cwd=HARNESS_DIR,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        if not line or not line[0].strip():
            self.stop()
            raise HarnessError(f"oidc-provider did not start: {Path(self.log.name).read_text()[-2000:]}")
        started = json.loads(line[0])
        self.issuer: str = started["issuer"]
        self.port: int = started["port"]
        self.http = requests.Session()
        self.http.trust_env = False  # never through a proxy

    def accounts_set(self, accounts: dict) -> None:
        self.http.post(f"{self.issuer}/__test/accounts", json=accounts, timeout=10).raise_for_status()

    def tamper(self, mode: str) -> None:
        """The next token response carries a forged ID token (see server.mjs)."""
        self.http.post(f"{self.issuer}/__test/tamper", json={"mode": mode}, timeout=10).raise_for_status()

    def last_id_token(self) -> str:
        return self.http.get(f"{self.issuer}/__test/last-id-token", timeout=10).json()["id_token"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


class IdPUserAgent:
    """A person's browser as far as the IdP sees it (its cookies = the IdP session): follows the
    authorization redirects, logs in and consents at the dev interaction pages, and stops at the
    first redirect that leaves the IdP (the relying party's callback), which it returns."""

    def __init__(self, provider: OpenIDProvider):
        self.provider = provider
        self.http = requests.Session()
        self.http.trust_env = False

    def authorize(self, url: str, *, login: str, max_steps: int = 12) -> str:
        origin = self.provider.issuer
        for _ in range(max_steps):
            if not url.startswith(origin):
                return url
            response = self.http.get(url, allow_redirects=False, timeout=10)
            if response.status_code in (302, 303):
                url = urljoin(url, response.headers["location"])
                continue
            if response.status_code != 200 or "/interaction/" not in url:
                raise HarnessError(f"Unexpected IdP answer {response.status_code} at {url}: {response.text[:500]}")
            if 'name="login"' in response.text:
                form = {"prompt": "login", "login": login, "password": "any"}
            else:
                form = {"prompt": "consent"}
            posted = self.http.post(url, data=form, allow_redirects=False, timeout=10)
            if posted.status_code not in (302, 303):
                raise HarnessError(
                    f"The IdP refused the {form['prompt']} step: {posted.status_code} {posted.text[:500]}"
                )
            url = urljoin(url, posted.headers["location"])
        raise HarnessError("Too many redirects at the IdP")


def callback_params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
