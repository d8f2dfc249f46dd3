"""Outbound HTTP to customer-supplied URLs (webhooks): a `requests` session guarded against SSRF.

A customer sets the webhook URL, so without a guard it could point our servers at internal services
(cloud metadata at 169.254.169.254, the database, an admin port on localhost). The guard:

- accepts only http(s) URLs without credentials;
- resolves the host and refuses it when any address is not globally routable (private, loopback,
  link-local, shared, reserved, multicast, unspecified), an IP literal in the URL included. IPv6 forms that
  embed an IPv4 address are judged by it: IPv4-mapped (::ffff:0:0/96), 6to4 (2002::/16) and NAT64
  (64:ff9b::/96) are refused when the embedded IPv4 is not public; IPv4-compatible (::/96, deprecated),
  local-use NAT64 (64:ff9b:1::/48) and Teredo (2001::/32) are refused whatever they embed;
- resolves within a bound: at most RESOLVE_TIMEOUT_SECONDS, and never beyond the current Deadline (the
  lookup runs in a small shared thread pool; a resolver that hangs leaves the caller at the bound);
- does that check *at connect time, on the very addresses the socket connects to*: the connection class
  resolves once, checks, then connects to the checked IP literal (TLS still verifies the host name). A DNS
  answer that changes between a pre-check and the connection (DNS rebinding) therefore cannot slip through;
- ignores proxy environment variables (a proxy would connect on our behalf, out of the guard's sight).

`settings.WEBHOOK_ALLOW_PRIVATE_URLS` turns the address check off (tests, the embedded demo); the bounded
resolution stays.

`Deadline` bounds a whole request by wall-clock time (connect, headers and body): `requests` timeouts are per
socket operation, so a receiver dripping a byte at a time would otherwise hold the call for ever. Every
socket a session opens inside `with Deadline(...)` is watched, and shut down when the time is up, which
wakes whatever read or write is blocked on it.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import os
import queue
import socket
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

USER_AGENT = "metriport-bulk"
MAX_URL_LENGTH = 2000
# The longest a host name lookup may take; inside a Deadline (a webhook attempt, the ping) what remains of it
# is the bound when that is shorter. The URL check of the settings API runs outside any Deadline: 5 s.
RESOLVE_TIMEOUT_SECONDS = 5.0
RESOLVER_THREADS = 8

# NAT64 prefixes (RFC 6052 well-known, RFC 8215 local-use) that `ipaddress` does not name; the IPv4 address
# is in the last 32 bits. The IPv4-compatible block (RFC 4291, deprecated) is ::/96 minus :: and ::1.
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class UnsafeUrlError(ValueError):
    """The URL is not acceptable for an outbound call; the message says why, in words a customer can act on.

    A ValueError (not an OSError) on purpose: urllib3 and requests let it through unwrapped."""


class ResolutionTimeout(UnsafeUrlError):
    """The host name was not resolved within the bound (RESOLVE_TIMEOUT_SECONDS or the Deadline's remainder).
    Not a refusal of the URL as such: a webhook attempt ending on it fails and is retried later."""


def _private_allowed(allow_private: bool | None) -> bool:
    return settings.WEBHOOK_ALLOW_PRIVATE_URLS if allow_private is None else allow_private


def _kind_refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What kind of non-public address `address` is by the `ipaddress` properties, or None when it is global."""
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved (non-public) address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address, bool] | None:
    """(the form, the IPv4 address it embeds, whether the form is refused whatever it embeds) when `address`
    is an IPv6 form embedding an IPv4 address other than Teredo; None otherwise."""
    if address.ipv4_mapped is not None:
        return "an IPv4-mapped IPv6 address (::ffff:0:0/96)", address.ipv4_mapped, False
    if address.sixtofour is not None:
        return "a 6to4 IPv6 address (2002::/16)", address.sixtofour, False
    last_32_bits = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64_WELL_KNOWN:
        return "a NAT64 IPv6 address (64:ff9b::/96)", last_32_bits, False
    if address in _NAT64_LOCAL_USE:
        return "a local-use NAT64 IPv6 address (64:ff9b:1::/48)", last_32_bits, True
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # :: and ::1 are the unspecified and loopback ones
        return "an IPv4-compatible IPv6 address (::/96, deprecated)", last_32_bits, True
    return None


