"""The Celery app's worker start hooks, in the worker's own process and in a prefork child."""

from __future__ import annotations

import importlib
import os
import sys
import types

from celery.signals import worker_process_init

celery_app = importlib.import_module("config.celery_app")  # (config.celery_app is also the app object)


def _fake_postgresql_backend(monkeypatch) -> dict:
    pools = {"default": object()}
    wrapper = type("DatabaseWrapper", (), {"_connection_pools": pools})
    monkeypatch.setitem(sys.modules, celery_app._POSTGRESQL_BACKEND, types.SimpleNamespace(DatabaseWrapper=wrapper))
    return pools


def test_the_solo_pool_keeps_its_own_connection_pool(monkeypatch):
    """The solo pool (the desktop app's worker) sends worker_process_init in the worker's own process:
    its connection pool is its own and must stay."""
    pools = _fake_postgresql_backend(monkeypatch)
    worker_process_init.send(sender="desktop@localhost")
    assert "default" in pools


def test_without_the_postgresql_backend_nothing_is_imported(monkeypatch):
    """The desktop ships no PostgreSQL driver: the hook must not import the backend (it logged an
    ImportError traceback at every start of the installed app)."""
    monkeypatch.delitem(sys.modules, celery_app._POSTGRESQL_BACKEND, raising=False)
    monkeypatch.setattr(celery_app, "_PARENT_PID", -1)  # as in a forked child
    worker_process_init.send(sender="desktop@localhost")
    assert celery_app._POSTGRESQL_BACKEND not in sys.modules


def test_a_prefork_child_forgets_the_parents_pool(monkeypatch):
    pools = _fake_postgresql_backend(monkeypatch)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: as billiard's prefork child would, after the fork
        worker_process_init.send(sender="saas@localhost")
        os.write(write, b"cleared" if not pools else b"kept")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.waitpid(pid, 0)
    assert answer == b"cleared"
    assert "default" in pools  # the parent's own pool is untouched
