"""The SSRF guard's policy: which addresses are refused and how the refusal reads, and the connect-time check
on the resolved address (a real server on 127.0.0.1 reached by name)."""

import ipaddress

import httpx
import pytest

from shared.settings import CommonSettings
from shared.urlguard import GuardedTransport, UrlPolicy, UrlRefused, check_url
from tests.servers import FeedServer

STRICT = UrlPolicy()


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("169.254.169.254", "is a link-local address (cloud metadata)"),
        ("fd00:ec2::254", "is a cloud metadata address"),
        ("10.0.0.1", "is a private address"),
        ("172.16.5.4", "is a private address"),
        ("192.168.1.1", "is a private address"),
        ("fc00::1", "is a private address"),
        ("127.0.0.1", "is a loopback address"),
        ("127.0.0.2", "is a loopback address"),
        ("::1", "is a loopback address"),
        ("fe80::1", "is a link-local address"),
        ("224.0.0.1", "is a multicast address"),
        ("ff02::1", "is a multicast address"),
        ("0.0.0.0", "is the unspecified address"),
        ("::", "is the unspecified address"),
        ("100.64.0.1", "is in the shared address space 100.64.0.0/10 (carrier-grade NAT)"),
        ("240.0.0.1", "is a reserved address"),
        ("::ffff:169.254.169.254", "(IPv4-mapped 169.254.169.254) is a link-local address (cloud metadata)"),
        ("::ffff:10.1.2.3", "(IPv4-mapped 10.1.2.3) is a private address"),
        ("93.184.215.14", None),
        ("2606:4700::6810:84e5", None),
    ],
    ids=lambda v: str(v),
)
def test_non_public_addresses_are_refused_with_their_class(address: str, why: str | None) -> None:
    assert STRICT.refusal(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize(
    ("setting", "address", "allowed"),
    [
        ("", "127.0.0.1", False),
        ("1", "169.254.169.254", True),
        ("1", "::1", True),
        ("127.0.0.1/32", "127.0.0.1", True),
        ("127.0.0.1/32", "127.0.0.2", False),
        ("127.0.0.1/32", "::ffff:127.0.0.1", True),
        ("10.20.0.0/16, 127.0.0.0/8", "10.20.3.4", True),
        ("10.20.0.0/16, 127.0.0.0/8", "10.21.0.1", False),
        ("fc00::/7", "fd12::1", True),
    ],
    ids=["unset: guard on", "1 allows metadata", "1 allows ::1", "CIDR allows its address",
         "CIDR allows only its address", "mapped IPv6 of an allowed IPv4", "list: first CIDR", "list: neither",
         "IPv6 CIDR"],
)
def test_allow_private_urls_opens_what_it_names(setting: str, address: str, allowed: bool) -> None:
    policy = CommonSettings(allow_private_urls=setting).url_policy
    assert (policy.refusal(ipaddress.ip_address(address)) is None) is allowed


def test_a_bad_cidr_fails_at_startup_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="WATCHFLOOR_ALLOW_PRIVATE_URLS: 'intranet' is not a CIDR"):
        CommonSettings(allow_private_urls="10.0.0.0/8,intranet")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("not-a-url", "refused: 'not-a-url' is not a URL: give the full address, e.g. https://host/path"),
        ("file:///etc/passwd", "refused: the file: scheme is not allowed, only http and https"),
        ("gopher://127.0.0.1:6379/_INFO", "the gopher: scheme is not allowed"),
        ("http://", "is not a URL"),
        ("http://exa mple.org/", "has spaces or control characters"),
        ("http://[::1]:8080/", "refused: ::1 is a loopback address; set WATCHFLOOR_ALLOW_PRIVATE_URLS=::1/128"),
        ("http://localhost:9/", "refused: localhost resolves to 127.0.0.1, which is a loopback address; "
                                "set WATCHFLOOR_ALLOW_PRIVATE_URLS=127.0.0.1/32 (or 1) to allow it"),
        ("http://2130706433/", "resolves to 127.0.0.1, which is a loopback address"),  # 127.0.0.1 as one number
    ],
    ids=["no scheme", "file", "gopher", "no host", "space", "IPv6 loopback", "name for loopback",
         "decimal IPv4"],
)
async def test_check_url_refuses_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        await check_url(url, STRICT)
    assert reason in refused.value.reason


async def test_a_host_that_does_not_resolve_yet_is_accepted_on_add() -> None:
    assert await check_url(" https://feeds.example.invalid/rss ", STRICT) == "https://feeds.example.invalid/rss"


async def test_the_transport_checks_the_resolved_address_at_connect(feed_server: FeedServer) -> None:
    """A name is not checked before the request, only where it is resolved: the same lookup the socket uses."""
    feed_server.route("/rss", b"<rss/>")
    async with httpx.AsyncClient(transport=GuardedTransport(STRICT)) as client:
        with pytest.raises(UrlRefused, match=r"localhost resolves to 127\.0\.0\.1, which is a loopback address"):
            await client.get(f"http://localhost:{feed_server.port}/rss")
    assert feed_server.hits("/rss") == []
    async with httpx.AsyncClient(transport=GuardedTransport(UrlPolicy.parse("127.0.0.1/32"))) as client:
        assert (await client.get(f"http://localhost:{feed_server.port}/rss")).content == b"<rss/>"
