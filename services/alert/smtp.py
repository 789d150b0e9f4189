"""One email handed to the SMTP server and what its answer means (the only aiosmtplib user).

    delivered   the server accepted the message (250 after DATA): it is the relay's from there on
    retry       any 4xx (421 service closing, 450/451 try later, greylisting, 452 no room…), a refused or
                dropped connection, a timeout, no SMTP server configured (WATCHFLOOR_SMTP_HOST unset: set it and
                restart, and what is pending goes out on its next attempt)
    gave_up     any 5xx (550 no such mailbox, 553 address refused, 535 bad credentials…), with the server's words
                as the reason; a server that does not offer STARTTLS when it is required (no clear-text fallback)
One connection per message, closed after it: an alert is rare enough, and a fresh connection never inherits a
half-broken session. The dispatcher bounds the whole exchange (`smtp_timeout_seconds`).
"""

import contextlib
import io
import time
from dataclasses import dataclass
from email import policy
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Literal

import aiosmtplib

from services.alert.webhook import DeliveryOutcome, Outcome

NOT_CONFIGURED = ("no SMTP server configured: set WATCHFLOOR_SMTP_HOST and WATCHFLOOR_SMTP_FROM for the alert "
                  "service and restart it")


WIRE = policy.SMTP.clone(max_line_length=998)
"""CRLF, headers folded only past RFC 5322's 998: Python's folder leaves two spaces where it folds before an
encoded word ("Niamey  — ISSP"), and a subject is short enough to need no fold (an encoded word may then be
longer than RFC 2047's 75 characters, which mail clients read)."""


def wire_bytes(message: EmailMessage) -> bytes:
    out = io.BytesIO()
    BytesGenerator(out, policy=WIRE).flatten(message)
    return out.getvalue()


@dataclass(frozen=True)
class SmtpConfig:
    host: str | None
    port: int | None
    security: Literal["starttls", "tls", "none"]
    username: str | None
    password: str | None
    sender: str
    timeout_s: float

    @property
    def port_in_force(self) -> int:
        """The port given, else the usual one for the security: 465 (TLS), 587 (STARTTLS), 25 (none)."""
        return self.port or {"tls": 465, "starttls": 587, "none": 25}[self.security]


def _words(message: str) -> str:
    return " ".join(message.split())[:300]


def _answer(code: int, message: str, started: float, what: str) -> DeliveryOutcome:
    reason = f"SMTP {code} {_words(message)}{what}".strip()
    latency = (time.perf_counter() - started) * 1000
    if 400 <= code < 500:
        return DeliveryOutcome(Outcome.RETRY, code, latency, reason)
    return DeliveryOutcome(Outcome.GAVE_UP, code, latency, reason)


async def deliver(config: SmtpConfig, message: EmailMessage, recipient: str) -> DeliveryOutcome:
    """Sends `message` to `recipient` (the envelope recipient; headers as given); never raises for a server's
    or network's failure."""
    started = time.perf_counter()

    def elapsed() -> float:
        return (time.perf_counter() - started) * 1000

    if not config.host:
        return DeliveryOutcome(Outcome.RETRY, None, 0.0, NOT_CONFIGURED)
    client = aiosmtplib.SMTP(hostname=config.host, port=config.port_in_force, use_tls=config.security == "tls",
                             start_tls=config.security == "starttls", timeout=config.timeout_s)
    where = f"{config.host}:{config.port_in_force}"
    accepted = False
    try:
        await client.connect()
        if config.username:
            await client.login(config.username, config.password or "")
        await client.sendmail(parseaddr(config.sender)[1], [recipient], wire_bytes(message))
        accepted = True
    except aiosmtplib.SMTPRecipientsRefused as exc:
        first = exc.recipients[0]
        return _answer(first.code, first.message, started, f" (recipient {first.recipient})")
    except aiosmtplib.SMTPAuthenticationError as exc:
        return _answer(exc.code, exc.message, started, " (login refused: check WATCHFLOOR_SMTP_USERNAME and "
                                                       "WATCHFLOOR_SMTP_PASSWORD)")
    except aiosmtplib.SMTPResponseException as exc:
        return _answer(exc.code, exc.message, started, "")
    except aiosmtplib.SMTPTimeoutError:
        return DeliveryOutcome(Outcome.RETRY, None, elapsed(), f"timed out talking to the SMTP server {where}")
    except aiosmtplib.SMTPNotSupported as exc:
        return DeliveryOutcome(Outcome.GAVE_UP, None, elapsed(),
                               f"SMTP server {where}: {exc} (WATCHFLOOR_SMTP_SECURITY={config.security})")
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, OSError) as exc:
        return DeliveryOutcome(Outcome.RETRY, None, elapsed(), f"cannot reach the SMTP server {where}: {exc}")
    except aiosmtplib.SMTPException as exc:
        if config.security == "starttls" and "STARTTLS" in str(exc):
            # aiosmtplib raises a bare SMTPException for it: refusing to send in clear is the setting's point
            return DeliveryOutcome(Outcome.GAVE_UP, None, elapsed(),
                                   f"SMTP server {where} does not offer STARTTLS (WATCHFLOOR_SMTP_SECURITY=starttls);"
                                   " use tls, or none only for a trusted relay")
        return DeliveryOutcome(Outcome.RETRY, None, elapsed(), f"SMTP: {type(exc).__name__}: {exc}")
    finally:
        if accepted and client.is_connected:
            # After the 250 that ends DATA the message is the relay's: a failed QUIT changes nothing.
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
        if client.is_connected:
            client.close()  # after a failure, no polite QUIT: it could wait out another timeout
    assert accepted
    return DeliveryOutcome(Outcome.DELIVERED, 250, elapsed())
