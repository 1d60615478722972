"""`make deb`: build dist/tessera_<version>-1~debian-<codename>_<arch>.deb with Briefcase.

Needs only the package registries: Briefcase runs in a venv of the system /usr/bin/python3 (it
insists on the system Python for `linux system`), with requirements/packaging.txt; the app template
is the project's own (desktop/packaging/template), so nothing comes from GitHub.

A package built from exactly the same inputs (sources, pins, template, this script) is kept in
~/.cache/tessera/deb-cache/<hash>/ (TESSERA_DEB_CACHE overrides; outside the work tree so fresh
clones on the same machine, like CI's, reuse it) and copied to dist/: `make deb` after no change takes
a second. `--force` rebuilds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
VENV = BUILD / "briefcase-venv"
CACHE = Path(os.environ.get("TESSERA_DEB_CACHE") or Path.home() / ".cache" / "tessera" / "deb-cache")
DIST = ROOT / "dist"
SYSTEM_PYTHON = "/usr/bin/python3"
EXTRA_INPUTS = [
    "pyproject.toml",
    "CHANGELOG.md",
    "requirements/bundle.txt",
    "requirements/packaging.txt",
    "desktop/packaging",
]
SKIP_DIRS = {"__pycache__", "resources"}
# Files the app serves from folders that are not Python sources: the phone SDK the console's Devices page
# offers for download (sync.views.SDK_FILES) and its example app, bundled by esbuild
# (sync.views.EXAMPLE_FILES, at /devices/example/). Briefcase copies `sources` as whole folders, which
# would bring clients/js/example/node_modules (90 MB) along: these are put into the app after
# `briefcase create` instead, at the same paths under the app's folder (settings.BASE_DIR).
EXAMPLE_APP = "clients/js/example"
BUNDLED_FILES = [
    "clients/js/package.json",
    "clients/js/README.md",
    "clients/js/src/index.js",
    "clients/js/src/index.d.ts",
    f"{EXAMPLE_APP}/dist/index.html",
    f"{EXAMPLE_APP}/dist/app.js",
    f"{EXAMPLE_APP}/dist/app.css",
]  # not app.js.map: 1.3 MB for a developer's debugger (the .deb is near its 40 MiB limit)


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def app_config() -> dict:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return pyproject["tool"]["briefcase"]["app"]["tessera"]


def inputs_hash() -> str:
    """A digest of everything that goes into the package (file names and contents)."""
    digest = hashlib.sha256()
    roots = sorted(set(app_config()["sources"]) | set(EXTRA_INPUTS) | set(BUNDLED_FILES))
    for rel in roots:
        base = ROOT / rel
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            parts = set(path.relative_to(ROOT).parts)
            if parts & SKIP_DIRS or path.suffix in {".pyc", ".pyo"}:
                continue
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    digest.update(Path(SYSTEM_PYTHON).resolve().name.encode())
    return digest.hexdigest()[:20]


def example_app_build() -> None:
    """Bundle the SDK's example app (clients/js/example/dist) as ./test.sh does: `npm ci` when its
    packages are missing or stale, then `npm run build` (esbuild, a second; the same inputs give the
    same bundle, so the package cache still hits)."""
    folder = ROOT / EXAMPLE_APP
    lock = hashlib.sha256((folder / "package-lock.json").read_bytes()).hexdigest()
    stamp = folder / "node_modules" / ".package-lock.sha"
    if not stamp.exists() or stamp.read_text().strip() != lock:
        say(f"npm ci in {EXAMPLE_APP}")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=folder, check=True)
        stamp.write_text(lock + "\n")
    subprocess.run(["npm", "run", "build", "--silent"], cwd=folder, check=True, stdout=subprocess.DEVNULL)


def bundled_files_install(app_dir: Path) -> None:
    for rel in BUNDLED_FILES:
        target = app_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)


def venv_ensure() -> Path:
    """The Briefcase venv (system Python), reinstalled when requirements/packaging.txt changes."""
    requirements = ROOT / "requirements" / "packaging.txt"
    want = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = VENV / ".requirements.sha"
    if not (VENV / "bin" / "briefcase").exists() or not stamp.exists() or stamp.read_text() != want:
        say(f"Creating the Briefcase venv ({SYSTEM_PYTHON})")
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "install", "-r", str(requirements)], check=True)
        stamp.write_text(want)
    return VENV / "bin" / "briefcase"


def briefcase(tool: Path, command: str, *options: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # xz -1: a few MB larger than dpkg's default -6, several times faster to build on two cores.
    env.setdefault("DPKG_DEB_COMPRESSOR_TYPE", "xz")
    env.setdefault("DPKG_DEB_COMPRESSOR_LEVEL", "1")
    env.setdefault("DPKG_DEB_THREADS_MAX", str(os.cpu_count() or 1))
    subprocess.run([str(tool), command, "linux", "system", "--no-input", *options], cwd=ROOT, env=env, check=True)


def installed_size_kib(root: Path) -> int:
    """What dpkg counts for Installed-Size: each file's size in KiB rounded up, one KiB per folder or link."""
    total = 0
    for path in root.rglob("*"):
        if "DEBIAN" in path.relative_to(root).parts[:1]:
            continue
        if path.is_symlink() or path.is_dir():
            total += 1
        elif path.is_file():
            total += -(-path.stat().st_size // 1024)
    return total


def _ar_members(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data.startswith(b"!<arch>\n"), "not an ar archive"
    members, offset = [], 8
    while offset < len(data):
        header = data[offset : offset + 60]
        size = int(header[48:58].decode().strip())
        members.append((header, data[offset + 60 : offset + 60 + size]))
        offset += 60 + size + (size % 2)
    return members


def deb_control_field_set(deb: Path, name: str, value: str) -> None:
    """Add (or replace) one field of a .deb's control file in place; the data member is left as built.

    Briefcase writes no Installed-Size, so apt showed "0 B" for a 90 MB install."""
    import io
    import lzma
    import tarfile

    members = _ar_members(deb.read_bytes())
    out = [b"!<arch>\n"]
    for header, body in members:
        if header[:16].decode().strip().rstrip("/") == "control.tar.xz":
            buffer = io.BytesIO()
            with (
                tarfile.open(fileobj=io.BytesIO(lzma.decompress(body))) as src,
                tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as dst,
            ):
                for info in src.getmembers():
                    content = src.extractfile(info).read() if info.isfile() else None
                    if info.name.lstrip("./") == "control":
                        lines = [line for line in content.decode().splitlines() if not line.startswith(f"{name}:")]
                        at = next(i for i, line in enumerate(lines) if line.startswith("Architecture:")) + 1
                        lines.insert(at, f"{name}: {value}")
                        content = ("\n".join(lines) + "\n").encode()
                        info.size = len(content)
                    dst.addfile(info, io.BytesIO(content) if content is not None else None)
            body = lzma.compress(buffer.getvalue(), preset=1)
            header = header[:48] + str(len(body)).ljust(10).encode() + header[58:]
        out += [header, body, b"\n" if len(body) % 2 else b""]
    tmp = deb.with_name(f".{deb.name}.tmp")
    tmp.write_bytes(b"".join(out))
    os.replace(tmp, deb)


def build(force: bool = False) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from icons import icons_write

    icons_write(ROOT / "desktop" / "resources")
    example_app_build()
    key = inputs_hash()
    cached_dir = CACHE / key
    cached = sorted(cached_dir.glob("*.deb")) if cached_dir.is_dir() else []
    DIST.mkdir(exist_ok=True)
    if cached and not force:
        target = DIST / cached[0].name
        if not target.exists() or target.stat().st_size != cached[0].stat().st_size:
            shutil.copy2(cached[0], target)
        say(f"Unchanged inputs ({key}): {target.relative_to(ROOT)}")
        return target

    tool = venv_ensure()
    for old in DIST.glob("tessera_*.deb"):
        old.unlink()
    shutil.rmtree(BUILD / "tessera", ignore_errors=True)
    say("briefcase create (app code, pinned requirements, icons)")
    briefcase(tool, "create")
    bundled_files_install(next((BUILD / "tessera").glob("debian/*/tessera-*/usr/lib/tessera/app")))
    say("briefcase build (launcher, byte-code)")
    briefcase(tool, "build")
    say("briefcase package (.deb)")
    briefcase(tool, "package", "--adhoc-sign")
    debs = sorted(DIST.glob("tessera_*.deb"), key=lambda p: p.stat().st_mtime)
    if not debs:
        raise SystemExit("Briefcase finished without a .deb in dist/")
    deb = debs[-1]
    package_root = next((BUILD / "tessera").glob("debian/*/tessera-*/"))
    deb_control_field_set(deb, "Installed-Size", str(installed_size_kib(package_root)))
    shutil.rmtree(cached_dir, ignore_errors=True)
    cached_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(deb, cached_dir / deb.name)
    # keep the three newest builds
    for stale in sorted(CACHE.iterdir(), key=lambda p: p.stat().st_mtime)[:-3]:
        shutil.rmtree(stale, ignore_errors=True)
    say(f"Built {deb.relative_to(ROOT)} ({deb.stat().st_size / 1e6:.1f} MB)")
    return deb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if a package of these inputs exists")
    parser.add_argument("--print-hash", action="store_true", help="print the inputs' hash and exit")
    args = parser.parse_args(argv)
    if args.print_hash:
        print(inputs_hash())
        return 0
    print(build(force=args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
