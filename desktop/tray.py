"""The tray icon and desktop notifications, spoken over D-Bus with GLib's Gio: no GTK in the app.

The app's process runs all day; a GTK tray icon would keep the toolkit in it (about 30 MB PSS on this
machine, bench/desktop), so the icon is a StatusNotifierItem (the freedesktop/KDE tray protocol that
KDE, XFCE, Cinnamon, MATE, LXQt and GNOME's AppIndicator extension show) with its menu exported as
com.canonical.dbusmenu; the panel draws both. Notifications go to org.freedesktop.Notifications.
Where the session has no tray host, `Tray.start()` says so and the window's close quits the app.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

ICON_NAME = "org.tessera.tessera"
WATCHER = ("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher")
ITEM_PATH = "/StatusNotifierItem"
MENU_PATH = "/MenuBar"

ITEM_XML = """<node><interface name="org.kde.StatusNotifierItem">
<property name="Category" type="s" access="read"/><property name="Id" type="s" access="read"/>
<property name="Title" type="s" access="read"/><property name="Status" type="s" access="read"/>
<property name="WindowId" type="i" access="read"/><property name="IconName" type="s" access="read"/>
<property name="IconThemePath" type="s" access="read"/><property name="ItemIsMenu" type="b" access="read"/>
<property name="ToolTip" type="(sa(iiay)ss)" access="read"/><property name="Menu" type="o" access="read"/>
<method name="ContextMenu"><arg name="x" type="i" direction="in"/><arg name="y" type="i" direction="in"/>
</method>
<method name="Activate"><arg name="x" type="i" direction="in"/><arg name="y" type="i" direction="in"/>
</method>
<method name="SecondaryActivate"><arg name="x" type="i" direction="in"/>
<arg name="y" type="i" direction="in"/></method>
<method name="Scroll"><arg name="delta" type="i" direction="in"/>
<arg name="orientation" type="s" direction="in"/></method>
<signal name="NewTitle"/><signal name="NewIcon"/><signal name="NewToolTip"/>
<signal name="NewStatus"><arg name="status" type="s"/></signal>
</interface></node>"""

MENU_XML = """<node><interface name="com.canonical.dbusmenu">
<property name="Version" type="u" access="read"/><property name="TextDirection" type="s" access="read"/>
<property name="Status" type="s" access="read"/><property name="IconThemePath" type="as" access="read"/>
<method name="GetLayout"><arg type="i" name="parentId" direction="in"/>
<arg type="i" name="recursionDepth" direction="in"/>
<arg type="as" name="propertyNames" direction="in"/><arg type="u" name="revision" direction="out"/>
<arg type="(ia{sv}av)" name="layout" direction="out"/></method>
<method name="GetGroupProperties"><arg type="ai" name="ids" direction="in"/>
<arg type="as" name="propertyNames" direction="in"/>
<arg type="a(ia{sv})" name="properties" direction="out"/></method>
<method name="GetProperty"><arg type="i" name="id" direction="in"/><arg type="s" name="name" direction="in"/>
<arg type="v" name="value" direction="out"/></method>
<method name="Event"><arg type="i" name="id" direction="in"/><arg type="s" name="eventId" direction="in"/>
<arg type="v" name="data" direction="in"/><arg type="u" name="timestamp" direction="in"/></method>
<method name="EventGroup"><arg type="a(isvu)" name="events" direction="in"/>
<arg type="ai" name="idErrors" direction="out"/></method>
<method name="AboutToShow"><arg type="i" name="id" direction="in"/>
<arg type="b" name="needUpdate" direction="out"/></method>
<method name="AboutToShowGroup"><arg type="ai" name="ids" direction="in"/>
<arg type="ai" name="updatesNeeded" direction="out"/>
<arg type="ai" name="idErrors" direction="out"/></method>
<signal name="ItemsPropertiesUpdated"><arg type="a(ia{sv})" name="updatedProps"/>
<arg type="a(ias)" name="removedProps"/></signal>
<signal name="LayoutUpdated"><arg type="u" name="revision"/><arg type="i" name="parent"/></signal>
<signal name="ItemActivationRequested"><arg type="i" name="id"/><arg type="u" name="timestamp"/></signal>
</interface></node>"""


@dataclass
class MenuItem:
    label: str = ""
    action: Callable[[], None] | None = None
    enabled: bool = True
    separator: bool = False


@dataclass
class TrayMenu:
    """The tray's menu, in order: Open, the sync status (a label), Quit."""

    items: list[MenuItem] = field(default_factory=list)
    revision: int = 1

    @property
    def texts(self) -> list[str]:
        return [item.label for item in self.items if not item.separator]

    def props(self, item: MenuItem) -> dict:
        from gi.repository import GLib

        if item.separator:
            return {"type": GLib.Variant("s", "separator")}
        return {"label": GLib.Variant("s", item.label), "enabled": GLib.Variant("b", item.enabled)}

    def layout(self):
        from gi.repository import GLib

        children = [
            GLib.Variant("(ia{sv}av)", (index, self.props(item), [])) for index, item in enumerate(self.items, 1)
        ]
        return (0, {"children-display": GLib.Variant("s", "submenu")}, children)

    def clicked(self, item_id: int) -> None:
        if 1 <= item_id <= len(self.items):
            item = self.items[item_id - 1]
            if item.action is not None and item.enabled:
                item.action()


