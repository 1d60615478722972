#!/usr/bin/env bash
# Run Tessera: the desktop edition (one business on SQLite, demo data) on http://127.0.0.1.
# Needs only Python 3.11+ (with its venv module: Debian's python3-venv). Creates .venv and installs
# requirements/desktop.txt on first use; runs the web server and the background-jobs worker.
#
#   ./run.sh                   serve on port 8000 (or a free port if 8000 is taken)
#   TESSERA_PORT=9000 ./run.sh
#   TESSERA_DATA_DIR=/tmp/t ./run.sh     keep the data somewhere else (default: your user data folder)
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '%s\n' "$*" >&2; }

PY=""
for candidate in python3.11 python3 python3.12 python3.13; do
  if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY="$(command -v "$candidate")"; break
  fi
done
[ -n "$PY" ] || { say "Tessera needs Python 3.11 or newer (python3 --version)."; exit 2; }

if [ ! -x .venv/bin/python ]; then
  say "Creating .venv with $PY"
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    say "Python's venv module is missing its pip (Debian/Ubuntu split it out)."
    say "Install it, then run ./run.sh again:   sudo apt install python3-venv"
    say "(for $("$PY" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")'): the package is also named $("$PY" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}-venv")'))"
    exit 2
  fi
fi
stamp=".venv/.requirements-desktop.sha"
want="$(sha256sum requirements/desktop.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "Installing requirements/desktop.txt (first run only)"
  .venv/bin/python -m pip install -q -r requirements/desktop.txt
  echo "$want" > "$stamp"
fi

export TESSERA_MODE=desktop DJANGO_SETTINGS_MODULE=config.settings
export TESSERA_LOG_FORMAT="${TESSERA_LOG_FORMAT:-text}"
.venv/bin/python manage.py migrate --noinput -v0
.venv/bin/python manage.py collectstatic --noinput -v0
credentials="$(.venv/bin/python manage.py seed_demo)"

port="${TESSERA_PORT:-}"
if [ -z "$port" ]; then
  port="$(.venv/bin/python - <<'EOF'
import socket
s = socket.socket()
try:
    s.bind(("127.0.0.1", 8000))
except OSError:
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF
)"
fi
{ read -r data_dir; read -r beat_schedule; } < <(.venv/bin/python -c 'import django; django.setup()
from django.conf import settings
print(settings.DATA_DIR)
print(settings.CELERY_BEAT_SCHEDULE_FILENAME)')

# Background jobs (webhook deliveries, imports, e-mail, backups): the same Celery worker and beat
# the desktop app runs, on its file broker (no Redis), stopped with the server.
.venv/bin/celery -A config worker --pool solo --concurrency 1 --beat --schedule "$beat_schedule" \
  --without-heartbeat --without-mingle --without-gossip --loglevel warning &
worker=$!
trap 'kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null || true' EXIT

cat <<EOF

  Tessera is running at  http://127.0.0.1:$port/

$(printf '%s\n' "$credentials" | sed 's/^/  /')

  Data folder: $data_dir
  Background jobs: a worker is running (pid $worker).
  Stop with Ctrl+C.

EOF
.venv/bin/uvicorn config.asgi:application --host 127.0.0.1 --port "$port" --no-access-log --log-level warning
