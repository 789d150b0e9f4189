"""Which channel a subscription's URL names, and the checks of what only an email subscription has (pure).

    https://hooks.example.org/wf   webhook   signed POST (webhook.py); the SSRF guard applies
    mailto:ops@example.org         email     one message per alert version, and shift digests (smtp.py)

An address is checked strictly, without a DNS lookup: one plain `local@domain` (dot-atom local part of ASCII
letters, digits and !#$%&'*+/=?^_`{|}~- ; a domain of at least two labels, internationalised names allowed as
IDNA). Quoted local parts, IP literals, several recipients and `?subject=` headers are refused with a reason: a
watch officer's address never needs them, and a typo should be caught when the subscription is added, not at
the first car bomb.
"""

import re
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.errors import ReasonError

WEBHOOK, EMAIL = "webhook", "email"
CHANNELS = (WEBHOOK, EMAIL)
MAILTO = "mailto:"
MAX_DIGEST_TIMES = 24

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_CLOCK = re.compile(r"\d{2}:\d{2}")


class ChannelError(ReasonError, ValueError):
    """A subscription's address or email settings that cannot be used; `reason` says what to give instead."""


def channel_of(url: str) -> str:
    """`email` for a mailto: URL, else `webhook` (whose URL webhook checks apply)."""
    return EMAIL if url.strip().lower().startswith(MAILTO) else WEBHOOK


def address_of(url: str) -> str:
    """The recipient of a mailto: URL as stored ("mailto:ops@example.org" -> "ops@example.org")."""
    return url.strip()[len(MAILTO):]


def check_mailto(url: str) -> str:
    """A mailto: URL with one checked address, normalised (`mailto:` lower case, domain lower case, IDNA)."""
    url = url.strip()
    if not url.lower().startswith(MAILTO):
        raise ChannelError(f"{url!r} is not a mailto: URL; give mailto:ops@example.org")
    return MAILTO + check_address(url[len(MAILTO):])


def check_address(address: str) -> str:
    """One plain email address, its domain lower-cased and IDNA-encoded; raises ChannelError with why not."""
    shown = address
    if not address:
        raise ChannelError("no address after mailto:; give mailto:ops@example.org")
    if "?" in address or "," in address or ";" in address:
        raise ChannelError(f"{shown!r}: give exactly one address, without ?subject= or other headers "
                           "(one subscription per recipient)")
    if "%" in address:
        raise ChannelError(f"{shown!r}: percent-encoded addresses are not accepted; write the address as is")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ChannelError(f"{shown!r} is not an email address like ops@example.org")
    if local.startswith('"'):
        raise ChannelError(f"{shown!r}: quoted local parts are not accepted")
    if not local.isascii():
        raise ChannelError(f"{shown!r}: the part before @ must be ASCII (internationalised mailboxes need "
                           "SMTPUTF8, which many relays lack)")
    if len(local) > 64 or not _LOCAL.fullmatch(local):
        raise ChannelError(f"{shown!r}: the part before @ may hold letters, digits, dots (not first, last or "
                           "doubled) and !#$%&'*+/=?^_`{|}~- only, 64 characters at most")
    if domain.startswith("["):
        raise ChannelError(f"{shown!r}: an IP address as the domain is not accepted; give the mail domain")
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ChannelError(f"{shown!r}: {domain!r} is not a valid domain name") from exc
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise ChannelError(f"{shown!r}: {domain!r} is not a mail domain like example.org")
    checked = f"{local}@{ascii_domain}"
    if len(ascii_domain) > 253 or len(checked) > 254:
        raise ChannelError(f"{shown!r} is longer than an email address may be (254 characters)")
    return checked


def check_tz(tz: str | None) -> str | None:
    """An IANA time zone name (Africa/Niamey), or None."""
    if tz is None:
        return None
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ChannelError(f"unknown time zone {tz!r}: give an IANA name such as Africa/Niamey or UTC") from exc
    return tz


def check_digest(times: list[str] | None, skip_empty: bool = False) -> dict[str, Any] | None:
    """`{"times": ["06:00", "18:00"], "skip_empty": false}` from local shift start times (sorted, distinct), or
    None for no digest."""
    if times is None:
        return None
    cleaned = sorted({t.strip() for t in times if t.strip()})
    if not cleaned:
        raise ChannelError("digest: give at least one shift start time, e.g. 06:00,18:00")
    if len(cleaned) > MAX_DIGEST_TIMES:
        raise ChannelError(f"digest: at most {MAX_DIGEST_TIMES} times a day")
    for value in cleaned:
        try:
            if not _CLOCK.fullmatch(value):
                raise ValueError(value)
            time.fromisoformat(value)
        except ValueError as exc:
            raise ChannelError(f"digest: {value!r} is not a time like 06:00") from exc
    return {"times": cleaned, "skip_empty": bool(skip_empty)}


def digest_times(digest: dict[str, Any] | None) -> list[time]:
    """The stored digest's shift start times (none: no digest)."""
    return [time.fromisoformat(t) for t in (digest or {}).get("times") or []]