def _teredo_refusal(server: ipaddress.IPv4Address, client: ipaddress.IPv4Address) -> str:
    """Teredo (2001::/32) is always refused; the reason names an embedded IPv4 that is not public."""
    for role, ipv4 in (("client", client), ("server", server)):
        kind = _kind_refusal(ipv4)
        if kind:
            return f"a Teredo IPv6 address (2001::/32) whose {role} IPv4 {ipv4} is {kind}"
    return f"a Teredo IPv6 address (2001::/32, client IPv4 {client}); Teredo tunnel addresses are refused"


def address_refusal(ip: str) -> str | None:
    """What kind of non-public address `ip` is ("a loopback address", "a 6to4 IPv6 address (2002::/16)
    embedding 10.0.0.1, a private address"...), or None when it is a public (globally routable) address.
    An IPv6 form embedding an IPv4 address is judged by that address (and some forms are refused outright)."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(address, ipaddress.IPv6Address):
        if address.teredo is not None:
            return _teredo_refusal(*address.teredo)
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            form, ipv4, always_refused = embedded
            kind = _kind_refusal(ipv4)
            if kind:
                return f"{form} embedding {ipv4}, {kind}"
            return f"{form} embedding {ipv4}; this form is not globally routable" if always_refused else None
    return _kind_refusal(address)


class _Resolver:
    """`getaddrinfo` in RESOLVER_THREADS daemon threads. Not a ThreadPoolExecutor: the interpreter joins its
    threads at exit, so a lookup hanging in the system resolver held a stopping worker or web process up until
    the resolver gave up. The threads start at the first lookup of each process (a forked child starts its own)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.jobs: queue.SimpleQueue[tuple[Future[Any], str, int]] = queue.SimpleQueue()
        self.started_in: int | None = None
        self.lock = threading.Lock()

    def submit(self, host: str, port: int) -> Future[Any]:
        with self.lock:
            if self.started_in != os.getpid():
                self.jobs = queue.SimpleQueue()  # a forked child's copy may hold its parent's jobs
                for _ in range(self.threads):
                    threading.Thread(target=self._run, args=(self.jobs,), name="resolve", daemon=True).start()
                self.started_in = os.getpid()
        future: Future[Any] = Future()
        self.jobs.put((future, host, port))
        return future

    @staticmethod
    def _run(jobs: queue.SimpleQueue[tuple[Future[Any], str, int]]) -> None:
        while True:
            future, host, port = jobs.get()
            if not future.set_running_or_notify_cancel():
                continue  # its caller gave up while it was queued
            try:
                future.set_result(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, who decides
                future.set_exception(exc)


_resolver = _Resolver(RESOLVER_THREADS)


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def resolve(host: str, port: int) -> list[str]:
    """The IP addresses `host` resolves to, in the resolver's order, without duplicates, within the bound:
    RESOLVE_TIMEOUT_SECONDS, or what remains of the current Deadline when shorter. `getaddrinfo` has no
    timeout of its own, so it runs in the shared resolver pool and the caller waits for it at most that long
    (raising ResolutionTimeout); a lookup still hanging there holds one pool thread until the system resolver
    gives up."""
    bound = budget = RESOLVE_TIMEOUT_SECONDS
    deadline = _current_deadline.get()
    if deadline is not None and deadline.remaining() < bound:
        bound, budget = deadline.remaining(), deadline.seconds  # the message names the deadline, not a remainder
    future = _resolver.submit(host, port)
    try:
        infos = future.result(timeout=bound)
    except FutureTimeoutError:
        future.cancel()  # still queued behind hanging lookups: never started
        raise ResolutionTimeout(f"could not resolve host {host} within {budget:g} s") from None
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrlError(f"the host {host} could not be resolved") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))  # already a str for IPv4 and IPv6


