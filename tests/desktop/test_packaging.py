"""The package's recipe stays whole as the project grows: every app is shipped, the template is
self-contained (nothing for Briefcase to download), the desktop settings point where the launcher does."""

from __future__ import annotations

import re
import struct
import tomllib
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings

from desktop import paths

pytestmark = pytest.mark.desktop_only

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "desktop" / "packaging" / "template"


def briefcase_app() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["briefcase"]["app"]["tessera"]


def test_every_app_of_the_project_is_in_the_package():
    sources = set(briefcase_app()["sources"])
    for config in apps.get_app_configs():
        path = Path(config.path).resolve()
        if path.is_relative_to(REPO) and ".venv" not in path.parts:
            top = path.relative_to(REPO).parts[0]
            assert top in sources, f"{top} (INSTALLED_APPS) is missing from [tool.briefcase.app.tessera] sources"
    assert {"config", "templates", "static", "desktop/packaging/tessera"} <= sources
    for source in sources:
        assert (REPO / source).exists(), source


def test_the_template_is_self_contained():
    toml = tomllib.loads((TEMPLATE / "{{ cookiecutter.format }}" / "briefcase.toml").read_text())
    for download in ("support_path", "support_revision", "stub_binary_revision"):
        assert download not in toml["paths"], f"{download} would make Briefcase download something"
    assert "target_version" not in toml.get("briefcase", {})
    declared = set(__import__("json").loads((TEMPLATE / "cookiecutter.json").read_text()))
    used = set()
    for path in (TEMPLATE / "{{ cookiecutter.format }}").rglob("*"):
        text = path.as_posix() + ("\n" + path.read_text() if path.is_file() else "")
        used |= set(re.findall(r"cookiecutter\.(\w+)", text))
    assert used <= declared, used - declared
    makefile = (TEMPLATE / "{{ cookiecutter.format }}" / "bootstrap" / "Makefile").read_text()
    assert re.search(r"^install:", makefile, re.M)


def test_the_icon_is_a_real_png():
    from desktop.packaging.icons import png

    data = png(32)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (32, 32)


def test_the_build_cache_key_is_stable():
    from desktop.packaging.build_deb import inputs_hash

    assert inputs_hash() == inputs_hash()


def test_the_sdk_and_example_app_the_console_serves_are_in_the_package():
    """Devices offers the phone SDK for download and links its example app: every file those views read
    is put into the package (Briefcase's `sources` are Python folders; these are bundled beside them)."""
    from desktop.packaging.build_deb import BUNDLED_FILES
    from sync.views import EXAMPLE_DIR, EXAMPLE_FILES, SDK_DIR, SDK_FILES

    served = {f"{SDK_DIR}/{name}" for name in SDK_FILES} | {f"{EXAMPLE_DIR}/{f}" for f, _ in EXAMPLE_FILES.values()}
    served.discard(f"{EXAMPLE_DIR}/app.js.map")  # a debugger's aid, left out of the package for its size
    assert served <= set(BUNDLED_FILES), served - set(BUNDLED_FILES)


def test_desktop_settings_agree_with_the_launcher():
    assert Path(settings.DATA_DIR) == paths.data_dir()
    assert settings.CELERY_BROKER_TRANSPORT == "desktop.broker:Transport"
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"] == str(paths.queue_dir(settings.DATA_DIR))
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"desktop.heartbeat", "desktop.backup_daily", "desktop.notices"} <= tasks
    assert settings.ROOT_URLCONF == "config.urls_desktop"
