#!/usr/bin/env bash
# Run Tessera's whole test suite, in both runtimes (PostgreSQL schemas, then SQLite).
#
#   ./test.sh                 everything (lint, migrations check, both runtimes, browser tests)
#   ./test.sh -k audit        extra arguments go to pytest (both runtimes)
#   TESSERA_TEST_MODES=saas ./test.sh    one runtime only
#
# It creates .venv, installs the pinned dev requirements, installs missing Debian packages when run
# as root, and starts a private PostgreSQL and Redis (own data folder, free port) unless
# TESSERA_TEST_DATABASE_URL / TESSERA_TEST_REDIS_URL point at servers to use. It never touches
# any other database.
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(pwd)"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# --- prerequisites ------------------------------------------------------------------------------
need_pkgs=()
pg_bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
[ -n "$(pg_bin_dir)" ] || need_pkgs+=(postgresql)
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
command -v Xvfb >/dev/null || need_pkgs+=(xvfb)
command -v node >/dev/null || need_pkgs+=(nodejs npm)
command -v xmlsec1 >/dev/null || need_pkgs+=(xmlsec1)  # SAML signatures (pysaml2)
python3 -c 'import ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
# The desktop .deb (tests/desktop/test_deb.py): Briefcase builds with the system Python and compiles
# pygobject/pycairo; the app's runtime GTK/WebKit/tray/notification bindings; ImageMagick screenshots.
# minisign signs the update feeds of tests/desktop/test_updates.py; dbus runs a session bus for the tray test.
# poppler-utils (pdftotext, pdftoppm) reads back the compliance report PDF (tests/privacy/test_reports.py).
/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
for pkg in python3-dev dpkg-dev gcc g++ make pkg-config libgirepository1.0-dev libcairo2-dev \
  gir1.2-gtk-3.0 gir1.2-webkit2-4.1 gir1.2-xapp-1.0 gir1.2-notify-0.7 imagemagick minisign dbus poppler-utils; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "Installing Debian packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # an install killed half-way leaves dpkg "interrupted": finish it first, as apt asks
    [ -z "$(dpkg --audit 2>/dev/null)" ] || dpkg --configure -a >/dev/null
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" fonts-dejavu-core >/dev/null
  else
    echo "Missing prerequisites: ${need_pkgs[*]} (run as root to install them, or install them yourself)" >&2
    exit 2
  fi
fi

# --- Python environment ---------------------------------------------------------------------------
PY="$(command -v python3.11 || command -v python3)"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required" >&2; exit 2; }
if [ ! -x .venv/bin/python ]; then
  log "Creating .venv"
  "$PY" -m venv .venv
fi
stamp=".venv/.requirements-dev.sha"
want="$(cat requirements/dev.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "Installing requirements/dev.txt"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -r requirements/dev.txt
  echo "$want" > "$stamp"
fi
PYTHON="$ROOT/.venv/bin/python"

