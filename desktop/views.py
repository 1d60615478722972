"""The console's Desktop page (under Settings): data folder, backups and restore, the LAN sync hub, and the
outbox of mail this computer cannot send."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from desktop import paths
from desktop.autostart import autostart_enabled
from desktop.backup import SUFFIX
from desktop.preferences import preferences_load
from desktop.selectors import backup_find, backup_list, jobs_status, lan_status, outbox_messages
from desktop.services import (
    BackupError,
    backup_create,
    backup_restore,
    desktop_preferences_set,
    lan_hub_set,
    update_check_now,
    update_install_start,
)
from desktop.updates import UpdateError
from desktop.version import app_version
from rbac.permissions import permission_required


def _page(request: HttpRequest, *, status: int = 200, error: str = "", update=None) -> HttpResponse:
    lan = lan_status()
    qr = None
    if lan.sync_url:
        import segno  # loaded when the LAN hub is on and its page shown, not with the app

        qr = segno.make(lan.sync_url, error="m").svg_data_uri(scale=5, border=2)
    data_dir = Path(settings.DATA_DIR)
    context = {
        "lan": lan,
        "lan_qr": qr,
        "jobs": jobs_status(),
        "backups": backup_list()[:20],
        "data_dir": data_dir,
        "log_dir": getattr(settings, "LOG_DIR", paths.log_dir()),
        "version": app_version(),
        "restore_error": error,
        "backup_suffix": SUFFIX,
        "prefs": preferences_load(),
        "autostart": autostart_enabled(),
        "update": update,
    }
    return render(request, "desktop/settings.html", context, status=status)


@permission_required("settings.manage")
def desktop_settings(request: HttpRequest) -> HttpResponse:
    return _page(request)


@permission_required("settings.manage")
def outbox(request: HttpRequest) -> HttpResponse:
    """The mail this computer kept instead of sending (invitations, password-reset links): the Admin
    reads it here and passes the links on. Only Admins: the links let whoever holds them in."""
    context = {"messages_kept": outbox_messages(), "mail_delivered": settings.TESSERA_MAIL_DELIVERED}
    response = render(request, "desktop/outbox.html", context)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@permission_required("settings.manage")
def lan_hub(request: HttpRequest) -> HttpResponse:
    enabled = request.POST.get("enabled") == "on"
    status = lan_hub_set(actor=request.user, enabled=enabled)
    if not enabled:
        messages.success(request, "LAN sync hub turned off.")
    elif status.listening:
        messages.success(request, f"LAN sync hub on at {status.address}:{status.port}.")
    elif status.error:
        messages.error(request, f"LAN sync hub is on, but not listening: {status.error}")
    else:
        messages.success(request, "LAN sync hub turned on; it starts with the desktop app.")
    return redirect("desktop:settings")


@require_POST
@permission_required("settings.manage")
def backup_now(request: HttpRequest) -> HttpResponse:
    try:
        info = backup_create(actor=request.user)
    except BackupError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Backup saved: {info.name}")
    return redirect("desktop:settings")


@permission_required("settings.manage")
def backup_download(request: HttpRequest, name: str) -> FileResponse:
    info = backup_find(name)
    if info is None:
        raise Http404("No such backup.")
    return FileResponse(info.path.open("rb"), as_attachment=True, filename=info.name)


@require_POST
@permission_required("settings.manage")
def restore(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("backup_file")
    chosen = request.POST.get("name", "")
    temporary: Path | None = None
    if upload is not None:
        fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=SUFFIX, dir=settings.DATA_DIR)
        with os.fdopen(fd, "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        temporary = path = Path(tmp)
    elif chosen:
        info = backup_find(chosen)
        if info is None:
            return _page(request, status=400, error="Choose one of the backups listed, or upload a backup file.")
        path = info.path
    else:
        return _page(request, status=400, error="Choose a backup file to restore.")
    try:
        info = backup_restore(actor=request.user, path=path)
    except BackupError as exc:
        return _page(request, status=400, error=exc.message)
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
    logout(request)  # the session belonged to the replaced data
    messages.success(
        request, f"Restored the workspace as of {info.created_at:%Y-%m-%d %H:%M} UTC. Log in again to continue."
    )
    return redirect("accounts:login")


@require_POST
@permission_required("settings.manage")
def preferences(request: HttpRequest) -> HttpResponse:
    try:
        keep = int(request.POST.get("backups_keep") or 7)
    except ValueError:
        keep = 0
    if not 1 <= keep <= 365:
        messages.error(request, "Keep between 1 and 365 daily backups.")
        return redirect("desktop:settings")
    try:
        desktop_preferences_set(
            actor=request.user,
            quit_on_close=request.POST.get("on_close") == "quit",
            autostart=request.POST.get("autostart") == "on",
            backups_keep=keep,
            update_feed_url=request.POST.get("update_feed_url", ""),
        )
    except UpdateError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Preferences saved.")
    return redirect("desktop:settings")


@require_POST
@permission_required("settings.manage")
def update_check(request: HttpRequest) -> HttpResponse:
    try:
        offer = update_check_now(actor=request.user)
    except UpdateError as exc:
        messages.error(request, f"No update: {exc.message}")
        return redirect("desktop:settings")
    if offer is None:
        messages.success(request, f"Tessera {app_version()} is the newest version.")
        return redirect("desktop:settings")
    return _page(request, update=offer)


@require_POST
@permission_required("settings.manage")
def update_install(request: HttpRequest) -> HttpResponse:
    try:
        update_install_start(actor=request.user, name=request.POST.get("name", ""))
    except UpdateError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The update was handed to the system's package installer.")
    return redirect("desktop:settings")
