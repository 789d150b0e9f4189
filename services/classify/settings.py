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
    places_reload_seconds: float = Field(
        2.0, gt=0, description="how often the places officers add are looked for (they apply without a restart)"
    )
