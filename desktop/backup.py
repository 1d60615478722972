"""The whole workspace in one file, and back: the archive format, writing, checking and restoring.

A backup is a zip (`*.tessera-backup`) holding a consistent copy of the SQLite database (VACUUM INTO:
a snapshot even while the app writes), the workspace's files, the installation's secret key (sessions
and secrets encrypted at rest need it on another machine) and `manifest.json` with a SHA-256 per
member. Restoring checks everything before it touches the live data, then copies the database in
with SQLite's online backup API (one step, under SQLite's own lock), so a running app keeps serving.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from desktop import paths
from desktop.version import app_version

FORMAT = 1
SUFFIX = ".tessera-backup"
MANIFEST = "manifest.json"
DATABASE = "database.sqlite3"
SECRET_KEY = "secret_key"
FILES = "files/"


class BackupError(Exception):
    """A backup that cannot be made or restored; `message` says why, for the person who asked."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    created_at: datetime
    reason: str
    app_version: str
    workspace: str
    size: int

    @property
    def name(self) -> str:
        return self.path.name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _db_facts(db: Path) -> tuple[str, dict[str, list[str]]]:
    """(workspace name, {app: [applied migrations]}) read straight from a database file."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        try:
            row = conn.execute("SELECT name FROM tenants_tenant WHERE is_template = 0 ORDER BY id LIMIT 1").fetchone()
        except sqlite3.DatabaseError:
            row = None
        migrations: dict[str, list[str]] = {}
        for app, name in conn.execute("SELECT app, name FROM django_migrations ORDER BY app, name"):
            migrations.setdefault(app, []).append(name)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"That database is not a Tessera workspace ({exc}).") from exc
    finally:
        conn.close()
    return (row[0] if row else ""), migrations


def backup_filename(reason: str, when: datetime | None = None) -> str:
    when = when or datetime.now(UTC)
    return f"tessera-{when:%Y%m%d-%H%M%S}-{reason}{SUFFIX}"


def backup_write(*, db_path: Path, data_dir: Path, dest: Path | None = None, reason: str = "manual") -> BackupInfo:
    """Write one backup file; the destination appears only when complete (temporary name, rename)."""
    created = datetime.now(UTC)
    dest = dest or paths.backups_dir(data_dir) / backup_filename(reason, created)
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=data_dir) as tmp:
        snapshot = Path(tmp) / DATABASE
        try:
            source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        except sqlite3.Error as exc:  # never create a database where there is none
            raise BackupError(f"There is no workspace database at {db_path}.") from exc
        try:
            source.execute("VACUUM INTO ?", (str(snapshot),))
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"Could not copy the database: {exc}") from exc
        finally:
            source.close()
        workspace, migrations = _db_facts(snapshot)
        members: list[tuple[str, Path]] = [(DATABASE, snapshot)]
        secret = data_dir / "secret_key"
        if secret.is_file():
            members.append((SECRET_KEY, secret))
        files = paths.files_dir(data_dir)
        if files.is_dir():
            for path in sorted(p for p in files.rglob("*") if p.is_file()):
                members.append((FILES + path.relative_to(files).as_posix(), path))
        manifest = {
            "format": FORMAT,
            "app": "tessera",
            "app_version": app_version(),
            "created_at": created.isoformat(),
            "reason": reason,
            "workspace": workspace,
            "migrations": migrations,
            "sha256": {name: _sha256(path) for name, path in members},
        }
        part = dest.with_name(f".{dest.name}.part")
        with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            archive.writestr(MANIFEST, json.dumps(manifest, indent=2))
            for name, path in members:
                archive.write(path, name)
        part.chmod(0o600)  # the whole workspace, secret key included: for this user only
        with open(part, "rb") as f:
            os.fsync(f.fileno())
        os.replace(part, dest)
    return BackupInfo(dest, created, reason, manifest["app_version"], workspace, dest.stat().st_size)


def backup_inspect(path: Path) -> BackupInfo:
    manifest = _manifest(path)
    return BackupInfo(
        path=path,
        created_at=datetime.fromisoformat(manifest["created_at"]),
        reason=str(manifest.get("reason", "")),
        app_version=str(manifest.get("app_version", "")),
        workspace=str(manifest.get("workspace", "")),
        size=path.stat().st_size,
    )


def backup_list(data_dir: Path) -> list[BackupInfo]:
    folder = paths.backups_dir(data_dir)
    out = []
    for path in sorted(folder.glob(f"*{SUFFIX}"), reverse=True) if folder.is_dir() else []:
        with contextlib.suppress(BackupError):
            out.append(backup_inspect(path))
    return out


def _manifest(path: Path) -> dict:
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read(MANIFEST))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise BackupError("That file is not a Tessera backup.") from exc
    if manifest.get("app") != "tessera" or not isinstance(manifest.get("sha256"), dict):
        raise BackupError("That file is not a Tessera backup.")
    if manifest.get("format") != FORMAT:
        raise BackupError(f"This backup's format ({manifest.get('format')}) is not one this Tessera reads.")
    for name in manifest["sha256"]:
        if not isinstance(name, str) or name.startswith("/") or ".." in name.split("/") or "\\" in name:
            raise BackupError("The backup has an unsafe file name.")
    return manifest


def backup_check(path: Path) -> BackupInfo:
    """Read the whole file and check every member against the manifest, touching nothing."""
    manifest = _manifest(path)
    expected: dict[str, str] = manifest["sha256"]
    if DATABASE not in expected:
        raise BackupError("The backup holds no database.")
    try:
        with zipfile.ZipFile(path) as archive:
            if set(archive.namelist()) - {MANIFEST} != set(expected):
                raise BackupError("The backup is incomplete or has unexpected content.")
            for name, digest in expected.items():
                sha = hashlib.sha256()
                with archive.open(name) as member:
                    for chunk in iter(lambda m=member: m.read(1 << 20), b""):
                        sha.update(chunk)
                if sha.hexdigest() != digest:
                    raise BackupError(f"The backup is damaged ({name} does not match its checksum).")
    except (OSError, zipfile.BadZipFile) as exc:
        raise BackupError("The backup is damaged (it cannot be read).") from exc
    return backup_inspect(path)


def _extract_verified(path: Path, into: Path) -> dict:
    manifest = _manifest(path)
    expected: dict[str, str] = manifest["sha256"]
    if DATABASE not in expected:
        raise BackupError("The backup holds no database.")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist()) - {MANIFEST}
        if names != set(expected):
            raise BackupError("The backup is incomplete or has unexpected content.")
        for name in expected:
            target = (into / name).resolve()
            if not target.is_relative_to(into.resolve()):
                raise BackupError("The backup has an unsafe file name.")
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(name) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            if _sha256(target) != expected[name]:
                raise BackupError(f"The backup is damaged ({name} does not match its checksum).")
    return manifest


def backup_restore(
    *,
    path: Path,
    db_path: Path,
    data_dir: Path,
    known_migrations: dict[str, set[str]],
    replace_files: bool = False,
) -> BackupInfo:
    """Check the backup completely, then replace the database, files and secret key with its content.

    `replace_files`: the database file is replaced rather than written into (nothing has it open;
    the only way onto a damaged file).

    `known_migrations` ({app: names}) are the migrations this version ships: a backup that applied one
    it does not know was made by a newer Tessera and is refused (an upgrade first, then restore)."""
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=data_dir) as tmp:
        staged = Path(tmp)
        manifest = _extract_verified(path, staged)
        snapshot = staged / DATABASE
        check = sqlite3.connect(f"file:{snapshot}?mode=ro", uri=True)
        try:
            result = check.execute("PRAGMA integrity_check").fetchone()
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"The backup's database is damaged ({exc}).") from exc
        finally:
            check.close()
        if not result or result[0] != "ok":
            raise BackupError("The backup's database is damaged (integrity check failed).")
        _, migrations = _db_facts(snapshot)
        for app, names in migrations.items():
            unknown = set(names) - known_migrations.get(app, set()) if app in known_migrations else set()
            if unknown:
                raise BackupError(
                    "This backup was made by a newer version of Tessera "
                    f"({manifest.get('app_version') or 'unknown'}). Update Tessera, then restore it."
                )

        if replace_files:
            # Nothing serves from the database (a restore from the command line or the start-up error
            # page, the app's lock held): the restored file takes its place, with no WAL of the old one.
            for suffix in ("-wal", "-shm", "-journal"):
                Path(f"{db_path}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(snapshot, db_path)
            db_path.chmod(0o600)
        else:
            # The running app keeps serving: SQLite's online backup copies the pages in under its own lock.
            source = sqlite3.connect(snapshot)
            target = sqlite3.connect(db_path, timeout=30)
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()

        files = paths.files_dir(data_dir)
        staged_files = staged / FILES.rstrip("/")
        old = staged / ".files-before-restore"
        if files.exists():
            os.replace(files, old)
        if staged_files.exists():
            os.replace(staged_files, files)
        if (staged / SECRET_KEY).is_file():
            secret = data_dir / "secret_key"
            os.replace(staged / SECRET_KEY, secret)
            secret.chmod(0o600)
    return BackupInfo(
        path=path,
        created_at=datetime.fromisoformat(manifest["created_at"]),
        reason=str(manifest.get("reason", "")),
        app_version=str(manifest.get("app_version", "")),
        workspace=str(manifest.get("workspace", "")),
        size=path.stat().st_size,
    )


def database_state(db_path: Path) -> str:
    """ "missing", "empty" (no tables: a fresh install), "ok", or "damaged" (SQLite cannot read it)."""
    if not db_path.exists() or db_path.stat().st_size == 0:
        return "missing"
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "django_migrations" not in tables:
                return "empty" if not tables else "damaged"
            row = conn.execute("PRAGMA quick_check(1)").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return "damaged"
    return "ok" if row and row[0] == "ok" else "damaged"


def database_set_aside(*, db_path: Path, data_dir: Path, reason: str = "pre-restore") -> Path:
    """A copy of a database SQLite cannot read (and its WAL, and the secret key), byte for byte, in
    backups/: whatever was there is kept before a restore replaces it. Returns the folder."""
    folder = paths.backups_dir(data_dir) / backup_filename(f"{reason}-damaged").replace(SUFFIX, "")
    folder.mkdir(parents=True, exist_ok=False, mode=0o700)
    for source in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm"), data_dir / "secret_key"):
        if source.is_file():
            shutil.copy2(source, folder / source.name)
    return folder


def backup_latest_automatic(data_dir: Path) -> BackupInfo | None:
    """The newest backup Tessera made by itself (daily, pre-migration, pre-restore) that reads whole."""
    for info in backup_list(data_dir):
        if info.reason in AUTOMATIC_REASONS:
            try:
                return backup_check(info.path)
            except BackupError:
                continue
    return None


AUTOMATIC_REASONS = {"daily", "pre-migration", "pre-restore"}


def backup_daily_due(data_dir: Path, *, now: datetime | None = None, every_hours: float = 24) -> bool:
    """True when no daily backup was made in the last `every_hours` (the file names carry the time)."""
    now = now or datetime.now(UTC)
    folder = paths.backups_dir(data_dir)
    newest = max((p.name for p in folder.glob(f"*-daily{SUFFIX}")), default=None) if folder.is_dir() else None
    if newest is None:
        return True
    try:
        made = datetime.strptime(newest[len("tessera-") : len("tessera-") + 15], "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return True
    return (now - made).total_seconds() >= every_hours * 3600 - 60


def backups_prune(data_dir: Path, *, keep: int = 10, reasons: set[str] | None = None) -> int:
    """Keep the newest `keep` automatic backups of `reasons` (default: all automatic ones); never
    people's own (manual) backups, nor a damaged database set aside."""
    reasons = reasons if reasons is not None else AUTOMATIC_REASONS
    automatic = [b for b in backup_list(data_dir) if b.reason in reasons]
    removed = 0
    for info in automatic[keep:]:
        with contextlib.suppress(FileNotFoundError):
            info.path.unlink()
            removed += 1
    return removed
