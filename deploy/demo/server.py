"""The lab's demo application: one small HTTP server in two roles.

web (the default): answers GET / with the cluster it runs in and the pod's name, and
GET /healthz with 200 once it has been up for READY_AFTER_SECONDS (the readiness probe:
the kubelet, not the operator, decides when the cluster serves).

db (`server.py db`): a stand-in database that appends a line to /data/journal every
second (its volume, a StatefulSet's PersistentVolumeClaim) and serves the count on
GET /.
"""

import http.server
import os
import signal
import socket
import sys
import threading
import time

CLUSTER = os.environ.get("CLUSTER_NAME", "unknown")
POD = socket.gethostname()
STARTED = time.monotonic()
READY_AFTER = float(os.environ.get("READY_AFTER_SECONDS", "2"))
ROLE = sys.argv[1] if len(sys.argv) > 1 else "web"
JOURNAL = "/data/journal"


def journal_lines():
    try:
        with open(JOURNAL, encoding="utf-8") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def write_journal():
    while True:
        with open(JOURNAL, "a", encoding="utf-8") as f:
            f.write(f"{time.time():.0f} {CLUSTER} {POD}\n")
        time.sleep(1)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            up = time.monotonic() - STARTED
            code = 200 if up >= READY_AFTER else 503
            self.reply(code, f"up {up:.1f}s\n")
        elif ROLE == "db":
            self.reply(200, f"db in {CLUSTER} ({POD}): {journal_lines()} journal lines\n")
        else:
            self.reply(200, f"demo served by cluster {CLUSTER} (pod {POD})\n")

    def reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    # PID 1 in its container: without a handler SIGTERM is ignored and the pod takes its
    # whole grace period to stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if ROLE == "db":
        threading.Thread(target=write_journal, daemon=True).start()
    port = int(os.environ.get("PORT", "8080"))
    http.server.ThreadingHTTPServer(("", port), Handler).serve_forever()
