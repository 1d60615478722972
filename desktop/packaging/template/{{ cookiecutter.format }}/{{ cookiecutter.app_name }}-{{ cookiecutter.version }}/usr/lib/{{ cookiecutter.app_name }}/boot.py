"""Start {{ cookiecutter.formal_name }} from the installed bundle: its code and its pinned packages only.

The system's site-packages folders (/usr/lib/python3/dist-packages, /usr/local/...) are dropped from the
path: a package the system happens to have installed (pygments, markdown, requests, an older Django...)
must not be picked up by the app's libraries, which import optional extras when they find them.
"""

import runpy
import sys

ROOT = "/usr/lib/{{ cookiecutter.app_name }}"
sys.path[:] = [ROOT + "/app", ROOT + "/app_packages"] + [p for p in sys.path if not p.endswith("-packages")]
sys.argv[0] = "{{ cookiecutter.app_name }}"
runpy.run_module("{{ cookiecutter.module_name }}", run_name="__main__", alter_sys=True)
