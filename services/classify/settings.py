"""Settings of the classify service (WATCHFLOOR_* environment variables)."""

from pathlib import Path

from pydantic import Field

from shared.settings import CommonSettings


class ClassifySettings(CommonSettings):
    gazetteer_cache_dir: Path | None = Field(
        None, description="where the AOI gazetteer index is cached; default ~/.cache/watchfloor"
    )
