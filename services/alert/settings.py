"""Settings of the alert service (`WATCHFLOOR_*`): incident clustering, corroboration, noise control, webhook
and email delivery, rule reloading."""

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from shared.settings import CommonSettings

SVIX_SCHEDULE_S = [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
"""Delays before retries 1..7 (Svix): 8 attempts over about 27.6 h."""


class AlertSettings(CommonSettings):
    incident_radius_km: float = Field(25.0, gt=0, description="reports this close may be one incident")
    incident_window_seconds: float = Field(6 * 3600, gt=0, description="reports this close in time may be one incident")
    webhook_timeout_seconds: float = Field(15.0, gt=0, description="per attempt (Standard Webhooks: 15-30 s)")
    retry_schedule_seconds: list[float] = Field(
        default_factory=lambda: list(SVIX_SCHEDULE_S),
        description="delay before each retry; one attempt more than entries, then the notification fails",
    )
    retry_jitter: float = Field(0.2, ge=0, lt=1, description="±fraction applied to every retry delay")
    retry_after_cap_seconds: float = Field(
        86_400.0, gt=0, description="a receiver's Retry-After is honoured up to this"
    )
    dispatch_concurrency: int = Field(100, ge=1, description="webhooks in flight at once (one pass of the sender)")
    dispatch_poll_seconds: float = Field(
        1.0, gt=0, description="how often the sender looks for notifications queued by other processes"
    )
    rules_reload_seconds: float = Field(1.0, ge=0, description="rules changed by another process apply within this")
    sse_heartbeat_seconds: float = Field(15.0, gt=0, description="comment line sent to idle console streams")
    max_event_age_seconds: float = Field(
        3 * 86400, gt=0,
        description="a report published longer ago than this opens no alert (a new feed's backlog pages no one); "
                    "it still joins the event log and its incident",
    )
    official_sources: list[str] = Field(
        default_factory=list,
        description="source ids of official or known-wire sources: one of them in an incident makes it confirmed",
    )
    copy_similarity: float = Field(
        0.8, gt=0, le=1,
        description="a report whose text is this similar (estimated Jaccard of word shingles) to an earlier report "
                    "of its incident is a copy of it: a forward, repost or syndicated copy adds no independent source",
    )
    copy_max_chars: int = Field(1_000_000, gt=0, description="characters of a report's text signed to find copies")
    incident_resolve_after_seconds: float = Field(
        24 * 3600, gt=0, description="an incident with no new report for this long is resolved (sent once)"
    )
    repage_after_seconds: float = Field(
        15 * 60, gt=0, description="an unacknowledged severity III alert is paged again this often"
    )
    sweep_interval_seconds: float = Field(
        10.0, gt=0, description="how often resolution, re-pages and ended silences are looked for"
    )
    smtp_host: str | None = Field(
        None, description="the SMTP server email alerts and digests are handed to; unset: email notifications wait "
                          "(retried) with the reason 'no SMTP server configured'"
    )
    smtp_port: int | None = Field(None, ge=1, le=65535, description="default 587 (starttls), 465 (tls), 25 (none)")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls (required, not opportunistic), tls (implicit, port 465) or none (a trusted "
                                "relay on the same host or network only)"
    )
    smtp_username: str | None = Field(None, description="login, if the server wants one")
    smtp_password: SecretStr | None = Field(None, description="with smtp_username")
    smtp_from: str | None = Field(
        None, description="the From of every email, e.g. 'Watchfloor <alerts@example.org>'; required with smtp_host"
    )
    smtp_timeout_seconds: float = Field(30.0, gt=0, description="one email's whole exchange with the server")
    public_url: str | None = Field(
        None, description="the console's address as officers reach it (https://watch.example.org): emails link to it"
    )
    digest_section_limit: int = Field(
        20, ge=1, description="entries listed per shift digest section, then 'and N more'"
    )
    digest_max_alerts: int = Field(2000, ge=10, description="alerts one shift digest reads at most (bounded query)")

    @model_validator(mode="after")
    def _smtp_from_with_host(self) -> "AlertSettings":
        if self.smtp_host and not self.smtp_from:
            raise ValueError("WATCHFLOOR_SMTP_FROM is required when WATCHFLOOR_SMTP_HOST is set, e.g. "
                             "'Watchfloor <alerts@example.org>'")
        return self
