"""One file holds the whole workspace; restoring checks it completely before replacing anything."""

from __future__ import annotations

import json
import sqlite3
import zipfile

import pytest

from desktop.backup import (
    BackupError,
    backup_check,
    backup_list,
    backup_restore,
    backup_write,
    backups_prune,
)

pytestmark = pytest.mark.desktop_only


@pytest.fixture
def workspace(tmp_path, tenants_provisioned, db):
    """A data folder whose database is a copy of the migrated test database (one tenant, its Admin).

    Copied with VACUUM INTO from a connection of its own: what the session committed, nothing else."""
    from django.db import connection

    source_name = connection.settings_dict["NAME"]
    assert "test" in str(source_name), source_name
    data = tmp_path / "data"
    (data / "files" / "attachments").mkdir(parents=True)
    (data / "files" / "attachments" / "logo.txt").write_text("logo v1")
    (data / "secret_key").write_text("secret-one")
    copy = data / "tessera.sqlite3"
    source = sqlite3.connect(source_name)
    source.execute("VACUUM INTO ?", (str(copy),))
    source.close()
    return data, copy


def workspace_name(db) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT name FROM tenants_tenant WHERE is_template = 0 ORDER BY id").fetchone()[0]


def rename(db, name: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE tenants_tenant SET name = ?", (name,))


def known(db) -> dict[str, set[str]]:
    with sqlite3.connect(db) as conn:
        out: dict[str, set[str]] = {}
        for app, name in conn.execute("SELECT app, name FROM django_migrations"):
            out.setdefault(app, set()).add(name)
        return out


def test_backup_and_restore_round_trip(workspace):
    data, db = workspace
    rename(db, "Before Ltd")
    info = backup_write(db_path=db, data_dir=data, reason="manual")
    assert info.path.parent == data / "backups" and info.path.name.endswith(".tessera-backup")
    assert info.workspace == "Before Ltd" and info.size > 0
    assert info.path.stat().st_mode & 0o077 == 0  # private: it holds the secret key
    with zipfile.ZipFile(info.path) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
    assert {"manifest.json", "database.sqlite3", "secret_key", "files/attachments/logo.txt"} == names
    assert manifest["format"] == 1 and "tenants" in manifest["migrations"]

    rename(db, "After Ltd")
    (data / "files" / "attachments" / "logo.txt").write_text("logo v2")
    (data / "files" / "stray.txt").write_text("added later")
    (data / "secret_key").write_text("secret-two")
    restored = backup_restore(path=info.path, db_path=db, data_dir=data, known_migrations=known(db))
    assert restored.workspace == "Before Ltd"
    assert workspace_name(db) == "Before Ltd"
    assert (data / "files" / "attachments" / "logo.txt").read_text() == "logo v1"
    assert not (data / "files" / "stray.txt").exists()
    assert (data / "secret_key").read_text() == "secret-one"
    assert [b.name for b in backup_list(data)] == [info.name]


def _rewrite(src, dest, change):
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dest, "w") as b:
        for item in a.infolist():
            name, content = change(item.filename, a.read(item.filename))
            if name is not None:
                b.writestr(name, content)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda n, c: (n, c + b"x") if n == "secret_key" else (n, c), "does not match its checksum"),
        (lambda n, c: (None, c) if n == "database.sqlite3" else (n, c), "incomplete"),
        (lambda n, c: (n, c.replace(b'"format": 1', b'"format": 7')) if n == "manifest.json" else (n, c), "format"),
        (
            lambda n, c: (n, c.replace(b'"secret_key"', b'"../secret_key"')) if n == "manifest.json" else (n, c),
            "unsafe",
        ),
    ],
)
def test_a_damaged_or_foreign_backup_is_refused_and_nothing_changes(workspace, tmp_path, change, message):
    data, db = workspace
    good = backup_write(db_path=db, data_dir=data)
    bad = tmp_path / "bad.tessera-backup"
    _rewrite(good.path, bad, change)
    rename(db, "Current Ltd")
    with pytest.raises(BackupError, match=message):
        backup_check(bad)
    with pytest.raises(BackupError, match=message):
        backup_restore(path=bad, db_path=db, data_dir=data, known_migrations=known(db))
    assert workspace_name(db) == "Current Ltd"


def test_not_a_backup_at_all(tmp_path):
    junk = tmp_path / "holiday.jpg"
    junk.write_bytes(b"\xff\xd8\xff not a zip")
    with pytest.raises(BackupError, match="not a Tessera backup"):
        backup_check(junk)


def test_a_backup_from_a_newer_version_is_refused(workspace):
    data, db = workspace
    shipped = known(db)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES ('records', '9999_future', '2030-01-01')"
        )
    newer = backup_write(db_path=db, data_dir=data)
    with pytest.raises(BackupError, match="newer version of Tessera"):
        backup_restore(path=newer.path, db_path=db, data_dir=data, known_migrations=shipped)


def test_pruning_keeps_the_newest_automatic_backups_and_every_manual_one(workspace):
    data, db = workspace
    folder = data / "backups"
    folder.mkdir()
    made = backup_write(db_path=db, data_dir=data, reason="manual")
    for i in range(4):
        auto = backup_write(db_path=db, data_dir=data, reason="pre-migration")
        auto.path.rename(folder / f"tessera-2020010{i}-000000-pre-migration.tessera-backup")
    removed = backups_prune(data, keep=2)
    assert removed == 2
    left = sorted(p.name for p in folder.iterdir())
    assert made.name in left and len(left) == 3
    assert "tessera-20200103-000000-pre-migration.tessera-backup" in left


def test_a_daily_backup_is_due_once_a_day_and_only_the_kept_count_stays(workspace):
    from datetime import UTC, datetime, timedelta

    from desktop.backup import backup_daily_due, backup_filename

    data, db = workspace
    assert backup_daily_due(data)
    folder = data / "backups"
    folder.mkdir()
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    made = backup_write(db_path=db, data_dir=data, reason="daily")
    for days in range(1, 6):
        made.path.with_name(backup_filename("daily", now - timedelta(days=days))).write_bytes(made.path.read_bytes())
    made.path.rename(folder / backup_filename("daily", now - timedelta(hours=3)))
    assert not backup_daily_due(data, now=now)
    assert backup_daily_due(data, now=now + timedelta(hours=21))
    manual = backup_write(db_path=db, data_dir=data, reason="manual")
    assert backups_prune(data, keep=3, reasons={"daily"}) == 3
    left = sorted(p.name for p in folder.iterdir())
    assert manual.name in left and len([n for n in left if n.endswith("-daily.tessera-backup")]) == 3


def test_no_backup_of_a_database_that_is_not_there(tmp_path):
    with pytest.raises(BackupError, match="no workspace database"):
        backup_write(db_path=tmp_path / "tessera.sqlite3", data_dir=tmp_path)
    assert not (tmp_path / "tessera.sqlite3").exists()  # not created by the attempt
