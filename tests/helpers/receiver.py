"""The real local HTTP receiver used by the tests (it lives in devtools so the demo can use it too), and
hostile receivers: raw socket servers in a thread that misbehave the way slow or dead endpoints do."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from metriport_bulk.devtools.receiver import Received, Receiver, Reply  # noqa: F401


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
