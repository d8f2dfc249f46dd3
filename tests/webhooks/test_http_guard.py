"""The SSRF guard of metriport_bulk.lib.http, against the real local receiver (which listens on loopback)."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time

import pytest

from metriport_bulk.lib import http
from metriport_bulk.lib.http import (
    ResolutionTimeout,
    UnsafeUrlError,
    address_refusal,
    check_url,
    guarded_session,
    url_refusal,
)
from tests.helpers.processes import ROOT
from tests.webhooks.conftest import HANGING_HOST


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


# IPv6 forms embedding an IPv4 address, judged by the address they embed: (address, form named, what it embeds).
EMBEDDING_NON_PUBLIC_IPV4 = [
    ("::ffff:127.0.0.1", "IPv4-mapped", "127.0.0.1, a loopback address"),
    ("::ffff:10.1.2.3", "IPv4-mapped", "10.1.2.3, a private address"),
    ("::ffff:169.254.169.254", "IPv4-mapped", "169.254.169.254, a link-local address"),
    ("::ffff:100.64.0.1", "IPv4-mapped", "100.64.0.1, a reserved (non-public) address"),
    ("::ffff:0.0.0.0", "IPv4-mapped", "0.0.0.0, an unspecified address"),
    ("::127.0.0.1", "IPv4-compatible", "127.0.0.1, a loopback address"),
    ("::192.168.0.1", "IPv4-compatible", "192.168.0.1, a private address"),
    ("::a9fe:a9fe", "IPv4-compatible", "169.254.169.254, a link-local address"),
    ("2002:7f00:1::", "6to4", "127.0.0.1, a loopback address"),
    ("2002:a00:1::1", "6to4", "10.0.0.1, a private address"),
    ("2002:c0a8:101:42::1", "6to4", "192.168.1.1, a private address"),
    ("2002:a9fe:a9fe::", "6to4", "169.254.169.254, a link-local address"),
    ("2002:e000:1::", "6to4", "224.0.0.1, a multicast address"),
    ("64:ff9b::7f00:1", "NAT64 IPv6 address (64:ff9b::/96)", "127.0.0.1, a loopback address"),
    ("64:ff9b::10.0.0.1", "NAT64 IPv6 address (64:ff9b::/96)", "10.0.0.1, a private address"),
    ("64:ff9b::a9fe:a9fe", "NAT64 IPv6 address (64:ff9b::/96)", "169.254.169.254, a link-local address"),
    ("64:ff9b:1::c0a8:1", "local-use NAT64", "192.168.0.1, a private address"),
    ("64:ff9b:1:2::7f00:1", "local-use NAT64", "127.0.0.1, a loopback address"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo", "client IPv4 192.0.2.45 is a private address"),
    ("2001:0:a00:1:8000:63bf:f7f7:f7f7", "Teredo", "server IPv4 10.0.0.1 is a private address"),
    ("2001:0:808:808:0:0:80ff:fffe", "Teredo", "client IPv4 127.0.0.1 is a loopback address"),
]


@pytest.mark.parametrize("ip, form, embedded", EMBEDDING_NON_PUBLIC_IPV4)
def test_ipv6_forms_embedding_a_non_public_ipv4_are_refused_naming_the_form_and_the_ipv4(ip, form, embedded):
    refusal = address_refusal(ip)
    assert refusal is not None and form in refusal and embedded in refusal


@pytest.mark.parametrize(
    "ip, form",
    [
        ("::8.8.8.8", "IPv4-compatible IPv6 address (::/96, deprecated) embedding 8.8.8.8; this form is not"),
        ("64:ff9b:1::808:808", "local-use NAT64 IPv6 address (64:ff9b:1::/48) embedding 8.8.8.8; this form is"),
        ("2001:0:808:808:8000:63bf:f7f7:f7f7", "Teredo IPv6 address (2001::/32, client IPv4 8.8.8.8); Teredo"),
    ],
)
def test_deprecated_local_use_and_tunnel_forms_are_refused_even_when_they_embed_a_public_ipv4(ip, form):
    """IPv4-compatible addresses are deprecated, local-use NAT64 is local by definition (RFC 8215) and Teredo
    tunnels to a host we cannot judge: refused whatever the IPv4 they embed."""
    assert form in address_refusal(ip)


@pytest.mark.parametrize(
    "ip",
    [
        "::ffff:8.8.8.8",  # IPv4-mapped: the socket connects to 8.8.8.8
        "::ffff:93.184.216.34",
        "2002:808:808::",  # 6to4 of 8.8.8.8: routed over the public 6to4 relays
        "2002:5db8:d822:1::1",  # 6to4 of 93.184.216.34, any subnet and interface
        "64:ff9b::808:808",  # well-known NAT64 prefix (globally meaningful, RFC 6052) of 8.8.8.8
        "64:ff9b::93.184.216.34",
    ],
)
def test_ipv6_forms_embedding_a_public_ipv4_pass(ip):
    assert address_refusal(ip) is None


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://[::ffff:127.0.0.1]/hook", "the address ::ffff:127.0.0.1 is an IPv4-mapped IPv6 address"),
        ("https://[2002:a9fe:a9fe::]:8443/", "is a 6to4 IPv6 address (2002::/16) embedding 169.254.169.254"),
        ("http://[64:ff9b::a00:1]/hook", "is a NAT64 IPv6 address (64:ff9b::/96) embedding 10.0.0.1"),
        ("http://[::7f00:1]/hook", "IPv4-compatible IPv6 address (::/96, deprecated) embedding 127.0.0.1"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "a Teredo IPv6 address"),
        ("http://127.0.0.1:8080/", "the address 127.0.0.1 is a loopback address"),
        ("http://[fe80::1%25eth0]/", "a link-local address"),
    ],
)
def test_check_url_refuses_ip_literals_by_their_form_without_any_lookup(url, reason, monkeypatch):
    def no_dns(*args, **kwargs):
        raise AssertionError("an IP literal needs no lookup")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert url_refusal(url) is None  # well-formed: the address rule is what refuses it
    with pytest.raises(UnsafeUrlError, match="private and internal addresses are refused") as refused:
        check_url(url, allow_private=False)
    assert reason in str(refused.value)


def test_guarded_session_refuses_an_ipv4_mapped_loopback_literal_at_connect_time(receiver):
    port = receiver.server.server_address[1]
    with pytest.raises(UnsafeUrlError, match=r"IPv4-mapped IPv6 address \(::ffff:0:0/96\) embedding 127.0.0.1"):
        guarded_session(allow_private=False).post(
            f"http://[::ffff:127.0.0.1]:{port}/hook", data=b"{}", timeout=2, allow_redirects=False
        )
    assert receiver.snapshot() == []


def test_a_name_resolving_to_a_6to4_form_of_loopback_is_refused(monkeypatch):
    def six_to_four_dns(host, port, *args, **kwargs):
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2002:7f00:1::1", port, 0, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", six_to_four_dns)
    with pytest.raises(UnsafeUrlError, match=r"resolves to 2002:7f00:1::1, a 6to4 .* embedding 127.0.0.1, a loop"):
        check_url("https://sixtofour.example.test/hook", allow_private=False)


def test_check_url_gives_up_on_a_hanging_resolver_within_the_resolve_bound(hanging_dns, monkeypatch):
    """The settings API's URL check runs outside any Deadline: its lookup is bounded by
    RESOLVE_TIMEOUT_SECONDS (5 s; shortened here)."""
    monkeypatch.setattr(http, "RESOLVE_TIMEOUT_SECONDS", 0.5)
    started = time.monotonic()
    with pytest.raises(ResolutionTimeout, match=f"could not resolve host {HANGING_HOST} within 0.5 s"):
        check_url(f"https://{HANGING_HOST}/hook", allow_private=False)
    assert 0.5 <= time.monotonic() - started < 2
    assert hanging_dns == [HANGING_HOST]


def test_a_lookup_inside_a_deadline_is_bounded_by_what_remains_of_it(hanging_dns):
    started = time.monotonic()
    with http.Deadline(0.6), pytest.raises(ResolutionTimeout, match=f"resolve host {HANGING_HOST} within 0.6 s"):
        guarded_session(allow_private=True).post(
            f"http://{HANGING_HOST}/hook", data=b"{}", timeout=5, allow_redirects=False
        )
    assert time.monotonic() - started < 0.6 + 1.5


def test_a_lookup_still_hanging_does_not_hold_up_the_process_exit():
    """A process (a worker stopping, a web server) whose lookup timed out exits at once: the hung resolver
    thread is a daemon. The lookup here would hang for 10 minutes; the process must end long before."""
    program = textwrap.dedent(
        f"""
        import socket, time
        from metriport_bulk.lib import http

        def hang(host, port, *args, **kwargs):
            time.sleep(600)

        socket.getaddrinfo = hang
        http.RESOLVE_TIMEOUT_SECONDS = 0.3
        try:
            http.check_url("https://{HANGING_HOST}/hook", allow_private=False)
        except http.ResolutionTimeout:
            print("timed out", flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "timed out"), done.stderr


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
    with pytest.raises(UnsafeUrlError, match="the host localhost resolves to .*, a loopback address"):
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
