"""`source add` and `subscription add` refuse what a feed or webhook must never reach (metadata, private,
loopback, non-http URLs) unless WATCHFLOOR_ALLOW_PRIVATE_URLS opens it; listings mask URL credentials."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from watchfloor.cli import main

HINT = "set WATCHFLOOR_ALLOW_PRIVATE_URLS="


@pytest.fixture
def wf(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The CLI on a migrated database with the SSRF guard fully on (conftest allows 127.0.0.1 by default)."""
    monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", db_url)
    monkeypatch.setenv("WATCHFLOOR_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("WATCHFLOOR_REDIS_URL", raising=False)
    monkeypatch.delenv("WATCHFLOOR_ALLOW_PRIVATE_URLS", raising=False)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


REFUSED = [
    ("http://169.254.169.254/latest/meta-data/",
     "refused: 169.254.169.254 is a link-local address (cloud metadata); "
     "set WATCHFLOOR_ALLOW_PRIVATE_URLS=169.254.169.254/32 (or 1) to allow it"),
    ("http://10.0.0.1/feed", "refused: 10.0.0.1 is a private address; " + HINT + "10.0.0.1/32"),
    ("http://127.0.0.1:6379/", "refused: 127.0.0.1 is a loopback address; " + HINT + "127.0.0.1/32"),
    ("http://[::1]:8000/rss", "refused: ::1 is a loopback address; " + HINT + "::1/128"),
    ("http://localhost:8000/rss", "refused: localhost resolves to 127.0.0.1, which is a loopback address"),
    ("file:///etc/passwd", "refused: the file: scheme is not allowed, only http and https"),
    ("not-a-url", "refused: 'not-a-url' is not a URL: give the full address, e.g. https://host/path"),
]
IDS = ["metadata", "10/8", "loopback", "[::1]", "localhost by name", "file scheme", "not a URL"]


@pytest.mark.parametrize(("url", "reason"), REFUSED, ids=IDS)
def test_subscription_add_refuses_with_the_reason_and_stores_nothing(wf, url: str, reason: str) -> None:
    result = wf("subscription", "add", url)
    assert result.exit_code == 1
    assert reason in result.output
    assert wf("subscription", "list").output.strip() == ""


@pytest.mark.parametrize(("url", "reason"), REFUSED, ids=IDS)
def test_source_add_refuses_with_the_reason_and_stores_nothing(wf, url: str, reason: str) -> None:
    result = wf("source", "add", url, "--name", "probe")
    assert result.exit_code == 1
    assert reason in result.output
    assert wf("source", "list", "--json").output.strip() == ""


def test_allow_private_urls_1_opens_every_address_but_not_other_schemes(wf, monkeypatch) -> None:
    monkeypatch.setenv("WATCHFLOOR_ALLOW_PRIVATE_URLS", "1")
    for n, (url, _) in enumerate(REFUSED[:5]):
        assert wf("source", "add", url, "--name", f"lab-{n}").exit_code == 0, url
        assert wf("subscription", "add", url).exit_code == 0, url
    assert len(wf("source", "list", "--json").output.splitlines()) == 5
    assert wf("subscription", "add", "file:///etc/passwd").exit_code == 1
    assert wf("source", "add", "not-a-url").exit_code == 1


def test_a_cidr_list_opens_only_those_networks(wf, monkeypatch) -> None:
    monkeypatch.setenv("WATCHFLOOR_ALLOW_PRIVATE_URLS", "10.20.0.0/16")
    assert wf("source", "add", "http://10.20.1.5/rss", "--name", "lab").exit_code == 0
    other = wf("source", "add", "http://10.30.1.5/rss", "--name", "other")
    assert other.exit_code == 1 and "10.30.1.5 is a private address" in other.output


def test_subscription_list_masks_credentials_unless_revealed(wf) -> None:
    url = "https://desk:s3cr3t@hooks.example.invalid/wf?token=abc123"
    assert wf("subscription", "add", url).exit_code == 0  # does not resolve today: accepted, checked on connect
    listed = wf("subscription", "list").output
    assert "https://hooks.example.invalid/wf" in listed
    assert "s3cr3t" not in listed and "abc123" not in listed and "desk" not in listed
    assert url in wf("subscription", "list", "--reveal").output

