"""Desktop notifications (libnotify over D-Bus) where the desktop offers them; silently nothing elsewhere."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class Notifier:
    def __init__(self, app_name: str = "Tessera"):
        self._notify = None
        try:
            import gi

            gi.require_version("Notify", "0.7")
            from gi.repository import Notify

            if Notify.init(app_name):
                self._notify = Notify
        except Exception as exc:  # no GObject introspection, no libnotify, no session bus
            logger.debug("desktop notifications unavailable: %s", exc)

    @property
    def available(self) -> bool:
        return self._notify is not None

    def notify(self, title: str, body: str = "") -> bool:
        if self._notify is None:
            return False
        try:
            return bool(self._notify.Notification.new(title, body, "dialog-information").show())
        except Exception as exc:  # no notification daemon running
            logger.debug("notification not shown: %s", exc)
            return False