class Tray:
    """A StatusNotifierItem with a dbusmenu. Create and start on the thread that runs the GLib loop."""

    def __init__(self, *, on_open: Callable[[], None], on_quit: Callable[[], None], status_text: Callable[[], str]):
        self.on_open = on_open
        self.status_text = status_text
        self.menu = TrayMenu(
            [
                MenuItem("Open Tessera", on_open),
                MenuItem(separator=True),
                MenuItem(status_text(), enabled=False),
                MenuItem(separator=True),
                MenuItem("Quit Tessera", on_quit),
            ]
        )
        self.bus = None
        self.bus_name = f"org.kde.StatusNotifierItem-{os.getpid()}-1"
        self.registered = False
        self._ids: list[int] = []
        self._watch = 0

    def start(self) -> bool:
        """Put the icon on the session bus; False when there is no session bus. A panel (the
        StatusNotifierWatcher) shows it whenever one is there: now, or later when the panel starts after
        Tessera (an autostart at log-in often wins that race), and again after the panel restarts, as the
        protocol asks. `registered` says whether a panel shows it now."""
        try:
            from gi.repository import Gio, GLib

            self.bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
            item = Gio.DBusNodeInfo.new_for_xml(ITEM_XML).interfaces[0]
            menu = Gio.DBusNodeInfo.new_for_xml(MENU_XML).interfaces[0]
            self._ids.append(self.bus.register_object(ITEM_PATH, item, self._item_call, self._item_get, None))
            self._ids.append(self.bus.register_object(MENU_PATH, menu, self._menu_call, self._menu_get, None))
            self.bus.call_sync(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "RequestName",
                GLib.Variant("(su)", (self.bus_name, 4)),  # DO_NOT_QUEUE
                None,
                Gio.DBusCallFlags.NONE,
                2000,
                None,
            )
            self._watch = Gio.bus_watch_name_on_connection(
                self.bus, WATCHER[0], Gio.BusNameWatcherFlags.NONE, self._watcher_appeared, self._watcher_vanished
            )
        except Exception as exc:  # no session bus
            logger.info("no tray icon: %s", getattr(exc, "message", exc))
            self.stop()
            return False
        return True

    def panel_present(self) -> bool:
        """Whether a panel that shows tray icons is running now (asked once, at start)."""
        if self.bus is None:
            return False
        try:
            from gi.repository import Gio, GLib

            reply = self.bus.call_sync(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "NameHasOwner",
                GLib.Variant("(s)", (WATCHER[0],)),
                GLib.VariantType("(b)"),
                Gio.DBusCallFlags.NONE,
                2000,
                None,
            )
            return bool(reply.unpack()[0])
        except Exception:
            return False

    def _watcher_appeared(self, connection, name, owner) -> None:
        from gi.repository import Gio, GLib

        # Asynchronous, with room for a busy panel: a timed-out call would leave the panel to register
        # an item that had already given up (it asks for the icon and finds nothing).
        connection.call(
            *WATCHER,
            "RegisterStatusNotifierItem",
            GLib.Variant("(s)", (self.bus_name,)),
            None,
            Gio.DBusCallFlags.NONE,
            30000,
            None,
            self._registration_done,
        )

    def _registration_done(self, connection, result) -> None:
        try:
            connection.call_finish(result)
        except Exception as exc:
            self.registered = False
            logger.warning("tray: the panel did not take the icon: %s", getattr(exc, "message", exc))
            return
        self.registered = True
        logger.info("tray: icon shown (%s)", self.bus_name)

    def _watcher_vanished(self, connection, name) -> None:
        if self.registered:
            logger.info("tray: the panel went away; the icon comes back when it does")
        self.registered = False

    def stop(self) -> None:
        if self.bus is not None:
            if self._watch:
                from gi.repository import Gio

                Gio.bus_unwatch_name(self._watch)
                self._watch = 0
            for reg in self._ids:
                self.bus.unregister_object(reg)
            if self._ids:
                try:
                    from gi.repository import Gio, GLib

                    self.bus.call_sync(
                        "org.freedesktop.DBus",
                        "/org/freedesktop/DBus",
                        "org.freedesktop.DBus",
                        "ReleaseName",
                        GLib.Variant("(s)", (self.bus_name,)),
                        None,
                        Gio.DBusCallFlags.NONE,
                        2000,
                        None,
                    )
                except Exception as exc:  # the bus is gone with the session: nothing to release
                    logger.debug("tray: name not released: %s", exc)
        self._ids = []
        self.registered = False

    def status_refresh(self) -> None:
        """The sync status line changed (LAN hub on/off): tell the panel. Main (GLib) thread."""
        text = self.status_text()
        item = self.menu.items[2]
        if item.label == text:
            return
        item.label = text
        self.menu.revision += 1
        self._emit(MENU_PATH, "com.canonical.dbusmenu", "LayoutUpdated", "(ui)", (self.menu.revision, 0))

    def _emit(self, path: str, interface: str, name: str, signature: str, values: tuple) -> None:
        if self.bus is None or not self.registered:
            return
        from gi.repository import GLib

        self.bus.emit_signal(None, path, interface, name, GLib.Variant(signature, values))

    # --- org.kde.StatusNotifierItem ---------------------------------------------------------------

    def _item_get(self, connection, sender, path, interface, name):
        from gi.repository import GLib

        values = {
            "Category": ("s", "ApplicationStatus"),
            "Id": ("s", "tessera"),
            "Title": ("s", "Tessera"),
            "Status": ("s", "Active"),
            "WindowId": ("i", 0),
            "IconName": ("s", ICON_NAME),
            "IconThemePath": ("s", ""),
            "ItemIsMenu": ("b", False),
            "ToolTip": ("(sa(iiay)ss)", (ICON_NAME, [], "Tessera", self.status_text())),
            "Menu": ("o", MENU_PATH),
        }
        signature, value = values.get(name, ("s", ""))
        return GLib.Variant(signature, value)

    def _item_call(self, connection, sender, path, interface, method, params, invocation):
        if method == "Activate":
            self.on_open()
        invocation.return_value(None)

    # --- com.canonical.dbusmenu -------------------------------------------------------------------

    def _menu_get(self, connection, sender, path, interface, name):
        from gi.repository import GLib

        values = {"Version": ("u", 3), "TextDirection": ("s", "ltr"), "Status": ("s", "normal")}
        signature, value = values.get(name, ("as", []))
        return GLib.Variant(signature, value)

    def _menu_call(self, connection, sender, path, interface, method, params, invocation):
        from gi.repository import GLib

        if method == "GetLayout":
            invocation.return_value(GLib.Variant("(u(ia{sv}av))", (self.menu.revision, self.menu.layout())))
        elif method == "GetGroupProperties":
            ids = params.unpack()[0]
            props = [(i, self.menu.props(self.menu.items[i - 1])) for i in ids if 1 <= i <= len(self.menu.items)]
            invocation.return_value(GLib.Variant("(a(ia{sv}))", (props,)))
        elif method == "GetProperty":
            item_id, name = params.unpack()
            props = self.menu.props(self.menu.items[item_id - 1]) if 1 <= item_id <= len(self.menu.items) else {}
            invocation.return_value(GLib.Variant("(v)", (props.get(name, GLib.Variant("s", "")),)))
        elif method == "Event":
            item_id, event, _data, _time = params.unpack()
            invocation.return_value(None)
            if event == "clicked":
                GLib.idle_add(lambda: self.menu.clicked(item_id) and False)
        elif method == "EventGroup":
            events = params.unpack()[0]
            invocation.return_value(GLib.Variant("(ai)", ([],)))
            for item_id, event, _data, _time in events:
                if event == "clicked":
                    GLib.idle_add(lambda i=item_id: self.menu.clicked(i) and False)
        elif method == "AboutToShow":
            invocation.return_value(GLib.Variant("(b)", (False,)))
        elif method == "AboutToShowGroup":
            invocation.return_value(GLib.Variant("(aiai)", ([], [])))
        else:
            invocation.return_dbus_error("org.freedesktop.DBus.Error.UnknownMethod", method)


class Notifier:
    """Desktop notifications (org.freedesktop.Notifications); silently nothing where there is no daemon."""

    def __init__(self, app_name: str = "Tessera"):
        self.app_name = app_name
        self._bus = None
        try:
            from gi.repository import Gio

            self._bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        except Exception as exc:  # no GObject introspection, no session bus
            logger.debug("desktop notifications unavailable: %s", exc)

    @property
    def available(self) -> bool:
        return self._bus is not None

    def notify(self, title: str, body: str = "") -> bool:
        if self._bus is None:
            return False
        from gi.repository import Gio, GLib

        try:
            self._bus.call_sync(
                "org.freedesktop.Notifications",
                "/org/freedesktop/Notifications",
                "org.freedesktop.Notifications",
                "Notify",
                GLib.Variant("(susssasa{sv}i)", (self.app_name, 0, ICON_NAME, title, body, [], {}, -1)),
                GLib.VariantType("(u)"),
                Gio.DBusCallFlags.NONE,
                2000,
                None,
            )
        except Exception as exc:  # no notification daemon running
            logger.debug("notification not shown: %s", exc)
            return False
        logger.info("notification: %s", title)
        return True
