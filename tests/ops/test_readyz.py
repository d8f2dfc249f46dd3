"""/readyz: 200 when database, broker and storage answer; 503 naming the one that does not. The broker and
database cases use a private Redis and a private PostgreSQL cluster started and stopped by the test."""

from __future__ import annotations

import dramatiq
import pytest
from django.test import Client

from devtools.postgres import PostgresServer
from tests.helpers.processes import RedisServer

pytestmark = pytest.mark.django_db


def test_ready_when_everything_answers():
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok", "storage": "ok"}}


def test_503_names_a_stopped_broker(tmp_path, monkeypatch):
    from dramatiq.brokers.redis import RedisBroker

    server = RedisServer(tmp_path)
    server.start()
    broker = RedisBroker(url=server.url, socket_timeout=1, socket_connect_timeout=1)
    monkeypatch.setattr(dramatiq, "get_broker", lambda: broker)
    try:
        assert Client().get("/readyz").status_code == 200
        server.kill()
        response = Client().get("/readyz")
    finally:
        server.kill()
    assert response.status_code == 503
    body = response.json()
    assert body["unavailable"] == ["broker"] and body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("unreachable (")
    assert "redis://" not in response.content.decode()


def test_503_names_unreachable_storage(monkeypatch):
    from metriport_bulk.lib import storage

    def down(key):
        raise ConnectionError("storage down")

    monkeypatch.setattr(storage, "object_size", down)
    response = Client().get("/readyz")
    assert response.status_code == 503 and response.json()["unavailable"] == ["storage"]


def test_post_is_a_json_405():
    response = Client().post("/readyz")
    assert response.status_code == 405 and response.json()["status"] == 405


def test_503_names_a_stopped_database(monkeypatch):
    from django.db import connections
    from django.db.backends.postgresql.base import DatabaseWrapper

    from metriport_bulk.ops import readiness

    server = PostgresServer().start()
    private = DatabaseWrapper(
        {**connections["default"].settings_dict, "NAME": "postgres", "HOST": "127.0.0.1", "PORT": server.port,
         "USER": "postgres", "PASSWORD": "", "OPTIONS": {"connect_timeout": 2}, "CONN_MAX_AGE": 0},
        alias="private",
    )  # fmt: skip
    monkeypatch.setattr(readiness, "connection", private)
    try:
        assert Client().get("/readyz").status_code == 200
        private.close()
        server.stop()
        response = Client().get("/readyz")
    finally:
        private.close()
        server.remove()
    assert response.status_code == 503
    body = response.json()
    assert body["unavailable"] == ["database"] and body["checks"]["broker"] == "ok"
    assert body["checks"]["database"].startswith("unreachable (")
    assert str(server.port) not in response.content.decode()
