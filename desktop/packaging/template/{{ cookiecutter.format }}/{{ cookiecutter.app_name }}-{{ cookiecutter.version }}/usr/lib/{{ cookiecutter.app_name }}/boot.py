"""Start {{ cookiecutter.formal_name }} from the installed bundle: its code, then its pinned packages, first."""

import runpy
import sys

ROOT = "/usr/lib/{{ cookiecutter.app_name }}"
sys.path[:0] = [ROOT + "/app", ROOT + "/app_packages"]
sys.argv[0] = "{{ cookiecutter.app_name }}"
runpy.run_module("{{ cookiecutter.module_name }}", run_name="__main__", alter_sys=True)
