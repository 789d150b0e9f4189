"""Which URLs watchfloor may fetch (feeds) or POST to (webhooks): the SSRF guard both services use.

A URL entered by an operator, a redirect a feed answers and an address DNS returns at connect time are all
untrusted: without this guard a feed URL reaches the cloud metadata service, the Redis port or an
intranet page, and the page becomes a post. Checked three times, by the same policy:

    on add          `check_url`: http(s) only, and the host (resolved now) must be a public address
    every hop       `check_url_syntax` + literal-IP check on each redirect target, before it is requested
    at connect      `GuardedBackend.connect_tcp`: resolves the host, refuses if ANY address is refused,
                    then connects to the checked address itself (no second lookup: DNS rebinding)

`WATCHFLOOR_ALLOW_PRIVATE_URLS` opens it: `1` allows every address; a comma-separated list of CIDRs allows
those (`127.0.0.1/32` for tests, `10.20.0.0/16` for a lab feed). Requests go direct: HTTP(S)_PROXY is not
used by the guarded clients, since a proxy would resolve and connect where the guard cannot see.
"""

import asyncio
import ipaddress
import socket
import ssl
import typing
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx

from shared.errors import ReasonError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SETTING = "WATCHFLOOR_ALLOW_PRIVATE_URLS"
SCHEMES = ("http", "https")
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 carrier-grade NAT: not global
METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


class UrlRefused(ReasonError):
    """The URL may not be fetched. `detail` says why ("127.0.0.2 is a loopback address"); `reason` adds what
    to do about it; `address` is the refused address, when there is one."""

    def __init__(self, detail: str, address: IPAddress | None = None) -> None:
        hint = f"; set {SETTING}={_cidr(address)} (or 1) to allow it" if address is not None else ""
        super().__init__(f"refused: {detail}{hint}")
        self.detail, self.address = detail, address


def _cidr(address: IPAddress) -> str:
    return f"{address}/{address.max_prefixlen}"


@dataclass(frozen=True)
class UrlPolicy:
    """Which non-public addresses are allowed anyway. The default allows none."""

    allow_all: bool = False
    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, setting: str | None) -> "UrlPolicy":
        """`""`/None: guard on; `"1"`: everything allowed; else CIDRs separated by commas. Raises ValueError
        naming the variable and the bad entry."""
        text = (setting or "").strip()
        if not text:
            return cls()
        if text == "1":
            return cls(allow_all=True)
        networks: list[IPNetwork] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError as exc:
                raise ValueError(f"{SETTING}: {part!r} is not a CIDR such as 10.20.0.0/16; give 1 to allow "
                                 f"every address, or a comma-separated list of CIDRs") from exc
        return cls(allowed=tuple(networks))

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` may not be connected to ("is a loopback address"), or None when it may."""
        if self.allow_all or any(address in net for net in self.allowed if net.version == address.version):
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            inner = self.refusal(address.ipv4_mapped)
            return f"(IPv4-mapped {address.ipv4_mapped}) {inner}" if inner else None
        return _kind(address)


def _kind(address: IPAddress) -> str | None:
    """The class of a non-public address, in words; None for a global one."""
    if address.is_unspecified:
        return "is the unspecified address"
    if address.is_loopback:
        return "is a loopback address"
    if address.is_link_local:
        return "is a link-local address" + (" (cloud metadata)" if address in METADATA else "")
    if address in METADATA:
        return "is a cloud metadata address"
    if address.is_multicast:
        return "is a multicast address"
    if address in SHARED_ADDRESS_SPACE:
        return "is in the shared address space 100.64.0.0/10 (carrier-grade NAT)"
    if address.is_reserved:  # before private: Python counts 240.0.0.0/4 as both
        return "is a reserved address"
    if address.is_private:
        return "is a private address"
    if not address.is_global:
        return "is not a public address"
    return None


def check_address(address: IPAddress, policy: UrlPolicy, host: str | None = None) -> None:
    """Raises UrlRefused when `address` (which `host` resolved to, if given) is not allowed."""
    why = policy.refusal(address)
    if why is not None:
        what = f"{host} resolves to {address}, which" if host and host != str(address) else str(address)
        raise UrlRefused(f"{what} {why}", address)


def shown(url: str) -> str:
    """The URL as a reason may show it: no credentials, no query string."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, netloc, parts.path, "", "")) or url
    except ValueError:
        return url


def check_url_syntax(url: str) -> tuple[str, int]:
    """The host and port of an absolute http(s) URL, or UrlRefused saying what is wrong with it. A literal IP
    host is returned as written (brackets removed)."""
    text = url.strip()
    if not text or any(c.isspace() or ord(c) < 32 for c in text):
        raise UrlRefused(f"{shown(url)!r} is not a URL: it is empty or has spaces or control characters in it")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"{shown(text)!r} is not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower() if "://" in text else ""  # "localhost:8000/rss" has no scheme, not "localhost"
    if scheme and scheme not in SCHEMES:
        raise UrlRefused(f"the {scheme}: scheme is not allowed, only http and https")
    if not scheme or not parts.netloc:
        raise UrlRefused(f"{shown(text)!r} is not a URL: give the full address, e.g. https://host/path")
    if not parts.hostname:
        raise UrlRefused(f"{shown(text)} has no host")
    return parts.hostname, port or (443 if scheme == "https" else 80)


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone id ("fe80::1%eth0") is not the address
    except ValueError:
        return None


async def resolve_allowed(host: str, port: int, policy: UrlPolicy) -> list[str]:
    """Every address `host` resolves to, if ALL are allowed (one refused address refuses the host: a
    round-robin of public and private answers is a rebinding attack). Raises UrlRefused, or OSError
    (socket.gaierror) when the name does not resolve."""
    ip = literal_ip(host)
    if ip is not None:
        check_address(ip, policy)
        return [str(ip)]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        check_address(address, policy, host)
        if str(address) not in addresses:
            addresses.append(str(address))
    return addresses


async def check_url(url: str, policy: UrlPolicy) -> str:
    """The add-time check: the stripped URL if it is an http(s) URL whose host resolves only to allowed
    addresses. A host that does not resolve today is accepted (the guard runs again on every connect).
    Raises UrlRefused with the reason."""
    host, port = check_url_syntax(url)
    try:
        await resolve_allowed(host, port, policy)
    except OSError:
        pass
    return url.strip()


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the guard at the socket: resolves the host itself, checks every
    address, then connects to a checked address (TLS still verifies and sends SNI for the host name)."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve_allowed(host, port, self.policy)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"could not resolve host {host}: {exc}") from exc
        failure: Exception | None = None
        for address in addresses:  # in getaddrinfo's order of preference
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # resolve_allowed never returns an empty list
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UrlRefused(f"unix socket {path} is not an http(s) address")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a GuardedBackend: every new connection, first or redirected, is checked."""

    def __init__(self, policy: UrlPolicy, *, verify: ssl.SSLContext | bool = True,
                 limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's defaults
        super().__init__(verify=verify, limits=limits)
        # Rebuilt with our backend: AsyncHTTPTransport exposes no `network_backend`, but uses only `_pool`.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )
