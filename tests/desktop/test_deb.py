"""The desktop edition as shipped: `make deb` builds offline, `apt install` installs it, and the
installed app works headless (smoke test) and in a real window under Xvfb.

Needs root and apt (it installs the package system-wide); CI on the project's machine is root. The
package is reused from the build cache while its inputs are unchanged, and reinstalled only when it
differs from the one this machine's tests last installed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.desktop.app_process import REPO, Console, app_start

pytestmark = [
    pytest.mark.desktop_only,
    pytest.mark.deb,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("apt-get") is None or not Path("/usr/bin/python3").exists(),
        reason="builds and installs the .deb: needs root and apt",
    ),
]

STATE = Path.home() / ".cache" / "tessera"
TESSERA = "/usr/bin/tessera"


def _run(command: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, (
        f"{command} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="session")
def installed_deb() -> Path:
    """Build (or reuse) dist/*.deb and install it with apt; one xdist worker at a time."""
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / "deb-test.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_", "TESSERA_"))}
        built = _run(["make", "-s", "deb"], timeout=20 * 60, cwd=REPO, env=env)
        deb = Path(built.stdout.strip().splitlines()[-1])
        assert deb.is_file() and deb.suffix == ".deb", built.stdout
        digest = hashlib.sha256(deb.read_bytes()).hexdigest()
        stamp = STATE / "installed-deb.sha256"
        installed = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "tessera"], capture_output=True, text=True)
        if not (stamp.exists() and stamp.read_text() == digest and "installed" in installed.stdout):
            _run(
                ["apt-get", "install", "-y", "-q", "--reinstall", "--no-install-recommends", str(deb)],
                timeout=15 * 60,
                env={**env, "DEBIAN_FRONTEND": "noninteractive"},
            )
            stamp.write_text(digest)
    return deb


def test_the_package_is_small_complete_and_depends_on_the_system_python(installed_deb):
    assert installed_deb.stat().st_size < 40 * 1024 * 1024
    control = _run(["dpkg-deb", "-f", str(installed_deb), "Depends", "Version"], timeout=60).stdout
    assert "python3.11-minimal" in control and "gir1.2-webkit2-4.1" in control
    files = set(_run(["dpkg", "-L", "tessera"], timeout=60).stdout.split())
    for path in (
        TESSERA,
        "/usr/share/man/man1/tessera.1.gz",
        "/usr/share/applications/org.tessera.tessera.desktop",
        "/usr/share/icons/hicolor/256x256/apps/org.tessera.tessera.png",
        "/usr/share/doc/tessera/copyright",
        "/usr/share/doc/tessera/changelog.gz",
        "/usr/lib/tessera/app/desktop/launcher.py",
    ):
        assert path in files, path
    assert Path(TESSERA).read_bytes()[:4] == b"\x7fELF"
    # byte-compiled at build time: a cold start never compiles (the installed tree is read-only)
    assert list(Path("/usr/lib/tessera/app/desktop/__pycache__").glob("launcher.cpython-311.pyc"))
    version = _run([TESSERA, "--version"], timeout=60).stdout
    assert version.startswith("Tessera ")


def test_the_installed_app_runs_on_its_own_packages_without_a_postgresql_driver(installed_deb, tmp_path):
    """The bundle ships no psycopg (the desktop is SQLite only) and the system's dist-packages stay out
    of the app's path: Django still sets up, with the Tenant model's schema-name rule in place."""
    probe = (
        "import sys, importlib.util;"
        "from tenants.models import Tenant;"
        "print(importlib.util.find_spec('psycopg') is None, any(p.endswith('-packages') for p in sys.path),"
        " [v.__name__ for v in Tenant._meta.get_field('schema_name').validators if hasattr(v, '__name__')])"
    )
    env = {**os.environ, "TESSERA_DATA_DIR": str(tmp_path / "data")}
    out = _run([TESSERA, "manage", "shell", "-c", probe], timeout=120, env=env).stdout.strip().splitlines()[-1]
    assert out == "True False ['_check_schema_name']"


def _no_wal(data: Path) -> bool:
    wal = data / "tessera.sqlite3-wal"
    return not wal.exists() or wal.stat().st_size == 0


def test_installed_app_smoke(installed_deb, tmp_path):
    """--server-only, no display → port file → /health → log in → a record → SIGTERM → relaunch."""
    data = tmp_path / "data"
    app = app_start([TESSERA, "--server-only"], data).wait_ready()
    assert app.port_file.is_file()

    console = Console(app.url)
    health = console.http.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert console.http.get("/").headers["location"] == "/setup/"  # first run
    console.set_up("owner@smoke.example")
    console.log_out()
    console.log_in("owner@smoke.example")
    created = console.api(
        "POST",
        "collections",
        {"name": "Customers", "slug": "customers", "fields": [{"key": "name", "type": "text", "required": True}]},
    )
    assert created.status_code == 201, created.text
    record = console.api("POST", "collections/customers/records", {"data": {"name": "Ada Lovelace"}})
    assert record.status_code == 201, record.text
    record_id = record.json()["id"]
    # a webhook endpoint: its signing secret is encrypted at rest (cryptography, loaded on first use)
    hook = console.api("POST", "webhook_endpoints", {"url": "http://127.0.0.1:9/hook"})
    assert hook.status_code == 201 and hook.json()["secret"].startswith("whsec_"), hook.text
    console.close()

    assert app.stop(signal.SIGTERM) == 0, app.log()
    assert not app.port_file.exists()
    assert _no_wal(data)  # checkpointed: the database file alone holds everything

    again = app_start([TESSERA, "--server-only"], data).wait_ready()
    console = Console(again.url)
    console.log_in("owner@smoke.example")
    fetched = console.api("GET", f"collections/customers/records/{record_id}")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["data"]["name"] == "Ada Lovelace"
    console.close()
    assert again.stop() == 0
    assert not again.port_file.exists()


@pytest.fixture
def xvfb(tmp_path):
    if shutil.which("Xvfb") is None or shutil.which("import") is None:
        pytest.fail("Xvfb and ImageMagick's `import` are needed (test.sh installs xvfb and imagemagick)")
    for display in range(90, 140):
        if not Path(f"/tmp/.X11-unix/X{display}").exists() and not Path(f"/tmp/.X{display}-lock").exists():
            break
    proc = subprocess.Popen(
        ["Xvfb", f":{display}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not Path(f"/tmp/.X11-unix/X{display}").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "Xvfb did not start"
        time.sleep(0.05)
    yield f":{display}"
    proc.terminate()
    proc.wait(10)


def _screenshot_stats(display: str, path: Path) -> tuple[int, float]:
    _run(["import", "-display", display, "-window", "root", str(path)], timeout=60)
    out = _run(["convert", str(path), "-format", "%k %[fx:standard_deviation]", "info:"], timeout=60).stdout.split()
    return int(out[0]), float(out[1])


def test_installed_app_shows_the_console_in_a_window_under_xvfb(installed_deb, tmp_path, xvfb):
    data = tmp_path / "gui"
    app = app_start([TESSERA], data, DISPLAY=xvfb, NO_AT_BRIDGE="1").wait_ready()
    assert app.info["gui"] is True
    deadline = time.monotonic() + 60
    while "window: console shown" not in app.log():
        assert time.monotonic() < deadline, f"the window never showed the console:\n{app.log()}"
        time.sleep(0.2)
    time.sleep(1.0)  # let WebKit paint
    shot = tmp_path / "window.png"
    colours, spread = _screenshot_stats(xvfb, shot)
    assert colours > 50 and spread > 0.05, (colours, spread)  # a rendered page, not a blank screen
    if not list(Path("/dev").glob("dri/renderD*")):
        # No GPU: WebKit paints on the CPU and the window's own process keeps Mesa's software GL (and
        # its LLVM, ~50 MB) out; only the web process draws with it (bench/desktop --gui).
        assert "swrast_dri" not in Path(f"/proc/{app.proc.pid}/maps").read_text()

    # A second launch finds this one and brings its window forward instead of starting another.
    second = subprocess.run(
        [TESSERA],
        env={**os.environ, "TESSERA_DATA_DIR": str(data), "DISPLAY": xvfb},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 0 and app.url in second.stderr, second.stderr
    deadline = time.monotonic() + 10
    while "window: brought forward" not in app.log():
        assert time.monotonic() < deadline, app.log()
        time.sleep(0.1)

    assert app.stop(signal.SIGTERM) == 0, app.log()
    assert not app.port_file.exists()
