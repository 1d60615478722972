"""The bench's webhook receiver, in a process of its own: a threaded http.server on 127.0.0.1 that
answers 204 and appends `<webhook-id> <arrival time.time()>` to a file for every request. A path with
`/slow` in it answers after SLOW_SECONDS (0.2 s; bench/webhooks/fairness.py's backlogged endpoint).

    python bench/webhooks/receiver.py PORT_FILE LOG_FILE
"""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port_file, log_file = sys.argv[1], sys.argv[2]
out = open(log_file, "a", buffering=1)  # noqa: SIM115
lock = threading.Lock()
SLOW_SECONDS = 0.2


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        arrived = time.time()
        if "/slow" in self.path:
            time.sleep(SLOW_SECONDS)
        with lock:
            out.write(f"{self.headers.get('webhook-id', '-')} {arrived:.6f}\n")
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
server.request_queue_size = 512
with open(port_file, "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
