"""Deliveries reuse a kept-alive connection per endpoint and worker thread, and the hard per-attempt deadline
holds on a reused connection as on a new one (a receiver that answers once, then drips on the same
connection, is cut off at WEBHOOK_TIMEOUT_SECONDS)."""

from __future__ import annotations

import socket
import threading
import time

from django.db import transaction

from tests.helpers.webhooks import deliver_due
from webhooks.models import MessageStatus, WebhookMessage
from webhooks.services import webhook_messages_create
from webhooks.services.delivery import post


def test_a_customers_deliveries_share_one_kept_alive_connection(endpoint, receiver):
    accepted = []
    accept = receiver.server.get_request

    def counting_accept():
        connection = accept()
        accepted.append(connection[1])
        return connection

    receiver.server.get_request = counting_accept
    with transaction.atomic():
        webhook_messages_create(
            customer_id=endpoint.customer_id, message_type="t", items=[(None, {"n": n}) for n in range(8)]
        )
    deliver_due()
    assert WebhookMessage.objects.filter(status=MessageStatus.DELIVERED).count() == 8
    assert len(receiver.snapshot()) == 8
    assert len(accepted) == 1  # one TCP connection for the eight (one deliverer, this thread)


class _AnswersOnceThenDrips:
    """One connection, several requests: the first is answered at once (keep-alive), the next one's body is
    dripped a byte every 0.3 s."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"

    @staticmethod
    def _read_request(conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
            0,
        )
        while len(rest) < length:
            rest += conn.recv(65536)
        return True

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                try:
                    if not self._read_request(conn):
                        continue
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                    if not self._read_request(conn):
                        continue
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
                    for _ in range(100):
                        time.sleep(0.3)
                        conn.sendall(b"x")
                except OSError:
                    continue

    def stop(self) -> None:
        self.listener.close()


def test_the_deadline_holds_on_a_reused_connection(settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    server = _AnswersOnceThenDrips()
    try:
        _, first = post(url=server.url, key="k" * 32, body=b"{}", message_id="m-1", keep_alive=True)
        assert first.succeeded
        started = time.monotonic()
        _, second = post(url=server.url, key="k" * 32, body=b"{}", message_id="m-2", keep_alive=True)
        elapsed = time.monotonic() - started
        assert server.connections == 1  # the second request went over the kept-alive connection
        assert not second.succeeded and second.error == "timeout after 1s"
        assert 1 <= elapsed < 2.5
    finally:
        server.stop()