# --- the Node RxDB harness (tests/sync/rxdb: real RxDB clients for the sync tests and bench/sync) --
rx_stamp="tests/sync/rxdb/node_modules/.package-lock.sha"
rx_want="$(sha256sum tests/sync/rxdb/package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$rx_stamp" 2>/dev/null)" != "$rx_want" ]; then
  log "Installing the RxDB harness (npm ci in tests/sync/rxdb)"
  (cd tests/sync/rxdb && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$rx_want" > "$rx_stamp"
fi
# The client SDK (clients/js), built as npm publishes it (npm pack) and installed into the harness the
# way an app's `npm install <tarball>` would (its only dependencies are the harness's rxdb and rxjs).
log "Building the client SDK (npm pack in clients/js)"
rm -rf clients/js/dist tests/sync/rxdb/node_modules/@tessera/sync
mkdir -p clients/js/dist && (cd clients/js && npm pack --pack-destination dist --loglevel=error >/dev/null)
mkdir -p tests/sync/rxdb/node_modules/@tessera/sync
tar -xzf clients/js/dist/tessera-sync-*.tgz -C tests/sync/rxdb/node_modules/@tessera/sync --strip-components=1
# The SDK's example app (clients/js/example: its own npm project, the SDK linked as `file:..`), bundled
# into clients/js/example/dist, which the server serves at /devices/example/ (tests/browser).
ex_stamp="clients/js/example/node_modules/.package-lock.sha"
ex_want="$(sha256sum clients/js/example/package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$ex_stamp" 2>/dev/null)" != "$ex_want" ]; then
  log "Installing the SDK's example app (npm ci in clients/js/example)"
  (cd clients/js/example && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$ex_want" > "$ex_stamp"
fi
log "Building the SDK's example app (npm run build in clients/js/example)"
(cd clients/js/example && npm run build --silent >/dev/null)

# --- the OpenID provider harness (tests/accounts/oidc: npm oidc-provider for the SSO tests and bench/sso)
op_stamp="tests/accounts/oidc/node_modules/.package-lock.sha"
op_want="$(sha256sum tests/accounts/oidc/package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$op_stamp" 2>/dev/null)" != "$op_want" ]; then
  log "Installing the OpenID provider harness (npm ci in tests/accounts/oidc)"
  (cd tests/accounts/oidc && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$op_want" > "$op_stamp"
fi

# --- axe-core for the browser tests' accessibility checks (tests/browser/axe, pinned; no CDN) --------
axe_stamp="tests/browser/axe/node_modules/.package-lock.sha"
axe_want="$(sha256sum tests/browser/axe/package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$axe_stamp" 2>/dev/null)" != "$axe_want" ]; then
  log "Installing axe-core (npm ci in tests/browser/axe)"
  (cd tests/browser/axe && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$axe_want" > "$axe_stamp"
fi

# --- private services -----------------------------------------------------------------------------
RUN_DIR="$(mktemp -d /tmp/tessera-test.XXXXXX)"
chmod 755 "$RUN_DIR"
cleanup() {
  set +e
  if [ -n "${PG_STARTED:-}" ]; then as_pg "$PG_BIN/pg_ctl" -D "$RUN_DIR/pg" -m immediate stop >/dev/null 2>&1; fi
  if [ -f "$RUN_DIR/redis.pid" ]; then kill "$(cat "$RUN_DIR/redis.pid")" 2>/dev/null; fi
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ -z "${TESSERA_TEST_DATABASE_URL:-}" ]; then
  PG_BIN="$(pg_bin_dir)"
  PG_PORT="$(free_port)"
  mkdir -p "$RUN_DIR/pg" "$RUN_DIR/pgsock" "$RUN_DIR/pglog"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$RUN_DIR/pg" "$RUN_DIR/pgsock" "$RUN_DIR/pglog"; fi
  log "Starting private PostgreSQL on 127.0.0.1:$PG_PORT"
  as_pg "$PG_BIN/initdb" -D "$RUN_DIR/pg" -U postgres -A trust -E UTF8 --no-locale >/dev/null
  as_pg "$PG_BIN/pg_ctl" -D "$RUN_DIR/pg" -l "$RUN_DIR/pglog/pg.log" -w -o \
    "-p $PG_PORT -k $RUN_DIR/pgsock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null
  PG_STARTED=1
  export TESSERA_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/tessera"
fi
if [ -z "${TESSERA_TEST_REDIS_URL:-}" ]; then
  REDIS_PORT="$(free_port)"
  log "Starting private Redis on 127.0.0.1:$REDIS_PORT"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$RUN_DIR/redis.pid" --logfile "$RUN_DIR/redis.log" --dir "$RUN_DIR" >/dev/null
  export TESSERA_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
fi
export TESSERA_DATABASE_URL="$TESSERA_TEST_DATABASE_URL"
export TESSERA_REDIS_URL="$TESSERA_TEST_REDIS_URL"
export TESSERA_DATA_DIR="$RUN_DIR/desktop-data"
export TESSERA_CHROMIUM="${TESSERA_CHROMIUM:-/usr/bin/chromium}"
# The production-path test (tests/config/test_production_path.py) builds a venv of requirements/saas.txt
# alone; kept here between runs and rebuilt when that file changes.
export TESSERA_PRODUCTION_VENV="${TESSERA_PRODUCTION_VENV:-$PWD/.venv-saas}"
export PYTHONDONTWRITEBYTECODE=1

# --- static checks --------------------------------------------------------------------------------
log "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check . >/dev/null || { .venv/bin/ruff format --diff . | head -40; exit 1; }
log "makemigrations --check (both runtimes)"
# (no database exists for this check: without a pool nothing retries connecting in the background)
for mode in desktop saas; do
  TESSERA_MODE=$mode TESSERA_DB_POOL_MAX_SIZE=0 PYTHONWARNINGS=ignore "$PYTHON" manage.py makemigrations --check --dry-run >/dev/null
done

# --- the suite, once per runtime ------------------------------------------------------------------
workers="${TESSERA_TEST_WORKERS:-2}"
status=0
for mode in ${TESSERA_TEST_MODES:-saas desktop}; do
  log "pytest, $mode runtime"
  set +e
  TESSERA_MODE="$mode" "$PYTHON" -m pytest -n "$workers" --junitxml="$RUN_DIR/junit-$mode.xml" -q "$@"
  rc=$?
  set -e
  # 5 = nothing collected (e.g. a -k filter matching only the other runtime's tests)
  if [ "$rc" != 0 ] && [ "$rc" != 5 ]; then status=1; fi
done

"$PYTHON" - "$RUN_DIR" <<'EOF'
import glob, sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for path in glob.glob(f"{sys.argv[1]}/junit-*.xml"):
    for suite in ET.parse(path).getroot().iter("testsuite"):
        total, fail = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skip = int(suite.get("skipped", 0))
        passed += total - fail - skip; failed += fail; skipped += skip
print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
EOF
exit "$status"
