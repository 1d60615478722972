"""One running app per data folder: the port file, the lock, finding and waking the live instance."""

from __future__ import annotations

import http.server
import json
import os
import stat
import threading

import pytest

from desktop.instance import (
    InstanceLock,
    PortFile,
    instance_activate,
    instance_find,
    pid_alive,
    portfile_read,
    portfile_remove,
    portfile_write,
)

pytestmark = pytest.mark.desktop_only


def test_port_file_is_written_whole_private_and_read_back(tmp_path):
    path = tmp_path / "tessera.port"
    info = PortFile(pid=os.getpid(), port=43210, gui=True, version="9.9")
    portfile_write(path, info)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["tessera.port"]  # no temporary file left behind
    assert portfile_read(path) == info
    assert info.url == "http://127.0.0.1:43210/"
    assert json.loads(path.read_text())["token"] == info.token


def test_unreadable_or_missing_port_file_reads_as_none(tmp_path):
    assert portfile_read(tmp_path / "nope") is None
    (tmp_path / "bad").write_text("{not json")
    assert portfile_read(tmp_path / "bad") is None


def test_only_the_owner_removes_the_port_file(tmp_path):
    path = tmp_path / "tessera.port"
    portfile_write(path, PortFile(pid=os.getpid() + 100000, port=1))
    assert portfile_remove(path, pid=os.getpid()) is False
    assert path.exists()
    portfile_write(path, PortFile(pid=os.getpid(), port=1))
    assert portfile_remove(path, pid=os.getpid()) is True
    assert not path.exists()


def test_the_lock_admits_one_holder_and_frees_on_release(tmp_path):
    first, second = InstanceLock(tmp_path / "l"), InstanceLock(tmp_path / "l")
    assert first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


class _Tessera(http.server.BaseHTTPRequestHandler):
    token = "secret-token"
    activations: list = []

    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def do_POST(self):
        ok = self.path == "/_desktop/activate" and self.headers.get("X-Tessera-Token") == self.token
        self.activations.append(ok)
        self.send_response(204 if ok else 403)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_instance():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tessera)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_live_instance_is_found_and_asked_to_show_its_window(tmp_path, fake_instance):
    path = tmp_path / "tessera.port"
    portfile_write(path, PortFile(pid=os.getpid(), port=fake_instance, token=_Tessera.token))
    info = instance_find(path)
    assert info is not None and info.port == fake_instance
    assert instance_activate(info) is True
    assert instance_activate(PortFile(pid=os.getpid(), port=fake_instance, token="wrong")) is False


def test_a_stale_port_file_finds_nothing(tmp_path, fake_instance):
    path = tmp_path / "tessera.port"
    dead_pid = 2**22 + 12345
    assert not pid_alive(dead_pid)
    portfile_write(path, PortFile(pid=dead_pid, port=fake_instance))
    assert instance_find(path) is None  # process gone
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        unused = s.getsockname()[1]
    portfile_write(path, PortFile(pid=os.getpid(), port=unused))
    assert instance_find(path) is None  # nobody answers /health
