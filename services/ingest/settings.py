"""Ingest settings (`WATCHFLOOR_*`): how often to look for due feeds, and the limits one fetch must respect."""

from pydantic import Field, field_validator

from shared.settings import CommonSettings

PLATFORM_SPACING: dict[str, float] = {"t.me": 3.0, "api.gdeltproject.org": 5.0}
"""Seconds between requests to platforms known to throttle pollers; `WATCHFLOOR_HOST_SPACING` overrides."""


class IngestSettings(CommonSettings):
    poll_tick_seconds: float = Field(1.0, gt=0, description="how often the poller looks for due sources")
    fetch_timeout_seconds: float = Field(20.0, gt=0, description="whole fetch, connect to last byte")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="a bigger feed body is refused")
    max_redirects: int = Field(5, ge=0)
    max_entries_per_poll: int = Field(
        500, ge=1, description="the newest this many entries of a feed are read; the source's health warns when "
        "more were dropped"
    )
    filter_max_chars: int = Field(
        20_000, ge=100, description="a source's keep/block patterns read a post's title and this many characters of"
        " its text, what classify reads (WATCHFLOOR_CLASSIFY_MAX_CHARS): a 1 MB post costs what its head costs"
    )
    min_interval_seconds: int = Field(10, ge=1, description="shortest poll interval `source add` accepts")
    default_interval_seconds: int = Field(300, ge=10, description="poll interval of a new source")
    poll_concurrency: int = Field(8, ge=1, description="sources fetched at the same time")
    per_host_concurrency: int = Field(2, ge=1, description="fetches at the same time to one host")
    backoff_cap_seconds: int = Field(6 * 3600, ge=60, description="longest wait after repeated failures")
    requeue_after_seconds: float = Field(
        60.0, ge=0, description="a stored post not on wf:posts after this long is published again (outbox);"
        " longer than a whole fetch, so a poll still publishing is not overtaken"
    )
    telegram_base_url: str = Field(
        "https://t.me", description="where Telegram's public channel previews (/s/CHANNEL) are read; tests and"
        " mirrors point it elsewhere (it passes the same SSRF guard as every fetch)"
    )
    telegram_backfill_messages: int = Field(
        100, ge=0, le=5000, description="messages read back (?before=) when a Telegram channel is first polled"
    )
    mastodon_base_url: str | None = Field(
        None, description="read every Mastodon instance's public API from this URL instead of https://INSTANCE"
        " (tests, a mirror); the SSRF guard applies"
    )
    mastodon_backfill_statuses: int = Field(
        40, ge=1, le=40, description="statuses read on a Mastodon source's first poll (the API's page limit is 40)"
    )
    bluesky_base_url: str = Field(
        "https://public.api.bsky.app", description="the Bluesky AppView author feeds are read from"
        " (/xrpc/app.bsky.feed.getAuthorFeed); tests and mirrors point it elsewhere (the SSRF guard applies)"
    )
    bluesky_backfill_posts: int = Field(
        30, ge=1, le=100, description="posts asked for per Bluesky poll, the newest first (the API's limit is 100)"
    )
    gdelt_base_url: str = Field(
        "https://api.gdeltproject.org", description="where GDELT DOC 2.0 queries (/api/v2/doc/doc) are sent;"
        " tests and mirrors point it elsewhere (the SSRF guard applies)"
    )
    gdelt_max_records: int = Field(
        75, ge=1, le=250, description="articles asked for per GDELT poll, the newest first (the API's limit is 250)"
    )
    host_min_spacing_seconds: float = Field(
        1.0, ge=0, description="least time between two requests to one host, across every ingest process (Redis)"
    )
    host_spacing: dict[str, float] = Field(
        default_factory=dict, description='per-host spacing over the built-in ones, JSON: {"t.me": 3, '
        '"api.gdeltproject.org": 5}; a host covers its subdomains; 0 turns spacing off for that host'
    )
    host_max_wait_seconds: float = Field(
        10.0, ge=0, description="a poll waits this long at most for its host's turn; further off, it is deferred"
    )
    user_agent: str = "watchfloor/0.1 (OSINT alerting; feed poller)"
    source_watch_interval_seconds: float = Field(
        60.0, gt=0, description="how often every source is checked for silence or failure (a post or a poll "
        "resolves at once)"
    )
    silent_min_posts: int = Field(8, ge=2, description="posts a source's rhythm is learned from before its "
                                  "silence can alert")
    silent_factor: float = Field(
        2.0, gt=0, description="a source is silent when quiet this many times its typical longest daily gap "
        "between posts"
    )
    silent_floor_seconds: float = Field(3600.0, ge=0, description="a quiet spell shorter than this is never a "
                                        "silence, however regular the source")
    silent_history_days: int = Field(14, ge=1, le=366, description="days of a source's longest gaps kept to "
                                     "learn its rhythm (the last days it posted)")
    failing_after_seconds: float = Field(3 * 3600.0, gt=0, description="a source whose polls have failed this "
                                         "long raises source.failing")

    @field_validator("host_spacing")
    @classmethod
    def _spacing_not_negative(cls, value: dict[str, float]) -> dict[str, float]:
        for host, seconds in value.items():
            if seconds < 0:
                raise ValueError(f"WATCHFLOOR_HOST_SPACING: {host!r} has {seconds} s; use 0 or more")
        return value

    @property
    def spacing_per_host(self) -> dict[str, float]:
        """The built-in platform spacings with `host_spacing` over them."""
        return {**PLATFORM_SPACING, **self.host_spacing}
