"""A real local HTTP server that records what it receives (webhooks, gateway calls) and answers from a
script of responses. Used instead of patching `requests`."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    delay: float = 0.0


class Receiver:
    """`replies` are consumed in order; when empty, `default` answers (a callable may build the reply)."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self.replies: list[Reply] = []
        self.default: Callable[[Received], Reply] = self._auto_reply
        self.lock = threading.Lock()
        self.condition = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                item = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with receiver.condition:
                    receiver.received.append(item)
                    reply = receiver.replies.pop(0) if receiver.replies else None
                    receiver.condition.notify_all()
                reply = reply or receiver.default(item)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_POST = do_PUT = do_GET = _handle  # noqa: N815

            def handle(self) -> None:
                # A client that gives up (timeout, bounded read) resets the connection: not a test failure.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    super().handle()

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def _auto_reply(item: Received) -> Reply:
        # Answers a ping with its pong, as a well-behaved webhook receiver does.
        try:
            payload = json.loads(item.body or b"{}")
        except ValueError:
            payload = {}
        if isinstance(payload, dict) and "ping" in payload:
            return Reply(body=json.dumps({"pong": payload["ping"]}).encode())
        return Reply()

    @property
    def url(self) -> str:
        host, port = self.server.socket.getsockname()[:2]  # the bound address (server_address is typed loosely)
        return f"http://{host}:{port}"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def json_reply(payload, status: int = 200, delay: float = 0.0, headers: dict[str, str] | None = None) -> Reply:
        """A JSON answer, e.g. a gateway's `{"status": "completed", "documents": [...]}`."""
        return Reply(
            status=status,
            body=json.dumps(payload).encode(),
            headers={"content-type": "application/json", **(headers or {})},
            delay=delay,
        )

    def wait_for_count(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Waits until at least `count` requests arrived; returns all received so far."""
        return self.wait_for(lambda received: len(received) >= count, timeout=timeout)

    def snapshot(self) -> list[Received]:
        with self.condition:
            return list(self.received)

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.condition:
            while not predicate(self.received):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"receiver: condition not met in {timeout}s; got {len(self.received)} requests"
                    )
                self.condition.wait(remaining)
            return list(self.received)
