"""SaaS only (saas_only on every test): the desktop neither installs nor may import the cells' apps,
so in the desktop run these modules are not even collected (their imports would fail there)."""

from tests.conftest import SAAS

collect_ignore_glob = [] if SAAS else ["test_*.py"]
