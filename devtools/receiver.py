"""A real local HTTP server that records what it receives (webhooks, gateway calls) and answers from a
script of responses, used instead of patching `requests`; and hostile receivers: raw socket servers in a
thread that misbehave the way slow or dead endpoints do."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# How long a wait takes before it fails, unless its caller gives its own bound (the receiver's waits here, and
# the tests' wait_until): generous, since `make test` runs four processes on two cores and a busy CI machine
# may be slower still. Only a failing wait takes this long.
WAIT_SECONDS = 60.0


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
            # Headers and body are written apart: with Nagle's algorithm on, a kept-alive connection waits for
            # the client's delayed ACK (40 ms) at each answer, as no real web server does.
            disable_nagle_algorithm = True

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
        # shutdown() waits for serve_forever's next poll: 0.5 s by default, paid by every test that stops one.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

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

    def wait_for_count(self, count: int, timeout: float = WAIT_SECONDS) -> list[Received]:
        """Waits until at least `count` requests arrived; returns all received so far."""
        return self.wait_for(lambda received: len(received) >= count, timeout=timeout)

    def snapshot(self) -> list[Received]:
        with self.condition:
            return list(self.received)

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = WAIT_SECONDS) -> list[Received]:
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


class HostileReceiver:
    """Accepts connections and reads each request, then, by `mode`:

    - `drip`: answers `200` with its headers, then drips the body one byte every `interval` seconds;
    - `slow-headers`: sends the status line, then drips a header one byte every `interval` seconds;
    - `dead`: answers nothing at all and keeps the connection open.

    `requests` counts requests read; `closed` counts connections the client gave up on, with the time it
    took (seconds from the request read to the client's close)."""

    def __init__(self, mode: str = "drip", interval: float = 2.0) -> None:
        assert mode in ("drip", "slow-headers", "dead")
        self.mode = mode
        self.interval = interval
        self.requests = 0
        self.held_for: list[float] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.thread = threading.Thread(target=self._serve, daemon=True, name=f"hostile-{mode}")

    @property
    def url(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> HostileReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.listener.close()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_request(conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            rest += chunk
        return True

    def _handle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            if not self._read_request(conn):
                return
            with self.lock:
                self.requests += 1
            read_at = time.monotonic()
            if self.mode == "drip":
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10000\r\n\r\n")
                drip = b"{"
            elif self.mode == "slow-headers":
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                drip = b"x"
            else:
                drip = b""
            conn.settimeout(self.interval)
            try:
                while not self.stopped.is_set():
                    try:
                        if not conn.recv(1):  # the client closed (or shut down) the connection
                            break
                    except TimeoutError:
                        if drip:
                            conn.sendall(drip)
                            drip = b" " if self.mode == "drip" else b"x"
            finally:
                with self.lock:
                    self.held_for.append(time.monotonic() - read_at)
