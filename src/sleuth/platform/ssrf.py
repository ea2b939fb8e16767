"""Outbound HTTP that cannot be turned against the server's own network (SSRF-safe).

Every hop (the URL and each redirect) is resolved first and refused when any address is
not a global unicast address (private, loopback, link-local, CGNAT, site-local, multicast,
reserved, IPv4 embedded in 6to4/NAT64/Teredo) or a cloud metadata name. Redirects are
followed by hand (at most ``max_redirects``) and re-checked. The connection then goes to
the checked address itself (``pin``: no second DNS lookup, so DNS rebinding cannot swap
it; https keeps SNI and certificate checks on the name), and the peer address is checked
once more after connecting.
Hosts listed in ``allow_hosts`` skip the address check (tests, on-prem receivers).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from sleuth.platform.errors import SleuthError

METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}


class BlockedURL(SleuthError):
    def __init__(self, message: str, field: str = "url") -> None:
        super().__init__(400, "blocked_url", message, field)


@dataclass(frozen=True)
class Fetched:
    content: bytes
    content_type: str
    url: str


def _is_blocked_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Anything that is not a global unicast address, including IPv4 embedded in IPv6."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and _is_blocked_ip(embedded):
            return True
        if ip.is_site_local:
            return True
        if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64 of an IPv4 address
            return _is_blocked_ip(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return bool(not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback)


def _allowed(host: str, allow_hosts: set[str]) -> bool:
    return host.lower() in allow_hosts


def check_url(url: str, allow_hosts: set[str] | None = None, field: str = "url") -> list[str]:
    """Validate scheme/host and resolve; returns the resolved addresses. Raises BlockedURL."""
    allow_hosts = {h.lower() for h in (allow_hosts or set())}
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise BlockedURL(f"Invalid URL: {e}", field) from e
    if parts.scheme not in ("http", "https"):
        raise BlockedURL("Only http and https URLs are allowed", field)
    host = parts.hostname
    if not host:
        raise BlockedURL("URL has no host", field)
    if parts.username or parts.password:
        raise BlockedURL("URLs with credentials are not allowed", field)
    if _allowed(host, allow_hosts):
        return []
    if host.lower() in METADATA_HOSTS:
        raise BlockedURL(f"Host {host} is an internal metadata address", field)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as e:
        raise BlockedURL("Invalid port", field) from e
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise BlockedURL(f"Host {host} does not resolve", field) from e
    addrs = sorted({str(i[4][0]) for i in infos})
    for a in addrs:
        if _is_blocked_ip(ipaddress.ip_address(a.split("%")[0])):
            raise BlockedURL(
                f"Host {host} resolves to a private or internal address; refused (an operator can allow it with "
                f"SLEUTH_URL_ALLOW_PRIVATE={host})",
                field,
            )
    return addrs


def _peer_ok(resp: httpx.Response, host: str, allow_hosts: set[str]) -> None:
    if _allowed(host, allow_hosts):
        return
    stream = resp.extensions.get("network_stream")
    if stream is None:
        return
    addr = stream.get_extra_info("server_addr")
    if addr and _is_blocked_ip(ipaddress.ip_address(str(addr[0]).split("%")[0])):
        raise BlockedURL(
            f"Connection to {host} reached an internal address; refused (an operator can allow it with "
            f"SLEUTH_URL_ALLOW_PRIVATE={host})"
        )


def pin(url: str, addrs: list[str]) -> tuple[str, dict[str, str], dict[str, str]]:
    """Rewrite ``url`` to connect to the checked address itself (no second DNS lookup).

    Returns (url with the IP literal, headers with the original ``Host``, request extensions with
    the TLS ``sni_hostname`` so certificates are still verified against the name). Hosts without
    checked addresses (the allow-list) are left alone.
    """
    if not addrs:
        return url, {}, {}
    parts = urlsplit(url)
    ip = addrs[0].split("%")[0]
    netloc = f"[{ip}]" if ":" in ip else ip
    if parts.port:
        netloc += f":{parts.port}"
    host_header = parts.netloc.rsplit("@", 1)[-1]
    ext = {"sni_hostname": parts.hostname or ""} if parts.scheme == "https" else {}
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), {"Host": host_header}, ext


def fetch(
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    allow_hosts: set[str] | None = None,
    max_redirects: int = 3,
    field: str = "url",
) -> Fetched:
    """GET a URL safely, streaming with a size cap and an overall timeout."""
    allow = {h.lower() for h in (allow_hosts or set())}
    current = url
    with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False) as client:
        for _hop in range(max_redirects + 1):
            addrs = check_url(current, allow, field)
            host = urlsplit(current).hostname or ""
            target, pin_headers, ext = pin(current, addrs)
            try:
                with client.stream(
                    "GET", target, headers={"User-Agent": "sleuth/0.1", **pin_headers}, extensions=ext
                ) as resp:
                    _peer_ok(resp, host, allow)
                    if resp.status_code in (301, 302, 303, 307, 308):
                        loc = resp.headers.get("location")
                        if not loc:
                            raise SleuthError(400, "fetch_failed", "Redirect without a Location header", field)
                        current = urljoin(current, loc)
                        continue
                    if resp.status_code >= 400:
                        raise SleuthError(
                            400, "fetch_failed", f"Fetching the URL returned HTTP {resp.status_code}", field
                        )
                    declared = resp.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise SleuthError(
                            413,
                            "payload_too_large",
                            f"The URL's content exceeds the {max_bytes / 1e6:g} MB limit",
                            field,
                        )
                    buf = bytearray()
                    for chunk in resp.iter_bytes():
                        buf.extend(chunk)
                        if len(buf) > max_bytes:
                            raise SleuthError(
                                413,
                                "payload_too_large",
                                f"The URL's content exceeds the {max_bytes / 1e6:g} MB limit",
                                field,
                            )
                    return Fetched(bytes(buf), resp.headers.get("content-type", ""), current)
            except httpx.TimeoutException as e:
                raise SleuthError(400, "fetch_failed", f"Fetching the URL timed out after {timeout:g} s", field) from e
            except httpx.HTTPError as e:
                raise SleuthError(400, "fetch_failed", f"Fetching the URL failed: {type(e).__name__}", field) from e
    raise SleuthError(400, "fetch_failed", f"Too many redirects (more than {max_redirects})", field)


def post_json(
    url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_hosts: set[str] | None = None
) -> int:
    """POST a callback (no redirects followed). Returns the status code; raises on network errors."""
    allow = {h.lower() for h in (allow_hosts or set())}
    addrs = check_url(url, allow, "callback_url")
    host = urlsplit(url).hostname or ""
    target, pin_headers, ext = pin(url, addrs)
    all_headers = {"Content-Type": "application/json", **headers, **pin_headers}
    with (
        httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False) as client,
        client.stream("POST", target, content=body, headers=all_headers, extensions=ext) as resp,
    ):
        _peer_ok(resp, host, allow)
        return resp.status_code


def allow_hosts_from(setting: str) -> set[str]:
    return {h.strip().lower() for h in setting.split(",") if h.strip()}
