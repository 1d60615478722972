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


@pytest.fixture
def machine_preferences(tmp_path, monkeypatch):
    before = preferences_load()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    yield tmp_path / "config" / "autostart" / "org.tessera.tessera.desktop"
    preferences_save(before)


def test_this_computers_preferences_close_to_tray_autostart_backups_kept(admin_client, machine_preferences):
    from audit.models import AuditEvent

    page = admin_client.get("/settings/desktop/").content.decode()
    assert 'value="tray" checked' in page and "Start Tessera in the tray when I log in" in page
    response = admin_client.post(
        "/settings/desktop/preferences/",
        {"on_close": "quit", "autostart": "on", "backups_keep": "14", "update_feed_url": ""},
        follow=True,
    )
    assert "Preferences saved." in response.content.decode()
    prefs = preferences_load()
    assert prefs.quit_on_close is True and prefs.backups_keep == 14
    entry = machine_preferences.read_text()
    assert "Exec=" in entry and "--minimized" in entry and "X-GNOME-Autostart-enabled=true" in entry
    assert AuditEvent.objects.filter(action="workspace.desktop_preferences_changed").exists()

    admin_client.post("/settings/desktop/preferences/", {"on_close": "tray", "backups_keep": "14"})
    assert preferences_load().quit_on_close is False and not machine_preferences.exists()

    refused = admin_client.post(
        "/settings/desktop/preferences/", {"on_close": "tray", "backups_keep": "0"}, follow=True
    )
    assert "between 1 and 365" in refused.content.decode() and preferences_load().backups_keep == 14
    refused = admin_client.post(
        "/settings/desktop/preferences/",
        {"on_close": "tray", "backups_keep": "7", "update_feed_url": "file:///etc/passwd"},
        follow=True,
    )
    assert "must be an http(s) address" in refused.content.decode() and preferences_load().update_feed_url == ""


def test_only_admins_change_this_computers_preferences(make_user, client_for, tenant, machine_preferences):
    viewer = client_for(tenant, make_user("viewer"))
    assert viewer.post("/settings/desktop/preferences/", {"on_close": "quit"}).status_code == 403
    assert viewer.post("/settings/desktop/update/check/").status_code == 403
    assert preferences_load().quit_on_close is False


# --- mail without a mail server ---------------------------------------------------------------------


def test_desktop_mail_waits_in_the_outbox_an_admin_reads_and_no_page_says_it_was_emailed(
    admin_client, make_user, client_for, tenant, anon_client, tmp_path, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    member = make_user("manager", email="mia@alpha.test")

    login = anon_client.get("/accounts/login/")
    form = anon_client.get("/accounts/password-reset/")
    sent = anon_client.post("/accounts/password-reset/", {"email": member.email}, follow=True)
    outbox = admin_client.get("/settings/desktop/outbox/")

    assert "tessera manage reset-password you@example.com" in login.content.decode()
    assert "This computer sends no e-mail" in form.content.decode()
    assert "Reset link in the outbox" in sent.content.decode() and "Check your e-mail" not in sent.content.decode()
    page = outbox.content.decode()
    assert outbox.status_code == 200 and outbox["Cache-Control"] == "no-store"
    assert page.count('data-testid="outbox-message"') == 1 and "mia@alpha.test" in page
    assert "/accounts/reset/" in page  # the link the Admin passes on
    assert 'href="/settings/desktop/outbox/"' in admin_client.get("/settings/desktop/").content.decode()
    assert client_for(tenant, member).get("/settings/desktop/outbox/").status_code == 403


def test_an_owner_who_forgot_the_password_resets_it_with_tessera_manage(admin_user, anon_client, tenant):
    import io

    from django.core.management import CommandError, call_command

    from audit.models import AuditEvent
    from tests.conftest import ADMIN_PASSWORD

    out = io.StringIO()
    call_command("reset-password", admin_user.email.upper(), stdout=out)
    password = out.getvalue().split(": ", 1)[1].splitlines()[0]

    refused = anon_client.post("/accounts/login/", {"username": admin_user.email, "password": ADMIN_PASSWORD})
    let_in = anon_client.post("/accounts/login/", {"username": admin_user.email, "password": password})
    assert refused.status_code == 400 and let_in.status_code == 302
    event = AuditEvent.objects.get(action="user.password_changed")
    assert event.changes == {"method": "tessera manage reset-password"} and event.target_id == str(admin_user.pk)
    with pytest.raises(CommandError, match="No active member"):
        call_command("reset-password", "nobody@alpha.test", stdout=io.StringIO())
