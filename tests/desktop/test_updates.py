"""Updates: a feed signed with Debian's `minisign` tool, served over HTTP on this machine; a verified
newer .deb is downloaded and offered, a bad signature or a swapped package refused."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from desktop.updates import UpdateError, minisign_verify, update_check

pytestmark = pytest.mark.desktop_only


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    if shutil.which("minisign") is None:
        pytest.fail("minisign is needed (test.sh installs it)")
    folder = tmp_path_factory.mktemp("keys")
    for name in ("release", "other"):
        subprocess.run(
            ["minisign", "-G", "-W", "-p", str(folder / f"{name}.pub"), "-s", str(folder / f"{name}.key")],
            check=True,
            capture_output=True,
        )
    return folder


def sign(keys, path, key="release", comment="tessera release"):
    subprocess.run(
        ["minisign", "-S", "-s", str(keys / f"{key}.key"), "-m", str(path), "-t", comment],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def feed_server(tmp_path):
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def publish(folder, keys, *, version="9.0.0", deb=b"new package", sha=None, key="release"):
    (folder / "tessera_9.0.0-1_amd64.deb").write_bytes(deb)
    feed = {"version": version, "url": "tessera_9.0.0-1_amd64.deb", "sha256": sha or hashlib.sha256(deb).hexdigest()}
    (folder / "feed.json").write_text(json.dumps(feed))
    sign(keys, folder / "feed.json", key=key)


def test_a_signed_newer_package_is_downloaded_checked_and_offered(feed_server, keys, tmp_path, monkeypatch):
    folder, base = feed_server
    monkeypatch.setenv("TESSERA_UPDATE_PUBLIC_KEY", (keys / "release.pub").read_text())
    publish(folder, keys)
    data = tmp_path / "data"
    offer = update_check(f"{base}/feed.json", data_dir=data, current="0.1.0")
    assert offer.version == "9.0.0" and offer.trusted_comment == "tessera release"
    assert offer.deb.read_bytes() == b"new package" and offer.deb.parent == data / "updates"
    assert update_check(f"{base}/feed.json", data_dir=data, current="9.0.0") is None  # already the newest


@pytest.mark.parametrize("attack", ["other key", "feed changed after signing", "package swapped", "no signature"])
def test_what_does_not_verify_is_refused(feed_server, keys, tmp_path, monkeypatch, attack):
    folder, base = feed_server
    monkeypatch.setenv("TESSERA_UPDATE_PUBLIC_KEY", (keys / "release.pub").read_text())
    publish(folder, keys, key="other" if attack == "other key" else "release")
    if attack == "feed changed after signing":
        feed = json.loads((folder / "feed.json").read_text())
        (folder / "feed.json").write_text(json.dumps({**feed, "version": "9.0.1"}))
    elif attack == "package swapped":
        (folder / "tessera_9.0.0-1_amd64.deb").write_bytes(b"malware")
    elif attack == "no signature":
        (folder / "feed.json.minisig").unlink()
    with pytest.raises(UpdateError):
        update_check(f"{base}/feed.json", data_dir=tmp_path / "data", current="0.1.0")
    assert not list((tmp_path / "data").glob("updates/*.deb"))


def test_without_a_release_key_nothing_is_trusted(feed_server, keys, tmp_path, monkeypatch):
    folder, base = feed_server
    monkeypatch.setenv("TESSERA_UPDATE_PUBLIC_KEY", "")
    publish(folder, keys)
    with pytest.raises(UpdateError, match="no release key"):
        update_check(f"{base}/feed.json", data_dir=tmp_path, current="0.1.0")


def test_the_trusted_comment_is_signed_too(keys, tmp_path):
    path = tmp_path / "feed.json"
    path.write_text("{}")
    sign(keys, path)
    signature = (tmp_path / "feed.json.minisig").read_text()
    public = (keys / "release.pub").read_text()
    assert minisign_verify(b"{}", signature, public) == "tessera release"
    forged = signature.replace("trusted comment: tessera release", "trusted comment: tessera 99 release")
    with pytest.raises(UpdateError, match="does not match"):
        minisign_verify(b"{}", forged, public)


def test_a_checked_package_is_handed_to_the_system_installer(tmp_path, monkeypatch):
    from desktop.updates import update_install

    handed = tmp_path / "handed.txt"
    installer = tmp_path / "installer"
    installer.write_text(f'#!/bin/sh\necho "$@" > {handed}\n')
    installer.chmod(0o755)
    monkeypatch.setenv("TESSERA_UPDATE_INSTALLER", str(installer))
    deb = tmp_path / "tessera_9.0.0-1_amd64.deb"
    deb.write_bytes(b"package")
    assert update_install(deb).wait(30) == 0
    assert handed.read_text().strip() == str(deb)
    with pytest.raises(UpdateError, match="no downloaded update"):
        update_install(tmp_path / "missing.deb")