def checked_addresses(host: str, port: int) -> list[str]:
    """Resolves `host` and returns its addresses if every one is public; raises UnsafeUrlError otherwise.
    An IP literal is judged as it is, without a lookup.

    All addresses must pass, not just one: a host answering with a public and a private address could
    otherwise be steered to the private one."""
    if _ip_literal(host):
        refusal = address_refusal(host)
        if refusal:
            raise UnsafeUrlError(f"the address {host} is {refusal}; private and internal addresses are refused")
        return [host]
    addresses = resolve(host, port)
    if not addresses:
        raise UnsafeUrlError(f"the host {host} has no address")
    for ip in addresses:
        refusal = address_refusal(ip)
        if refusal:
            raise UnsafeUrlError(
                f"the host {host} resolves to {ip}, {refusal}; private and internal addresses are refused"
            )
    return addresses


def url_refusal(url: str) -> str | None:
    """Why `url` is not a usable outbound URL by its shape alone (no DNS), or None."""
    if len(url) > MAX_URL_LENGTH:
        return f"the URL is longer than {MAX_URL_LENGTH} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "the URL is not valid"
    if parts.scheme not in ("http", "https"):
        return "the URL must start with http:// or https://"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return "the URL must not contain credentials"
    if port == 0:
        return "the URL's port is not valid"
    return None


