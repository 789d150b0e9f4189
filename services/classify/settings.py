"""Settings of the classify service (WATCHFLOOR_* environment variables)."""

from pathlib import Path

from pydantic import Field

from services.classify.limits import MAX_CHARS
from shared.settings import CommonSettings


class ClassifySettings(CommonSettings):
    gazetteer_cache_dir: Path | None = Field(
        None, description="where the AOI gazetteer index is cached; default ~/.cache/watchfloor"
    )
    classify_max_chars: int = Field(
        MAX_CHARS,
        ge=1_000,
        description="characters of a post's text that are classified (the whole text is stored); bounds the cost",
    )
