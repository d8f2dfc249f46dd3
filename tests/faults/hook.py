"""The campaign's webhook receiver host: answers pings with their pong, every other POST with 200, and appends
each delivery (arrival time, body) as one JSON line to a file the checker reads.

    python -m tests.faults.hook HOST PORT FILE
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    lock = threading.Lock()
    out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - for the life of the process

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                payload = {"unparsable": body.decode("utf-8", "replace")}
            reply = b"{}"
            if isinstance(payload, dict) and "ping" in payload:
                reply = json.dumps({"pong": payload["ping"]}).encode()
            else:
                with lock:
                    out.write(json.dumps({"t": time.time(), "body": payload}) + "\n")
                    out.flush()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
