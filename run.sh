#!/usr/bin/env bash
# Run Tessera: the desktop edition (one business on SQLite, demo data) on http://127.0.0.1.
# Needs only Python 3.11+. Creates .venv and installs requirements/desktop.txt on first use.
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
    # Debian without python3-venv: a venv without pip, then pip's own wheel from PyPI.
    rm -rf .venv
    "$PY" -m venv --without-pip .venv
    .venv/bin/python - <<'EOF'
import json, subprocess, sys, tempfile, urllib.request, os
meta = json.load(urllib.request.urlopen("https://pypi.org/pypi/pip/json", timeout=60))
wheel = next(u for u in meta["urls"] if u["filename"].endswith(".whl"))
path = os.path.join(tempfile.mkdtemp(), wheel["filename"])
urllib.request.urlretrieve(wheel["url"], path)
subprocess.check_call([sys.executable, f"{path}/pip", "install", "-q", path])
EOF
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
data_dir="$(.venv/bin/python -c 'from django.conf import settings; import django; django.setup(); print(settings.DATA_DIR)')"

cat <<EOF

  Tessera is running at  http://127.0.0.1:$port/

$(printf '%s\n' "$credentials" | sed 's/^/  /')

  Data folder: $data_dir
  Stop with Ctrl+C.

EOF
exec .venv/bin/uvicorn config.asgi:application --host 127.0.0.1 --port "$port" --no-access-log --log-level warning
