"""The console's Desktop page: who may see it, backups from the console, restore refusals, LAN switch."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from desktop.preferences import preferences_load, preferences_save

pytestmark = pytest.mark.desktop_only


@pytest.fixture
def backups_cleanup():
    folder = Path(settings.DATA_DIR) / "backups"
    before = set(folder.glob("*")) if folder.is_dir() else set()
    yield folder
    for path in set(folder.glob("*")) - before if folder.is_dir() else ():
        path.unlink()


@pytest.fixture
def lan_preferences_restored():
    before = preferences_load()
    yield
    preferences_save(before)


def test_only_admins_see_the_desktop_page(admin_client, make_user, client_for, tenant, anon_client):
    page = admin_client.get("/settings/desktop/")
    assert page.status_code == 200
    text = page.content.decode()
    assert str(settings.DATA_DIR) in text and "LAN sync hub" in text and "Back up now" in text
    assert 'data-testid="desktop-settings-link"' in admin_client.get("/settings/").content.decode()
    viewer = client_for(tenant, make_user("viewer"))
    assert viewer.get("/settings/desktop/").status_code == 403
    assert viewer.post("/settings/desktop/backups/").status_code == 403
    assert anon_client.get("/settings/desktop/").status_code == 302


def test_back_up_from_the_console_then_download(admin_client, backups_cleanup):
    from audit.models import AuditEvent

    response = admin_client.post("/settings/desktop/backups/")
    assert response.status_code == 302
    made = sorted(backups_cleanup.glob("*.tessera-backup"))
    assert made, "no backup written"
    name = made[-1].name
    assert AuditEvent.objects.filter(action="workspace.backed_up").exists()
    page = admin_client.get("/settings/desktop/").content.decode()
    assert name in page
    download = admin_client.get(f"/settings/desktop/backups/{name}/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == made[-1].read_bytes()
    assert admin_client.get("/settings/desktop/backups/tessera-nope.tessera-backup/").status_code == 404
    assert admin_client.get("/settings/desktop/backups/..%2Fsecret_key/").status_code == 404


def test_restore_refuses_a_file_that_is_not_a_backup(admin_client, backups_cleanup):
    from django.core.files.uploadedfile import SimpleUploadedFile

    junk = SimpleUploadedFile("photo.tessera-backup", b"definitely not a zip", content_type="application/zip")
    response = admin_client.post("/settings/desktop/restore/", {"backup_file": junk})
    assert response.status_code == 400
    assert "not a Tessera backup" in response.content.decode()
    assert not list(backups_cleanup.glob("*pre-restore*")), "nothing is written for a refused file"
    assert admin_client.post("/settings/desktop/restore/", {}).status_code == 400
    assert admin_client.post("/settings/desktop/restore/", {"name": "../../etc/passwd"}).status_code == 400


def test_the_lan_switch_is_saved_for_the_next_start_without_the_app(admin_client, lan_preferences_restored):
    from audit.models import AuditEvent

    response = admin_client.post("/settings/desktop/lan/", {"enabled": "on"}, follow=True)
    assert preferences_load().lan_hub_enabled is True
    assert "starts with the desktop app" in response.content.decode()
    assert AuditEvent.objects.filter(action="workspace.lan_hub_changed").exists()
    admin_client.post("/settings/desktop/lan/", {})
    assert preferences_load().lan_hub_enabled is False
