"""Settings every service shares, from `WATCHFLOOR_*` environment variables (pydantic-settings).

Defaults run embedded mode: SQLite under `./var`, an embedded Redis unless `WATCHFLOOR_REDIS_URL` is set.
Built in `main()` or a test and passed down; never a module-level instance.
"""

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from shared.urlguard import UrlPolicy


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATCHFLOOR_", extra="ignore")

    data_dir: Path = Field(Path("var"), description="embedded SQLite and Redis files live here")
    database_url: str | None = Field(
        None, description="SQLAlchemy async URL; default sqlite+aiosqlite under data_dir"
    )
    redis_url: str | None = Field(None, description="redis:// or unix:// URL; default: embedded Redis")
    log_format: Literal["auto", "console", "json"] = Field(
        "auto", description="console on a terminal, one JSON object a line otherwise"
    )
    log_level: str = Field("INFO", description="DEBUG shows one line per stream message handled")
    consumer_name: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="this process's name in the consumer groups; unique per process",
    )
    max_deliveries: int = Field(5, ge=1, description="a message failing this many times is parked")
    claim_idle_ms: int = Field(30_000, ge=10, description="pending this long, a message is reclaimed")
    batch_size: int = Field(100, ge=1, le=1000, description="stream entries a stage reads, handles and commits "
                            "at once (classify); a failing one is then retried alone")
    batch_linger_ms: int = Field(50, ge=0, le=1000, description="after a batch smaller than batch_size, a stage "
                                 "waits this long before reading again, so that the next batch is larger: "
                                 "a batch's fixed cost is shared by more messages (0: read again at once)")
    max_request_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="HTTP request bodies over this get 413 before they are read"
    )
    replay_window_seconds: float = Field(
        3600.0, gt=0, description="when Redis comes back empty, what each stage published this far back is sent again"
    )
    trim_interval_seconds: float = Field(
        60.0, gt=0, description="how often streams are trimmed of entries every consumer group has acked"
    )
    allow_private_urls: str = Field(
        "", description="feeds and webhooks may reach non-public addresses: 1 for all, or a comma-separated "
        "list of CIDRs (e.g. 10.20.0.0/16); empty: only public addresses (SSRF guard)"
    )

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value.split(":///", 1)[1]
        return value

    @field_validator("allow_private_urls")
    @classmethod
    def _url_policy(cls, value: str) -> str:
        from shared.urlguard import UrlPolicy  # here, not at the top: it imports httpx, which `--help` need not

        UrlPolicy.parse(value)  # a bad CIDR fails startup, naming the variable
        return value.strip()

    @property
    def url_policy(self) -> "UrlPolicy":
        """The SSRF guard's policy (shared/urlguard.py) from WATCHFLOOR_ALLOW_PRIVATE_URLS."""
        from shared.urlguard import UrlPolicy

        return UrlPolicy.parse(self.allow_private_urls)

    @property
    def db_url(self) -> str:
        """The database URL in force: the configured one, or SQLite under data_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'watchfloor.db').resolve()}"

    @property
    def embedded_redis_socket(self) -> Path:
        return (self.data_dir / "redis.sock").resolve()

    def redacted(self) -> dict[str, object]:
        """Effective values for `watchfloor config show`, passwords in URLs masked."""
        out: dict[str, object] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            out[name] = str(value) if isinstance(value, Path) else _mask_password(value)
        out["db_url (in force)"] = _mask_password(self.db_url)
        return out


def _mask_password(value: object) -> object:
    """`scheme://user:secret@host` -> `scheme://user:***@host`; anything else unchanged."""
    if isinstance(value, SecretStr):
        return "***"
    if not (isinstance(value, str) and "://" in value and "@" in value):
        return value
    scheme, rest = value.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" not in creds:
        return value
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
