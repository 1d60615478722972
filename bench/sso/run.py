#!/usr/bin/env python
"""Time from the IdP's redirect back to the logged-in console page, against a real OpenID provider
(npm oidc-provider, tests/accounts/oidc). Prints figures; never asserts.

    TESSERA_MODE=desktop .venv/bin/python bench/sso/run.py [--logins 200]

Server side, in process (Django's test client on the desktop runtime, SQLite in a temporary folder):
for each log-in the IdP part (authorization, log-in and consent pages) is done first and not timed;
then the timer covers the callback — the token request to the IdP (kept-alive connection), the ID
token check (JWKS cached after the first log-in), the userinfo request only if the ID token lacks a
claim the log-in uses (oidc-provider here puts them in the ID token), linking and role sync, the
session — and the GET of
the console page it redirects to. Side by side, the baseline: a password log-in (POST of the log-in
form, Argon2 included) and the same console page (`--sso-only` skips it).

Besides wall time (which on a shared machine mostly measures the others' load), it prints this
process's CPU time per log-in (the IdP runs in its own process, so it is not counted) and the SQL
statements one log-in costs, callback and console page: figures that do not move with the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TESSERA_MODE", "desktop")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
DATA = tempfile.mkdtemp(prefix="tessera-bench-sso-")
os.environ.setdefault("TESSERA_DATA_DIR", DATA)
os.environ["TESSERA_SQLITE_PATH"] = str(Path(DATA) / "bench.sqlite3")

PASSWORD = "bench-password-4711"


def figures(label: str, samples: list[float], baseline: list[float] | None = None) -> None:
    samples = sorted(samples)
    p50, p99 = statistics.median(samples), samples[max(int(len(samples) * 0.99) - 1, 0)]
    mean = statistics.fmean(samples)
    line = f"  {label:<34} p50 {p50 * 1e3:7.1f} ms   p99 {p99 * 1e3:7.1f} ms   mean {mean * 1e3:7.1f} ms"
    if baseline:
        base = sorted(baseline)
        line += f"   ×{p50 / statistics.median(base):.2f} p50 vs baseline"
    print(line)


def main() -> None:
    if os.environ["TESSERA_MODE"] != "desktop":
        sys.exit("bench/sso runs on the desktop runtime (TESSERA_MODE=desktop)")
    parser = argparse.ArgumentParser()
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--sso-only", action="store_true", help="skip the password log-in baseline")
    args = parser.parse_args()

    import django

    django.setup()
    import requests
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.ALLOWED_HOSTS = ["*"]
    settings.AXES_ENABLED = False  # hundreds of log-ins from one address: measure them, never a lock-out
    call_command("migrate", verbosity=0)

    from accounts.models import User
    from accounts.oidc import oidc_discover
    from accounts.services import user_create
    from accounts.sso import sso_config_save
    from rbac.roles import Role
    from tenants.runtime import workspace_context
    from tenants.services import tenant_single_ensure
    from tests.accounts.conftest import provider_client
    from tests.accounts.oidc_harness import IdPUserAgent, OpenIDProvider

    client_conf = provider_client("bench", ["127.0.0.1"])
    people = {f"p{n}": {"email": f"p{n}@bench.test", "email_verified": True, "name": f"P {n}"} for n in range(10)}
    provider = OpenIDProvider(clients=[client_conf], accounts=people)
    try:
        tenant = tenant_single_ensure(name="Bench Ltd")
        with workspace_context(tenant):
            admin = user_create(email="admin@bench.test", password=PASSWORD, role=Role.ADMIN)
            sso_config_save(
                actor=admin,
                values={
                    "enabled": True,
                    "issuer": provider.issuer,
                    "client_id": client_conf["client_id"],
                    "scopes": "openid email profile",
                    "domains": ["bench.test"],
                },
                client_secret=client_conf["client_secret"],
                discovery=oidc_discover(provider.issuer).document,
            )

        # Time spent waiting on the IdP (the token request; userinfo if asked) during the timed part: what
        # a faster IdP or network would change, not Tessera.
        idp_wait = [0.0]
        session_request = requests.Session.request

        def timed_request(self, *a, **kw):
            t = time.perf_counter()
            try:
                return session_request(self, *a, **kw)
            finally:
                idp_wait[0] += time.perf_counter() - t

        sso, sso_cpu, sso_idp, password = [], [], [], []
        statements: tuple[int, int] | None = None
        agent = IdPUserAgent(provider)
        print(f"runtime desktop (SQLite), {args.logins} log-ins each, IdP {provider.issuer} (oidc-provider)")
        print(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for n in range(args.logins + 10):  # the first 10 warm up (imports, JWKS, connections)
            browser = Client(HTTP_HOST="127.0.0.1")
            started = browser.get("/accounts/oidc/login/")
            callback = urlsplit(agent.authorize(started["Location"], login=f"p{n % 10}"))
            if n == 9:  # one warm log-in, counted statement by statement (not timed)
                with CaptureQueriesContext(connection) as on_callback:
                    back = browser.get(f"{callback.path}?{callback.query}")
                with CaptureQueriesContext(connection) as on_page:
                    page = browser.get(back["Location"])
                statements = (len(on_callback), len(on_page))
                continue
            idp_wait[0] = 0.0
            requests.Session.request = timed_request
            t0, c0 = time.perf_counter(), time.process_time()
            back = browser.get(f"{callback.path}?{callback.query}")
            page = browser.get(back["Location"])
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            requests.Session.request = session_request
            assert back.status_code == 302 and page.status_code == 200, (back.status_code, page.status_code)
            if n >= 10:
                sso.append(elapsed)
                sso_cpu.append(cpu)
                sso_idp.append(idp_wait[0])
            if args.sso_only:
                continue

            browser = Client(HTTP_HOST="127.0.0.1")
            t0 = time.perf_counter()
            posted = browser.post("/accounts/login/", {"username": "admin@bench.test", "password": PASSWORD})
            page = browser.get(posted["Location"])
            elapsed = time.perf_counter() - t0
            assert posted.status_code == 302 and page.status_code == 200
            if n >= 10:
                password.append(elapsed)
        if password:
            figures("password log-in + console (baseline)", password)
        figures("SSO callback + console", sso, password or None)
        figures("  of which CPU in this process", sso_cpu)
        figures("  of which waiting on the IdP", sso_idp)
        figures("  Tessera's own (wall − IdP wait)", [a - b for a, b in zip(sso, sso_idp, strict=True)])
        print(f"  SQL statements per SSO log-in: {statements[0]} callback + {statements[1]} console page")
        print(f"  load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        with workspace_context(tenant):
            # One user agent keeps its IdP session: after the first (JIT) log-in, every SSO log-in timed
            # is the same linked member's, as a returning person's is.
            print(f"  members: {User.objects.count()} (the first SSO log-in joined just in time; the rest re-log-in)")
    finally:
        provider.stop()


if __name__ == "__main__":
    main()
