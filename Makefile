# Tessera's build targets. The test suite is ./test.sh; the dev server is ./run.sh.

.PHONY: deb deb-force

# The desktop edition's Debian package in dist/ (reused from build/deb-cache when nothing changed).
deb:
	/usr/bin/python3 desktop/packaging/build_deb.py

deb-force:
	/usr/bin/python3 desktop/packaging/build_deb.py --force
