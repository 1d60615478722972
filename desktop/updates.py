"""Updates: a signed feed says which .deb is newest; a verified one is handed to the system's installer.

Off until an update feed URL is set (Settings → This computer). The feed is a small JSON document
    {"version": "0.2.0", "url": "tessera_0.2.0-1_amd64.deb", "sha256": "<hex>", "notes": "..."}
with a minisign signature beside it (`<feed URL>.minisig`, made with `minisign -S`). The signature is
checked with the release public key (Ed25519, cryptography's implementation) before anything in the
feed is believed; the .deb is then downloaded and must match the feed's SHA-256 before it is offered.
Installing hands the file to the system's package installer (`xdg-open` opens the desktop's software
installer for a .deb; TESSERA_UPDATE_INSTALLER names another command), which asks for the password.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from desktop import paths
from desktop.version import app_version

MAX_FEED_BYTES = 64 * 1024
MAX_DEB_BYTES = 200 * 1024 * 1024
TIMEOUT = 20.0


class UpdateError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class UpdateOffer:
    version: str
    deb: Path
    notes: str
    trusted_comment: str


def release_public_key() -> str:
    """The minisign public key releases are signed with: TESSERA_UPDATE_PUBLIC_KEY, or the file shipped
    in the package (desktop/update-key.pub). None shipped: updates are refused, never unverified."""
    key = os.environ.get("TESSERA_UPDATE_PUBLIC_KEY", "").strip()
    if key:
        return key
    shipped = Path(__file__).resolve().parent / "update-key.pub"
    return shipped.read_text() if shipped.is_file() else ""


# --- minisign -------------------------------------------------------------------------------------


def _b64_line(text: str) -> bytes:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    candidates = [line for line in lines if not line.startswith(("untrusted comment:", "trusted comment:"))]
    if not candidates:
        raise UpdateError("The key or signature is empty.")
    try:
        return base64.b64decode(candidates[0], validate=True)
    except ValueError as exc:
        raise UpdateError("The key or signature is not minisign's.") from exc


def minisign_verify(data: bytes, signature: str, public_key: str) -> str:
    """Check a minisign signature (Ed25519; pre-hashed with BLAKE2b-512 or not) and its trusted comment.
    Returns the trusted comment; raises UpdateError when anything does not verify."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = _b64_line(public_key)
    if len(key) != 42 or key[:2] != b"Ed":
        raise UpdateError("The release key is not a minisign Ed25519 public key.")
    lines = [line.rstrip("\r") for line in signature.strip().splitlines()]
    if len(lines) < 4 or not lines[2].startswith("trusted comment: "):
        raise UpdateError("The signature is not in minisign's format.")
    sig = _b64_line(lines[1])
    if len(sig) != 74 or sig[:2] not in (b"Ed", b"ED"):
        raise UpdateError("The signature is not in minisign's format.")
    if sig[2:10] != key[2:10]:
        raise UpdateError("The signature was made with another key than this Tessera's release key.")
    verifier = Ed25519PublicKey.from_public_bytes(key[10:])
    message = hashlib.blake2b(data, digest_size=64).digest() if sig[:2] == b"ED" else data
    trusted = lines[2][len("trusted comment: ") :]
    try:
        verifier.verify(sig[10:], message)
        verifier.verify(base64.b64decode(lines[3]), sig[10:] + trusted.encode())
    except (InvalidSignature, ValueError) as exc:
        raise UpdateError("The signature does not match: this update is refused.") from exc
    return trusted


# --- the feed -------------------------------------------------------------------------------------


def _fetch(url: str, limit: int) -> bytes:
    if urllib.parse.urlsplit(url).scheme not in ("https", "http", "file"):
        raise UpdateError("The update feed must be an http(s) address.")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(urllib.request.getproxies()))
    try:
        with opener.open(url, timeout=TIMEOUT) as response:
            body = response.read(limit + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise UpdateError(f"The update feed could not be read ({getattr(exc, 'reason', exc)}).") from exc
    if len(body) > limit:
        raise UpdateError("The update feed sent more than expected.")
    return body


def _newer(version: str, than: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version) > Version(than)
    except InvalidVersion:
        return False


def update_check(feed_url: str, *, data_dir: Path | None = None, current: str | None = None) -> UpdateOffer | None:
    """Fetch and verify the feed; when it names a newer version, download its .deb and check it.
    None when this is the newest; UpdateError when anything fails verification."""
    public_key = release_public_key()
    if not public_key:
        raise UpdateError("This Tessera has no release key to check updates with.")
    feed_bytes = _fetch(feed_url, MAX_FEED_BYTES)
    signature = _fetch(feed_url + ".minisig", 4096).decode("utf-8", "replace")
    trusted = minisign_verify(feed_bytes, signature, public_key)
    try:
        feed = json.loads(feed_bytes)
        version, deb_url, sha256 = str(feed["version"]), str(feed["url"]), str(feed["sha256"]).lower()
    except (ValueError, KeyError, TypeError) as exc:
        raise UpdateError("The update feed is not one Tessera reads.") from exc
    if not _newer(version, current or app_version()):
        return None
    deb_url = urllib.parse.urljoin(feed_url, deb_url)
    folder = paths.private_folder((data_dir or paths.data_dir()) / "updates")
    name = Path(urllib.parse.urlsplit(deb_url).path).name
    if not name.endswith(".deb") or "/" in name or name.startswith("."):
        raise UpdateError("The update feed names no .deb file.")
    deb = folder / name
    body = _fetch(deb_url, MAX_DEB_BYTES)
    if hashlib.sha256(body).hexdigest() != sha256:
        raise UpdateError("The downloaded package does not match the signed feed: it is refused.")
    part = deb.with_name(f".{deb.name}.part")
    part.write_bytes(body)
    os.replace(part, deb)
    return UpdateOffer(version=version, deb=deb, notes=str(feed.get("notes", ""))[:2000], trusted_comment=trusted)


def installer_command(deb: Path) -> list[str]:
    """The system's package installer for a .deb: TESSERA_UPDATE_INSTALLER, else xdg-open (the desktop's
    software installer), else pkexec apt-get."""
    custom = os.environ.get("TESSERA_UPDATE_INSTALLER", "").strip()
    if custom:
        return [*shlex.split(custom), str(deb)]
    if shutil.which("xdg-open"):
        return ["xdg-open", str(deb)]
    return ["pkexec", "apt-get", "install", "-y", str(deb)]


def update_install(offer_deb: Path) -> subprocess.Popen:
    """Hand the checked .deb to the installer (it runs on its own; Tessera restarts after it)."""
    if not offer_deb.is_file() or offer_deb.suffix != ".deb":
        raise UpdateError("There is no downloaded update to install.")
    try:
        return subprocess.Popen(installer_command(offer_deb), start_new_session=True)
    except OSError as exc:
        raise UpdateError(f"The package installer could not be started ({exc}).") from exc
