"""Desktop edition figures: cold start to /health and to the first rendered page, idle RSS and CPU,
installed and package size. Prints them against the targets; asserts nothing.

    python bench/desktop/run.py                      # the installed /usr/bin/tessera (else this checkout)
    python bench/desktop/run.py --idle-seconds 10    # shorter idle window
    python bench/desktop/run.py --checkout           # `python -m desktop` from this checkout
    python bench/desktop/run.py --gui                # also: window under Xvfb, time to console shown,
                                                     # and the window's toolkit alone (the floor under it)

Targets: < 2 s to /health, < 3 s to first page, < 1 % idle CPU, .deb < 40 MB; with --gui (all of Tessera's
processes summed: app, window, WebKit's): closed to the tray < 100 MB PSS and < 0.5 % CPU, window open
< 200 MB PSS and < 1 % CPU (log-in page and logged in), reopen from the tray < 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# Only a run of this checkout (`python -m desktop`) needs it on the path; the installed app must load its own
# bundle alone (with the checkout on PYTHONPATH, a module the bundle lacks would come from here instead).
REPO_ON_PATH = True


def env_for(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESSERA_", "DJANGO_", "PYTEST_"))}
    env.pop("DISPLAY", None)
    env.update({"TESSERA_DATA_DIR": str(data)}, **extra)
    if REPO_ON_PATH:
        env["PYTHONPATH"] = str(REPO)
    return env


def get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with NO_PROXY.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except Exception:
        return 0, b""


def launch(command: list[str], data: Path, **extra: str) -> tuple[subprocess.Popen, float, float, int]:
    """Start; return (process, seconds to /health 200, seconds to the login page rendered, port)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, env=env_for(data, **extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=data.parent
    )
    port = None
    health = page = None
    while time.perf_counter() - started < 120:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with {proc.returncode}")
        if port is None:
            try:
                info = json.loads((data / "tessera.port").read_text())
                port = info["port"] if info["pid"] == proc.pid else None
            except (OSError, ValueError, KeyError):
                pass
        if port is not None and health is None and get(f"http://127.0.0.1:{port}/health")[0] == 200:
            health = time.perf_counter() - started
        if health is not None:
            status, body = get(f"http://127.0.0.1:{port}/accounts/login/")
            if status == 200 and b"<form" in body:
                page = time.perf_counter() - started
                return proc, health, page, port
        time.sleep(0.005)
    raise SystemExit("the app did not start within 120 s")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size: shared libraries counted once across the processes that map them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int(Path(f"/proc/{proc.name}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                out += [int(proc.name), *descendants(int(proc.name))]
    return out


def idle(pid: int, seconds: float) -> tuple[float, float, float, float, float]:
    """Over `seconds` of doing nothing: (RSS MB of the app process, its peak, CPU % of one core for the
    app and its child processes, PSS MB of them all, RSS MB of them all)."""
    pids = [pid, *descendants(pid)]
    cpu0, t0 = sum(cpu_seconds(p) for p in pids), time.perf_counter()
    peak = 0.0
    while time.perf_counter() - t0 < seconds:
        peak = max(peak, rss_mb(pid))
        time.sleep(min(1.0, seconds / 10))
    cpu1, t1 = sum(cpu_seconds(p) for p in pids), time.perf_counter()
    cpu = 100 * (cpu1 - cpu0) / (t1 - t0)
    return rss_mb(pid), peak, cpu, sum(pss_mb(p) for p in pids), sum(rss_mb(p) for p in pids)


BUNDLE = "/usr/lib/tessera"
# The floor under the window: the installed bundle's Toga and WebKit set up as the app sets them up,
# showing one static page. Whatever Tessera adds to its process comes on top of this.
TOOLKIT_ONLY = f"""
import os, sys
sys.path[:] = ["{BUNDLE}/app", "{BUNDLE}/app_packages"] + [p for p in sys.path if not p.endswith("-packages")]
os.environ["TOGA_BACKEND"] = "toga_gtk"
os.environ["NO_AT_BRIDGE"] = "1"
try:
    from desktop.memory import arenas_limit, settle_later
except ImportError:  # a bundle from before desktop.memory
    arenas_limit = settle_later = lambda *args: None
from desktop.window import window_process_gl_off, webview_tune
arenas_limit()
window_process_gl_off()
import toga
from toga.style import Pack

class Floor(toga.App):
    def startup(self):
        self.main_window = toga.MainWindow(title="floor", size=(1200, 800))
        view = toga.WebView(style=Pack(flex=1))
        webview_tune(view._impl.native)
        view.set_content("http://127.0.0.1/", "<h1>Tessera</h1><p>The toolkit alone.</p>")
        self.main_window.content = view
        self.main_window.show()
        settle_later()

Floor(formal_name="Floor", app_id="org.tessera.floor").main_loop()
"""


def toolkit_floor(display: str, seconds: float) -> tuple[float, float]:
    """(RSS, PSS) in MB of a process holding only the window's toolkit, idle for `seconds`."""
    floor = subprocess.Popen(
        ["/usr/bin/python3.11", "-I", "-c", TOOLKIT_ONLY],
        env={**os.environ, "DISPLAY": display},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(10)
    rss, _peak, _cpu, _, _ = idle(floor.pid, seconds)
    pss = pss_mb(floor.pid)
    stop(floor)
    return rss, pss


def tessera_pids(root: int) -> list[int]:
    return [root, *descendants(root)]


def pss_total(root: int) -> tuple[float, dict[str, float]]:
    """Total PSS of the app and every process under it (window, WebKit's), and PSS by process name."""
    by_name: dict[str, float] = {}
    for pid in tessera_pids(root):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        by_name[name if pid != root else "app"] = by_name.get(name if pid != root else "app", 0.0) + pss_mb(pid)
    return sum(by_name.values()), by_name


def idle_state(root: int, seconds: float) -> tuple[float, float, dict[str, float]]:
    """(total PSS MB, CPU % of one core summed over all the processes, PSS by process) after `seconds`."""
    pids = tessera_pids(root)
    cpu0, t0 = sum(cpu_seconds(p) for p in pids if Path(f"/proc/{p}").exists()), time.perf_counter()
    time.sleep(seconds)
    pids_after = [p for p in pids if Path(f"/proc/{p}").exists()]
    cpu1, t1 = sum(cpu_seconds(p) for p in pids_after), time.perf_counter()
    total, by_name = pss_total(root)
    return total, 100 * (cpu1 - cpu0) / (t1 - t0), by_name


def _wait_log(log: Path, needle: str, after: int, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")[after:]
        for line in text.splitlines():
            if needle in line:
                return line
        time.sleep(0.02)
    raise SystemExit(f"never saw {needle!r} in the log:\n{log.read_text()[-3000:]}")


def _webkit_gone(root: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(tessera_pids(root)) == 1:
            return
        time.sleep(0.1)
    raise SystemExit(f"processes left after closing the window: {descendants(root)}")


def gui_states(command: list[str], data: Path, work: Path, seconds: float) -> None:
    """Under Xvfb with a session bus and a tray host: window open (log-in page, then logged in), closed
    to the tray, and the time to reopen. Every figure sums all of Tessera's processes."""
    sys.path.insert(0, str(REPO))
    from tests.desktop.app_process import Console
    from tests.desktop.x11 import window_close

    display = ":97"
    xvfb = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"], stderr=subprocess.DEVNULL
    )
    bus = subprocess.run(
        ["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1"], capture_output=True, text=True
    ).stdout.split()
    bus_env = {"DBUS_SESSION_BUS_ADDRESS": bus[0]}
    watcher = subprocess.Popen(
        ["/usr/bin/python3.11", "-I", str(REPO / "tests/desktop/sni_watcher.py"), f"{BUNDLE}/app_packages"],
        env={**os.environ, **bus_env},
        stdout=subprocess.PIPE,
        text=True,
    )
    watcher.stdout.readline()
    time.sleep(1)
    log = work / "gui.log"
    with log.open("w") as out:
        gui = subprocess.Popen(
            command, env=env_for(data, DISPLAY=display, TESSERA_LOG_LEVEL="INFO", **bus_env), stdout=out, stderr=out
        )
    try:
        line = _wait_log(log, "window: console shown", 0)
        print(f"window: {line.split('window: ', 1)[1]}")
        time.sleep(5)
        total, cpu, by = idle_state(gui.pid, seconds)
        print(
            f"window open, log-in page, idle {seconds:.0f} s: total PSS {total:.0f} MB (target < 200), CPU {cpu:.2f} % "
            f"(target < 1 %)   [{', '.join(f'{k} {v:.0f}' for k, v in sorted(by.items()))}]"
        )

        assert window_close(display, "Tessera") == 1
        _webkit_gone(gui.pid)
        time.sleep(5)
        total, cpu, by = idle_state(gui.pid, seconds)
        print(
            f"closed to the tray, idle {seconds:.0f} s: total PSS {total:.0f} MB (target < 100), CPU {cpu:.2f} % "
            f"(target < 0.5 %)   processes: {len(tessera_pids(gui.pid))}"
        )

        # Log in (over HTTP), and give the window's cookie store the session, as a log-in in the
        # window would have left it; then reopen from the tray (the activate call a second launch makes).
        info = json.loads((data / "tessera.port").read_text())
        console = Console(f"http://127.0.0.1:{info['port']}")
        console.log_in("bench@desk.example")
        session = console.http.cookies.get("tessera_session")
        console.close()
        import sqlite3

        cookies = sqlite3.connect(data / "webview" / "cookies.sqlite")
        cookies.execute(
            "INSERT INTO moz_cookies (name, value, host, path, expiry, lastAccessed, isSecure, isHttpOnly, sameSite)"
            " VALUES ('tessera_session', ?, '127.0.0.1', '/', ?, ?, 0, 1, 1)",
            (session, int(time.time()) + 86400, int(time.time())),
        )
        cookies.commit()
        cookies.close()
        reopens = []
        for _ in range(3):
            size = len(log.read_text(errors="replace"))
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                urllib.request.Request(
                    f"http://127.0.0.1:{info['port']}/_desktop/activate",
                    method="POST",
                    headers={"X-Tessera-Token": info["token"]},
                    data=b"",
                ),
                timeout=10,
            )
            line = _wait_log(log, "window: console shown", size)
            reopens.append(float(line.rsplit(") ", 1)[1].split()[0]))
            time.sleep(3)
            if len(reopens) < 3:
                window_close(display, "Tessera")
                _webkit_gone(gui.pid)
                time.sleep(1)
        print(
            f"reopen from the tray to the console painted: {', '.join(f'{r:.2f}' for r in reopens)} s (target < 1 s); "
            f"page: {line.split('(', 1)[1].split(')')[0]}"
        )
        time.sleep(5)
        total, cpu, by = idle_state(gui.pid, seconds)
        print(
            f"window open, logged in (home), idle {seconds:.0f} s: total PSS {total:.0f} MB (target < 200), "
            f"CPU {cpu:.2f} % (target < 1 %)   [{', '.join(f'{k} {v:.0f}' for k, v in sorted(by.items()))}]"
        )
    finally:
        stop(gui)
        watcher.terminate()
        os.kill(int(bus[1]), signal.SIGTERM)
        xvfb.terminate()
    if Path(BUNDLE).is_dir():
        xvfb = subprocess.Popen(
            ["Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"], stderr=subprocess.DEVNULL
        )
        time.sleep(1)
        rss, pss = toolkit_floor(display, seconds)
        print(
            f"the window's toolkit alone (a Toga WebView showing one static page, no Tessera): "
            f"RSS {rss:.0f} MB, PSS {pss:.0f} MB"
        )
        xvfb.terminate()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3, help="cold starts to time (median reported)")
    parser.add_argument("--checkout", action="store_true", help="run this checkout instead of /usr/bin/tessera")
    parser.add_argument("--gui", action="store_true", help="also start the window under Xvfb")
    args = parser.parse_args()

    installed = Path("/usr/bin/tessera")
    command = [sys.executable, "-m", "desktop"] if args.checkout or not installed.exists() else [str(installed)]
    global REPO_ON_PATH
    REPO_ON_PATH = command[0] == sys.executable
    work = Path(tempfile.mkdtemp(prefix="tessera-bench-"))
    data = work / "data"
    print(f"app: {' '.join(command)}   (load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")

    # First run: empty data folder (creates and migrates the database).
    proc, health, page, _ = launch([*command, "--server-only"], data)
    print(f"first run (empty data folder): /health {health:.2f} s, first page {page:.2f} s")
    stop(proc)

    healths, pages = [], []
    for run in range(args.runs):
        proc, health, page, _port = launch([*command, "--server-only"], data)
        healths.append(health)
        pages.append(page)
        if run < args.runs - 1:
            stop(proc)
    print(
        f"cold start (existing workspace, median of {args.runs}): /health {statistics.median(healths):.2f} s "
        f"(target < 2 s), first page {statistics.median(pages):.2f} s (target < 3 s)"
    )
    time.sleep(5)  # the worker and beat come up after /health
    rss, peak, cpu, _, _ = idle(proc.pid, args.idle_seconds)
    print(
        f"headless (--server-only), idle {args.idle_seconds:.0f} s: total PSS {pss_mb(proc.pid):.0f} MB, "
        f"RSS {rss:.0f} MB (peak {peak:.0f}), CPU {cpu:.2f} % (target < 1 %)"
    )
    if args.gui:  # a workspace with a person, for the window's log-in page and logged-in states
        sys.path.insert(0, str(REPO))
        from tests.desktop.app_process import Console

        info = json.loads((data / "tessera.port").read_text())
        console = Console(f"http://127.0.0.1:{info['port']}")
        console.set_up("bench@desk.example")
        console.close()
    stop(proc)

    if args.gui and shutil.which("Xvfb"):
        gui_states(command, data, work, args.idle_seconds)

    listed = subprocess.run(["dpkg", "-L", "tessera"], capture_output=True, text=True)
    if listed.returncode == 0:
        files = [Path(line) for line in listed.stdout.splitlines()]
        total = sum(p.stat().st_size for p in files if p.is_file() and not p.is_symlink())
        print(f"installed size: {total / 1e6:.0f} MB in {sum(1 for p in files if p.is_file())} files")
    debs = sorted((REPO / "dist").glob("tessera_*.deb"))
    if debs:
        print(f".deb: {debs[-1].name} {debs[-1].stat().st_size / 1e6:.1f} MB (target < 40 MB)")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