def check_url(url: str, *, allow_private: bool | None = None) -> None:
    """Raises UnsafeUrlError when `url` must not be called (an IP literal host judged as it is, a name
    resolved within RESOLVE_TIMEOUT_SECONDS). A pre-check for a clear answer at the API; the connection-time
    guard of `guarded_session` is what actually protects each request."""
    refusal = url_refusal(url)
    if refusal:
        raise UnsafeUrlError(refusal)
    if _private_allowed(allow_private):
        return
    parts = urlsplit(url)
    assert parts.hostname is not None  # url_refusal checked it
    checked_addresses(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


_current_deadline: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("deadline", default=None)


class DeadlineExceeded(Exception):
    """The request did not finish within its Deadline."""


class Deadline:
    """A wall-clock budget for one outbound request, covering connect, headers and body.

    Used as a context manager around the request (in the same thread): connections opened meanwhile register
    a duplicate of their socket here; a timer shuts those sockets down at expiry, so a blocked read returns at
    once and the request fails. `timeout()` gives per-operation timeouts capped by what remains."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires_at = time.monotonic() + seconds
        self.expired = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._token: contextvars.Token[Deadline | None] | None = None

    def remaining(self) -> float:
        return max(0.0, self.expires_at - time.monotonic())

    def timeout(self) -> tuple[float, float]:
        """(connect, read) timeouts for requests, never beyond the deadline (and never zero: requests refuses)."""
        left = max(self.remaining(), 0.001)
        return (left, left)

    def check(self) -> None:
        if self.expired.is_set() or self.remaining() <= 0:
            self.expired.set()
            raise DeadlineExceeded

    def watch(self, sock: socket.socket) -> None:
        """Keeps a duplicate descriptor of `sock`: shutting it down stops the connection whatever wraps it
        (TLS included), and it stays ours to close, so a recycled descriptor number is never touched."""
        duplicate = sock.dup()
        with self._lock:
            self._sockets.append(duplicate)
            expired = self.expired.is_set()
        if expired:
            self._shutdown(duplicate)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed by the peer: nothing left to stop
            sock.shutdown(socket.SHUT_RDWR)

    def _expire(self) -> None:
        self.expired.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    def __enter__(self) -> Deadline:
        self._token = _current_deadline.set(self)
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        if self._token is not None:
            _current_deadline.reset(self._token)
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()


# The connection mixins extend urllib3's HTTPConnection (their super() is one); to the type checker they are one.
if TYPE_CHECKING:
    _ConnectionBase = HTTPConnection
    _PoolBase = HTTPConnectionPool
else:
    _ConnectionBase = object
    _PoolBase = object


class _DeadlineConnectionMixin(_ConnectionBase):
    """Registers each new socket with the Deadline of the request being made in this thread, if any, and keeps
    a duplicate of it so that a later request on the same kept-alive connection can register it with its own
    Deadline (see `_DeadlinePoolMixin`): the raw socket, since a TLS socket cannot be duplicated."""

    _kept_socket: socket.socket | None = None

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        self._drop_kept_socket()
        self._kept_socket = sock.dup()
        deadline = _current_deadline.get()
        if deadline is not None:
            deadline.watch(sock)
        return sock

    def _drop_kept_socket(self) -> None:
        kept, self._kept_socket = self._kept_socket, None
        if kept is not None:
            kept.close()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._drop_kept_socket()


class _DeadlinePoolMixin(_PoolBase):
    """A connection taken from the pool that is already connected (kept alive) is registered with the current
    Deadline too: the hard per-attempt deadline holds on a reused connection as on a new one."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        deadline = _current_deadline.get()
        kept = getattr(conn, "_kept_socket", None)
        if deadline is not None and kept is not None and getattr(conn, "sock", None) is not None:
            deadline.watch(kept)
        return conn


class _ResolvingConnectionMixin(_ConnectionBase):
    """Resolves within the bound (see `resolve`), checks the addresses when `check_addresses`, and connects to
    each IP literal in turn; `self.host` (Host header, TLS SNI and certificate check) stays the name."""

    check_addresses = True

    def _new_conn(self) -> socket.socket:
        hostname = self._dns_host
        last_error: Exception | None = None
        if self.check_addresses:
            addresses = checked_addresses(hostname, self.port)
        else:
            addresses = [hostname] if _ip_literal(hostname) else resolve(hostname, self.port)
        for ip in addresses:
            self._dns_host = ip
            try:
                return super()._new_conn()
            except (NewConnectionError, ConnectTimeoutError) as exc:
                last_error = exc
            finally:
                self._dns_host = hostname
        assert last_error is not None
        raise last_error


class _GuardedHTTPConnection(_ResolvingConnectionMixin, _DeadlineConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_ResolvingConnectionMixin, _DeadlineConnectionMixin, HTTPSConnection):
    pass


class _DeadlineHTTPConnection(_ResolvingConnectionMixin, _DeadlineConnectionMixin, HTTPConnection):
    check_addresses = False


class _DeadlineHTTPSConnection(_ResolvingConnectionMixin, _DeadlineConnectionMixin, HTTPSConnection):
    check_addresses = False


class _DeadlineHTTPConnectionPool(_DeadlinePoolMixin, HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSConnectionPool(_DeadlinePoolMixin, HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class _GuardedHTTPConnectionPool(_DeadlinePoolMixin, HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(_DeadlinePoolMixin, HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """A requests adapter whose connections obey the Deadline of the current request, name resolution
    included (no address check)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _DeadlineHTTPConnectionPool,
            "https": _DeadlineHTTPSConnectionPool,
        }


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections refuse non-public addresses (see the module docstring) and obey
    the Deadline of the current request."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPConnectionPool,
            "https": _GuardedHTTPSConnectionPool,
        }


_kept = threading.local()
KEPT_SESSIONS_PER_THREAD = 32


def kept_session(*, url: str, allow_private: bool | None = None) -> requests.Session:
    """A guarded session of this thread for `url`'s origin (scheme, host, port), kept between calls so that
    successive requests to one endpoint reuse a kept-alive connection (no new TCP/TLS handshake each time).
    Each connection was checked by the guard when it was made, and every request on it still obeys its own
    Deadline. One session per thread (sessions are not thread-safe), at most KEPT_SESSIONS_PER_THREAD
    endpoints per thread (the least recently used is closed)."""
    parts = urlsplit(url)
    key = (parts.scheme, parts.hostname, parts.port, _private_allowed(allow_private))
    sessions: OrderedDict[tuple[object, ...], requests.Session] = _kept.__dict__.setdefault("sessions", OrderedDict())
    session = sessions.get(key)
    if session is None:
        session = sessions[key] = guarded_session(allow_private=allow_private)
        while len(sessions) > KEPT_SESSIONS_PER_THREAD:
            sessions.popitem(last=False)[1].close()
    else:
        sessions.move_to_end(key)
    return session


def guarded_session(*, allow_private: bool | None = None) -> requests.Session:
    """A session for customer-supplied URLs: SSRF guard (unless private URLs are allowed), no proxies from
    the environment, no .netrc credentials, no retries, our user agent. Callers still pass
    `allow_redirects=False` and a timeout on every request."""
    session = requests.Session()
    session.trust_env = False
    session.headers["user-agent"] = USER_AGENT
    adapter = DeadlineAdapter(max_retries=0) if _private_allowed(allow_private) else GuardedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
