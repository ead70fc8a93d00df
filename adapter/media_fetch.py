"""Downloading one attachment to re-host it: bounded, and safe against SSRF.

Off unless a site opts in (``docs/attachments.md``); run by a worker, never in a web
request. Every hop of the download is resolved and each address checked *before* we
connect, and the connection goes to the address that was checked (a name that answers
public once and private the next time cannot slip through); TLS still verifies the
certificate against the URL's own host name. Redirects are followed by hand, each one
checked the same way. The answer's type must be one the site takes, its size under the
cap (declared and as read), and the whole download within a total time.

Reasons never carry the URL (logs carry ids only): a URL of a child's media is theirs.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

REDIRECTS = (301, 302, 303, 307, 308)
RETRYABLE_STATUSES = (408, 425, 429)
CHUNK = 64 * 1024


class FetchRefused(Exception):
    """The attachment was not fetched; ``retryable`` says whether trying later may help."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class FetchRules:
    max_bytes: int = 10_000_000
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_redirects: int = 3
    #: ``host:port`` pairs that may be private addresses: for tests and the local
    #: sandbox only (``unsafe_allow_private_hosts``), never ranges.
    unsafe_allow_private_hosts: Collection[str] = ()


@dataclass(frozen=True)
class Fetched:
    content_type: str
    body: bytes
    redirects: int


def public(address: str) -> bool:
    """Whether ``address`` is on the public internet: not private, loopback, link-local
    (where cloud metadata lives), shared, reserved, documentation or multicast. An IPv6
    address carrying an IPv4 one (mapped, 6to4, Teredo) is judged by the IPv4 inside."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None:
            return public(str(inner))
    return ip.is_global and not ip.is_multicast


Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise FetchRefused("the media host does not resolve", retryable=True) from None
    return list(dict.fromkeys(info[4][0] for info in infos))


def _checked_address(host: str, port: int, rules: FetchRules, resolver: Resolver) -> str:
    """The address to connect to: every answer public, or the pair explicitly allowed."""
    addresses = resolver(host, port)
    if not addresses:
        raise FetchRefused("the media host does not resolve", retryable=True)
    if f"{host}:{port}" in rules.unsafe_allow_private_hosts:
        return addresses[0]
    if not all(public(address) for address in addresses):
        raise FetchRefused("the media host is a private address", retryable=False)
    return addresses[0]


def _pool(scheme: str, host: str, address: str, port: int, rules: FetchRules,
          remaining: float):
    """A connection pool to the checked ``address``; no wait longer than the time left."""
    timeout = urllib3.Timeout(connect=min(rules.connect_timeout, remaining),
                              read=min(rules.read_timeout, remaining))
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address, port, timeout=timeout, retries=False, maxsize=1,
            cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(),
            server_hostname=host, assert_hostname=host)
    return urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)


def fetch(url: str, rules: FetchRules, type_refusal: Callable[[str | None], str | None],
          resolver: Resolver = resolve) -> Fetched:
    """Download ``url`` under ``rules``; ``type_refusal(content_type)`` says why a type is
    not taken (the site's ``[attachments]`` limits). Raises :class:`FetchRefused`."""
    deadline = time.monotonic() + rules.total_timeout
    for hop in range(rules.max_redirects + 1):
        parts = urlsplit(url)
        scheme = (parts.scheme or "").lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise FetchRefused("not an http(s) URL with a host", retryable=False)
        if parts.username or parts.password:
            raise FetchRefused("a URL with credentials", retryable=False)
        host = parts.hostname
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise FetchRefused("not a valid port", retryable=False) from None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchRefused(f"not done within {rules.total_timeout:g} s", retryable=True)
        address = _checked_address(host, port, rules, resolver)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = host if parts.port is None else f"{host}:{parts.port}"
        if ":" in host and not host.startswith("["):  # an IPv6 literal
            host_header = f"[{host}]" if parts.port is None else f"[{host}]:{parts.port}"
        pool = _pool(scheme, host, address, port, rules, remaining)
        try:
            response = pool.urlopen("GET", target, redirect=False, preload_content=False,
                                    retries=False, headers={
                                        "Host": host_header, "Accept": "*/*",
                                        "User-Agent": "helpline-adapter media fetch"})
        except Urllib3Error as exc:
            pool.close()
            raise FetchRefused(f"connection: {type(exc).__name__}", retryable=True) from None
        try:
            if response.status in REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise FetchRefused(f"HTTP {response.status} without a Location",
                                       retryable=False)
                url = urljoin(url, location)
                continue
            return _body(response, rules, type_refusal, deadline, hop)
        finally:
            response.close()  # never drained: a refused body is not read on
            pool.close()
    raise FetchRefused(f"more than {rules.max_redirects} redirects", retryable=False)


def _body(response, rules: FetchRules, type_refusal: Callable[[str | None], str | None],
          deadline: float, redirects: int) -> Fetched:
    if response.status != 200:
        retryable = response.status >= 500 or response.status in RETRYABLE_STATUSES
        raise FetchRefused(f"HTTP {response.status}", retryable=retryable)
    content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    refusal = type_refusal(content_type or None)
    if refusal:
        raise FetchRefused(refusal, retryable=False)
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > rules.max_bytes:
        raise FetchRefused(f"larger than {rules.max_bytes} bytes", retryable=False)
    received = bytearray()
    try:
        while True:
            if time.monotonic() > deadline:
                raise FetchRefused(f"not done within {rules.total_timeout:g} s", retryable=True)
            chunk = response.read1(CHUNK)  # what has arrived: the deadline is checked often
            if not chunk:
                break
            received += chunk
            if len(received) > rules.max_bytes:
                raise FetchRefused(f"larger than {rules.max_bytes} bytes", retryable=False)
    except Urllib3Error as exc:
        raise FetchRefused(f"reading: {type(exc).__name__}", retryable=True) from None
    return Fetched(content_type=content_type, body=bytes(received), redirects=redirects)
