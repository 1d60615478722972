"""The launcher as a person meets it, run from this checkout: one instance per data folder, graceful
stop, jobs that survive a restart, backups and restores, upgrades, and the LAN sync hub."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile

import httpx
import pytest

from tests.desktop.app_process import REPO, Console, app_env, checkout_start

pytestmark = pytest.mark.desktop_only

OWNER = "owner@desk.example"


def manage(data, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "desktop", "manage", *args],
        env=app_env(data, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=data.parent,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_one_instance_graceful_stop_jobs_backups_restore_and_upgrade(tmp_path):
    data = tmp_path / "data"
    app = checkout_start(data, "--server-only").wait_ready()
    assert oct(app.port_file.stat().st_mode & 0o777) == "0o600"

    # A second launch finds the running one, says where it is, and leaves it alone.
    second = subprocess.run(
        [sys.executable, "-m", "desktop", "--server-only"],
        env=app_env(data, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 0 and f"already running at {app.url}/" in second.stderr
    assert json.loads(app.port_file.read_text())["pid"] == app.proc.pid
    # Its window request is refused politely: a server-only instance has no window (409), a wrong
    # token is not even that (403).
    token = app.info["token"]
    assert httpx.post(f"{app.url}/_desktop/activate", headers={"X-Tessera-Token": token}).status_code == 409
    assert httpx.post(f"{app.url}/_desktop/activate", headers={"X-Tessera-Token": "nope"}).status_code == 403

    console = Console(app.url)
    console.set_up(OWNER, business="Corner Shop")
    page = console.http.get("/settings/desktop/")
    assert page.status_code == 200
    assert str(data) in page.text and "LAN sync hub" in page.text
    assert 'data-testid="jobs-status">Running' in page.text
    made = console.post_form("/settings/desktop/backups/", {}, page="/settings/desktop/")
    assert made.status_code == 302
    backups = sorted((data / "backups").glob("*-manual.tessera-backup"))  # (beside the start's daily one)
    assert len(backups) == 1
    with zipfile.ZipFile(backups[0]) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["workspace"] == "Corner Shop" and manifest["reason"] == "manual"
    download = console.http.get(f"/settings/desktop/backups/{backups[0].name}/")
    assert download.status_code == 200 and download.content == backups[0].read_bytes()
    renamed = console.post_form("/settings/", {"name": "Renamed Shop", "timezone": "UTC"})
    assert renamed.status_code == 302
    console.close()

    assert app.stop() == 0
    assert not app.port_file.exists()
    wal = data / "tessera.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0

    # A job queued while the app is closed runs when it starts again.
    manage(data, "jobs_probe", "queued-while-closed")
    assert not (data / "probes" / "queued-while-closed").exists()
    app = checkout_start(data, "--server-only").wait_ready()
    wait_for(lambda: (data / "probes" / "queued-while-closed").exists(), 30, "the queued job to run")
    # Restoring needs the app closed (or its console).
    refused = manage(data, "restore", str(backups[0]), check=False)
    assert refused.returncode != 0 and "running" in refused.stderr
    # A job due soon, still waiting when the app quits, runs after the next start.
    manage(data, "jobs_probe", "due-after-quit", "--countdown", "15")
    wait_for(lambda: not list((data / "queue").glob("*.msg")), 10, "the worker to take the job")
    assert app.stop() == 0
    assert not (data / "probes" / "due-after-quit").exists()
    assert list((data / "queue").glob("*.msg")), "the waiting job went back to the queue on disk"

    # Restore from the command line: the rename is undone; a backup of what it replaced is kept.
    restored = manage(data, "restore", str(backups[0]))
    assert "Restored Corner Shop" in restored.stdout
    assert any("pre-restore" in p.name for p in (data / "backups").iterdir())

    # An upgrade: this version ships a migration the database has not applied yet.
    manage(data, "migrate", "sessions", "zero")
    (data / "schema.fingerprint").unlink(missing_ok=True)  # (a restore already forgot it)
    app = checkout_start(data, "--server-only").wait_ready()
    assert any("pre-migration" in p.name for p in (data / "backups").iterdir())
    wait_for(lambda: (data / "probes" / "due-after-quit").exists(), 40, "the job due after the quit")
    console = Console(app.url)
    console.log_in(OWNER)  # sessions work again: the migration ran
    settings_page = console.http.get("/settings/")
    assert 'value="Corner Shop"' in settings_page.text

    # Restore from the console: the workspace is replaced and whoever restored logs in again.
    console.post_form("/settings/", {"name": "Renamed Again", "timezone": "UTC"})
    restore = console.post_form("/settings/desktop/restore/", {"name": backups[0].name}, page="/settings/desktop/")
    assert restore.status_code == 302 and restore.headers["location"] == "/accounts/login/"
    console.log_in(OWNER)
    assert 'value="Corner Shop"' in console.http.get("/settings/").text
    audit = console.http.get("/audit/")
    assert "workspace.restored" in audit.text
    console.close()
    assert app.stop() == 0


def test_the_lan_sync_hub_serves_only_sync_and_switches_live(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "desktop.json").write_text(json.dumps({"lan_hub_enabled": True, "lan_port": 0}))
    app = checkout_start(data, "--server-only", TESSERA_LAN_ADDRESS="127.0.0.2").wait_ready()
    prefs = wait_for(lambda: json.loads((data / "desktop.json").read_text()), 10, "preferences")
    lan = f"http://127.0.0.2:{prefs['lan_port']}"

    outside = httpx.get(f"{lan}/accounts/login/", trust_env=False)
    assert outside.status_code == 404 and "only Tessera's phone sync" in outside.text
    assert httpx.get(f"{lan}/health", trust_env=False).status_code == 404
    assert "only Tessera's phone sync" in httpx.get(f"{lan}/sync/v1/../health", trust_env=False).text
    through = httpx.get(f"{lan}/sync/v1/", trust_env=False)
    assert "only Tessera's phone sync" not in through.text  # handed to Tessera (the sync issue adds the route)
    with pytest.raises(httpx.ConnectError):  # the console is not on the LAN listener's address...
        httpx.get(f"http://127.0.0.2:{app.port}/health", trust_env=False)
    # ...and the LAN listener is not the console: nothing listens there on loopback
    assert httpx.get(f"{app.url}/health", trust_env=False).status_code == 200

    # Announced over mDNS (on the loopback address here, so nothing leaves this machine).
    from zeroconf import IPVersion, ServiceBrowser, Zeroconf

    mdns = Zeroconf(interfaces=["127.0.0.2"], ip_version=IPVersion.V4Only)
    try:
        seen: set[str] = set()
        ServiceBrowser(mdns, "_tessera._tcp.local.", handlers=[lambda **event: seen.add(event["name"])])

        def ours():
            # Other Tessera instances on this machine (parallel tests) announce too, possibly under the
            # same name: ours is the one on our LAN port.
            for name in list(seen):
                info = mdns.get_service_info("_tessera._tcp.local.", name, timeout=2000)
                if info is not None and info.port == prefs["lan_port"]:
                    return info
            return None

        found = wait_for(ours, 20, "the mDNS announcement")
    finally:
        mdns.close()
    assert found.parsed_addresses() == ["127.0.0.2"]
    assert found.properties[b"path"] == b"/sync/v1/"

    console = Console(app.url)
    console.set_up(OWNER)
    page = console.http.get("/settings/desktop/").text
    assert f"127.0.0.2:{prefs['lan_port']}" in page
    # zeroconf's register call returns after its announcements, which a browser may hear first.
    page = wait_for(
        lambda: (
            (p := console.http.get("/settings/desktop/").text) and "announced as <code>_tessera._tcp</code>" in p and p
        ),
        20,
        "the console to show the mDNS announcement",
    )
    assert re.search(r'<img src="data:image/svg\+xml[^"]+" alt="QR code for ws://127\.0\.0\.2:\d+/sync/v1/"', page)

    off = console.post_form("/settings/desktop/lan/", {}, page="/settings/desktop/")
    assert off.status_code == 302
    assert json.loads((data / "desktop.json").read_text())["lan_hub_enabled"] is False
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{lan}/sync/v1/", trust_env=False)
    on = console.post_form("/settings/desktop/lan/", {"enabled": "on"}, page="/settings/desktop/")
    assert on.status_code == 302
    assert httpx.get(f"{lan}/health", trust_env=False).status_code == 404  # back, on the remembered port
    assert "workspace.lan_hub_changed" in console.http.get("/audit/").text
    console.close()
    assert app.stop(signal.SIGINT) == 0
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.2", prefs["lan_port"])) != 0


def test_without_a_display_the_console_opens_in_the_browser(tmp_path):
    data = tmp_path / "data"
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)
    app = checkout_start(data, BROWSER=str(browser)).wait_ready()  # no --server-only, no DISPLAY
    assert app.info["gui"] is False
    wait_for(lambda: opened.exists() and f"{app.url}/" in opened.read_text(), 20, "the browser to be opened")
    # Launched again: the running one has no window to show, so the browser opens it once more.
    again = subprocess.run(
        [sys.executable, "-m", "desktop"],
        env=app_env(data, PYTHONPATH=str(REPO), BROWSER=str(browser)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0
    wait_for(lambda: opened.read_text().count(f"{app.url}/") == 2, 20, "the second launch to open the browser")
    assert app.stop() == 0


def test_a_taken_lan_port_is_kept_for_the_paired_phones(tmp_path):
    """Another program on the remembered port: the hub listens elsewhere for now, says so, and keeps
    the remembered port (paired phones know it) for the next start."""
    blocker = socket.socket()
    blocker.bind(("127.0.0.2", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    data = tmp_path / "data"
    data.mkdir()
    (data / "desktop.json").write_text(json.dumps({"lan_hub_enabled": True, "lan_port": port}))
    try:
        app = checkout_start(data, "--server-only", TESSERA_LAN_ADDRESS="127.0.0.2").wait_ready()
        console = Console(app.url)
        console.set_up(OWNER)
        page = console.http.get("/settings/desktop/").text
        assert 'data-testid="lan-port-taken"' in page and f"Port {port}, the one paired phones use" in page
        assert json.loads((data / "desktop.json").read_text())["lan_port"] == port
        console.close()
        assert app.stop() == 0
    finally:
        blocker.close()
