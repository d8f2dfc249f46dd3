"""The SSRF guard of metriport_bulk.lib.http, against the real local receiver (which listens on loopback)."""

from __future__ import annotations

import socket

import pytest

from metriport_bulk.lib import http
from metriport_bulk.lib.http import UnsafeUrlError, address_refusal, check_url, guarded_session, url_refusal


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:10.0.0.1",
    ],
)
def test_non_public_addresses_are_refused(ip):
    assert address_refusal(ip) is not None


@pytest.mark.parametrize("ip", ["8.8.8.8", "93.184.216.34", "2001:4860:4860::8888"])
def test_public_addresses_pass(ip):
    assert address_refusal(ip) is None


@pytest.mark.parametrize(
    "url, reason",
    [
        ("ftp://example.com/hook", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("https:///nohost", "no host"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https://example.com:99999/", "not valid"),
        ("https://example.com/" + "a" * 2001, "longer than"),
    ],
)
def test_malformed_urls_are_refused_by_shape(url, reason):
    assert reason in url_refusal(url)


def test_check_url_refuses_loopback_names_and_literals_unless_private_urls_are_allowed(receiver):
    with pytest.raises(UnsafeUrlError, match="loopback"):
        check_url(f"{receiver.url}/hook", allow_private=False)
    with pytest.raises(UnsafeUrlError, match="loopback"):
        check_url("http://localhost:8080/hook", allow_private=False)
    check_url(f"{receiver.url}/hook", allow_private=True)


def test_guarded_session_refuses_at_connect_time_and_nothing_reaches_the_receiver(receiver):
    with pytest.raises(UnsafeUrlError, match="loopback"):
        guarded_session(allow_private=False).post(f"{receiver.url}/hook", data=b"{}", timeout=2, allow_redirects=False)
    assert receiver.snapshot() == []


def test_guard_checks_the_addresses_actually_connected_to_dns_rebinding(receiver, monkeypatch):
    """A name that resolves to a public address for the pre-check and to loopback for the connection (DNS
    rebinding) is refused at connect time: the guard judges the addresses it connects to."""
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1", "127.0.0.1"])

    def rebinding_dns(host, port, *args, **kwargs):
        if host != "rebind.example.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    port = receiver.server.server_address[1]
    url = f"http://rebind.example.test:{port}/hook"
    check_url(url, allow_private=False)  # first answer: public
    with pytest.raises(UnsafeUrlError, match="127.0.0.1"):
        guarded_session(allow_private=False).post(url, data=b"{}", timeout=2, allow_redirects=False)
    assert receiver.snapshot() == []


def test_guarded_connection_connects_to_the_checked_ip_and_keeps_the_host_name(receiver, monkeypatch):
    """With the policy relaxed to accept loopback, a made-up name resolved once by the guard reaches the
    receiver: the socket goes to the checked IP, the Host header still names the host."""
    monkeypatch.setattr(http, "address_refusal", lambda ip: None)
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def fake_dns(host, port, *args, **kwargs):
        if host != "hooks.example.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    port = receiver.server.server_address[1]
    response = guarded_session(allow_private=False).post(
        f"http://hooks.example.test:{port}/hook", data=b"{}", timeout=2, allow_redirects=False
    )
    assert response.status_code == 200
    assert lookups == ["hooks.example.test"]  # one resolution, by the guard
    (received,) = receiver.snapshot()
    assert received.headers["host"] == f"hooks.example.test:{port}"
    assert received.headers["user-agent"] == "metriport-bulk"


def test_proxy_environment_variables_are_ignored(receiver, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://10.255.255.1:3128")
    monkeypatch.setenv("NO_PROXY", "")
    response = guarded_session(allow_private=True).post(f"{receiver.url}/hook", data=b"{}", timeout=2)
    assert response.status_code == 200
