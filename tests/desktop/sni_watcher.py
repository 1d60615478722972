"""A StatusNotifierWatcher on the session bus, standing in for a desktop's panel: it accepts tray
icons and prints each one's bus name as it registers. Run with a Python that has PyGObject (the
installed bundle's: `python3.11 -I sni_watcher.py /usr/lib/tessera/app_packages`). It draws nothing:
the model leaves out the panel's own drawing of the icon and menu (tests call the menu over D-Bus)."""

import sys

if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])

from gi.repository import Gio, GLib

XML = """<node><interface name="org.kde.StatusNotifierWatcher">
<method name="RegisterStatusNotifierItem"><arg type="s" direction="in"/></method>
<method name="RegisterStatusNotifierHost"><arg type="s" direction="in"/></method>
<property name="RegisteredStatusNotifierItems" type="as" access="read"/>
<property name="IsStatusNotifierHostRegistered" type="b" access="read"/>
<property name="ProtocolVersion" type="i" access="read"/>
</interface></node>"""
items: list[str] = []


def call(connection, sender, path, interface, method, params, invocation):
    if method == "RegisterStatusNotifierItem":
        name = params.unpack()[0]
        items.append(name if name.startswith(("org.", ":")) else sender)
        print(items[-1], flush=True)
    invocation.return_value(None)


def get(connection, sender, path, interface, name):
    return {
        "RegisteredStatusNotifierItems": GLib.Variant("as", items),
        "IsStatusNotifierHostRegistered": GLib.Variant("b", True),
        "ProtocolVersion": GLib.Variant("i", 0),
    }[name]


bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
bus.register_object("/StatusNotifierWatcher", Gio.DBusNodeInfo.new_for_xml(XML).interfaces[0], call, get, None)
Gio.bus_own_name_on_connection(bus, "org.kde.StatusNotifierWatcher", Gio.BusNameOwnerFlags.NONE, None, None)
print("ready", flush=True)
GLib.MainLoop().run()
