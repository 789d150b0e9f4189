"""HTTP for ingest: `POST /ingest` for pushed posts (bridges, scrapers, scripts) and `GET /api/sources`.

A pushed post goes the same way as a polled one: normalise (the source's language hint), screen (its keep and
block patterns), store once, publish once through the outbox. A repeated post (same source and guid, or url, or
text) is answered `duplicate: true` and not published again; one the patterns keep out is answered with
`kept_out` and not published.
"""

import json
import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import ClientDisconnect

from services.ingest import store
from services.ingest.outbox import PostOutbox
from services.ingest.push import MAX_GROUP, Accepted, Push, PushGroups
from services.ingest.settings import IngestSettings
from services.ingest.source_watch import SourceWatch
from shared import http_guards, outage
from shared.access import Access, Caller
from shared.db import session_scope
from shared.language import language
from shared.models import Source

logger = logging.getLogger(__name__)


class PushedPost(BaseModel):
    """A post pushed to `POST /ingest`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source: str = Field(
        pattern=store.SOURCE_ID.pattern,
        description="source id: 1-64 lower-case letters, digits, '.', '_' or '-'; created on first use",
        examples=["telegram-wilayat-sahel"],
    )
    title: str = Field("", max_length=2000)
    text: str = Field(min_length=1, max_length=2_000_000, description="plain text of the post; classify reads "
                      "the first WATCHFLOOR_CLASSIFY_MAX_CHARS characters, the whole is stored")
    url: str | None = Field(None, max_length=2000, description="http(s) link to the original")
    guid: str | None = Field(None, min_length=1, max_length=2000, description="the sender's own id for the post")
    published_at: AwareDatetime | None = Field(None, description="ISO 8601 with a UTC offset")
    lang: str | None = Field(None, max_length=35, description="BCP 47 language tag, e.g. fr or ar")

    @field_validator("source", "title", "text", "url", "guid", "lang")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        """Text a database and a JSON encoder can carry: no lone surrogates (a JSON `\\ud800`), no NUL."""
        if value is None:
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"not valid Unicode: a lone surrogate at character {exc.start}") from None
        if "\x00" in value:
            raise ValueError(f"contains a NUL character at character {value.index(chr(0))}")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.lower().startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value or None

    @field_validator("lang")
    @classmethod
    def _lang(cls, value: str | None) -> str | None:
        if value and language(value) is None:
            raise ValueError("lang must be a language tag such as 'fr', 'ar' or 'en-NG'")
        return value or None


class SourceHealth(BaseModel):
    """A source as ops see it: what it is and how its polling goes."""

    id: str
    name: str
    url: str | None
    kind: str
    status: Literal["ok", "failing", "pending", "disabled"]
    enabled: bool
    interval_seconds: int
    consecutive_failures: int
    last_error: str | None
    last_error_at: datetime | None
    last_warning: str | None  # e.g. items dropped over WATCHFLOOR_MAX_ENTRIES_PER_POLL; cleared by a poll without
    last_warning_at: datetime | None
    last_polled_at: datetime | None
    last_success_at: datetime | None
    next_poll_at: datetime | None
    posts_seen: int
    pushed_by: str | None = None
    """A push source's owner: the name of the token that pushes to it."""
    lang: str | None = None
    """The language hint: the language of its posts that declare none."""
    keep: list[str] = []
    """Keep patterns (RE2): when any, a new post is published only if it matches one."""
    block: list[str] = []
    """Block patterns (RE2): a new post that matches one is kept out."""
    posts_filtered: int = 0
    """New posts the patterns kept out, each counted once."""
    last_filtered: str | None = None
    """The last poll's (or push's) account of it: "kept out 12 posts by block pattern 'football'"."""
    last_filtered_at: datetime | None = None
    last_post_at: datetime | None = None
    """When a new post from it was last stored."""
    failing_since: datetime | None = None
    """The first failure of its current run of failures."""
    watch_state: Literal["silent", "failing"] | None = None
    """The operator alert raised on it now (source.silent, source.failing), since `watch_since`, with why."""
    watch_since: datetime | None = None
    watch_reason: str | None = None
    usual_gap_seconds: float | None = None
    """Its usual gap between posts, learned from `posts_learned` of its posts."""
    posts_learned: int = 0

    @classmethod
    def of(cls, source: Source) -> "SourceHealth":
        if not source.enabled:
            state: Literal["ok", "failing", "pending", "disabled"] = "disabled"
        elif source.consecutive_failures:
            state = "failing"
        elif source.kind != "push" and source.last_polled_at is None:
            state = "pending"
        else:
            state = "ok"
        return cls(
            id=source.id, name=source.name, url=source.url, kind=source.kind, status=state,
            enabled=source.enabled, interval_seconds=source.interval_seconds,
            consecutive_failures=source.consecutive_failures, last_error=source.last_error,
            last_error_at=source.last_error_at, last_warning=source.last_warning,
            last_warning_at=source.last_warning_at, last_polled_at=source.last_polled_at,
            last_success_at=source.last_success_at, next_poll_at=source.next_poll_at,
            posts_seen=source.posts_seen, pushed_by=source.pushed_by, lang=source.lang,
            keep=source.keep_patterns or [], block=source.block_patterns or [],
            posts_filtered=source.posts_filtered or 0, last_filtered=source.last_filtered,
            last_filtered_at=source.last_filtered_at, last_post_at=source.last_post_at,
            failing_since=source.failing_since,
            watch_state=source.watch_state if source.watch_state in ("silent", "failing") else None,  # type: ignore[arg-type]
            watch_since=source.watch_since, watch_reason=source.watch_reason,
            usual_gap_seconds=source.gap_mean_seconds, posts_learned=source.posts_learned or 0,
        )


MAX_POSTS_PER_REQUEST = MAX_GROUP
"""Posts in one array at most (and WATCHFLOOR_MAX_REQUEST_BYTES bounds the body)."""


class IngestItem(BaseModel):
    """One post of an array pushed to `POST /ingest`, answered in the order sent."""

    status: int = Field(description="202 stored (or a duplicate, or kept out); 403, 409 or 422 refused; 500 not "
                        "stored, retry it")
    post_id: str | None = None
    duplicate: bool | None = None
    kept_out: str | None = None
    detail: str | list[dict[str, Any]] | None = Field(None, description="why it was refused: a sentence, or for "
                                                      "422 the fields at fault as a single post's 422 lists them")


_POST_SCHEMA = PushedPost.model_json_schema()
_INGEST_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
    _POST_SCHEMA, {"type": "array", "items": _POST_SCHEMA, "minItems": 1, "maxItems": MAX_POSTS_PER_REQUEST}]}}}}}
_ANSWER = {"oneOf": [Accepted.model_json_schema(), {"type": "array", "items": IngestItem.model_json_schema()}]}


async def _json_body(request: Request) -> Any:
    try:
        raw = await request.body()
    except ClientDisconnect:  # gone, or cut off by the body limit (http_guards.BodyLimit has answered 413)
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "request body too large") from None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RequestValidationError([{"loc": ("body",), "type": "json_invalid",
                                       "msg": f"JSON decode error: {type(exc).__name__}"}]) from None


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors as FastAPI reports a body's: located under "body", without the input."""
    return [{"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)]


def _push(post: PushedPost, caller: Caller) -> Push:
    return Push(post, None if caller.anonymous else caller.name, admin=not caller.anonymous and caller.role == "admin")


def build_router(
    settings: IngestSettings, sessions: async_sessionmaker[AsyncSession], outbox: PostOutbox, watch: SourceWatch
) -> APIRouter:
    """`POST /ingest` needs a token of role ingest or higher (`watchfloor token add NAME --role ingest`),
    except in open mode: no token created yet and the caller on loopback."""
    router = APIRouter(tags=["ingest"])
    access = Access(sessions)
    groups = PushGroups(settings, sessions, outbox, watch)

    @router.post("/ingest", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted,
                 response_model_exclude_none=True, openapi_extra=_INGEST_BODY,
                 responses={202: {"description": "the post's outcome; for an array, a list of `IngestItem`s in "
                                  "the order sent", "content": {"application/json": {"schema": _ANSWER}}}})
    async def ingest(request: Request, caller: Annotated[Caller, Depends(access.require("ingest", "push posts"))]
                     ) -> Any:
        """Stores a pushed post and publishes it to wf:posts once; a repeat is acknowledged as a duplicate.
        The source belongs to the token that first pushed to it (`store.ensure_push_source`): another token's
        post under it is 403. The source's language hint and patterns apply as to a polled post (an admin sets
        them with `watchfloor source edit`). Answered once the post is stored (committed): posts arriving
        together share one transaction (services/ingest/push.py).

        A JSON array of up to 500 posts is answered 202 with one `IngestItem` per post, in order: each item's
        `status` says what became of it (202 stored or duplicate or kept out; 403, 409 or 422 refused, with
        `detail` as a single post's answer would have it). One bad item never fails the others."""
        body = await _json_body(request)
        if isinstance(body, list):
            return await ingest_many(body, caller)
        try:
            post = PushedPost.model_validate(body)
        except ValidationError as exc:
            raise RequestValidationError(_body_errors(exc)) from None
        [outcome] = await groups.store([_push(post, caller)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def ingest_many(body: list[Any], caller: Caller) -> JSONResponse:
        if not body or len(body) > MAX_POSTS_PER_REQUEST:
            raise RequestValidationError([{"loc": ("body",), "type": "too_long" if body else "too_short",
                                           "msg": f"send 1 to {MAX_POSTS_PER_REQUEST} posts in an array, not "
                                                  f"{len(body)}"}])
        items: list[IngestItem | None] = [None] * len(body)
        valid: list[tuple[int, Push]] = []
        for i, raw in enumerate(body):
            try:
                valid.append((i, _push(PushedPost.model_validate(raw), caller)))
            except ValidationError as exc:
                items[i] = IngestItem(status=422, detail=[http_guards.error_item(e) for e in _body_errors(exc)])
        outcomes = await groups.store([p for _, p in valid])
        for (i, _), outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, HTTPException):
                items[i] = IngestItem(status=outcome.status_code, detail=outcome.detail)
            elif isinstance(outcome, Exception):
                if outage.unavailable(outcome) is not None:
                    raise outcome  # the database is away: 503 for the request, retried whole (repeats are duplicates)
                logger.error("push failed item=%d reason=%r", i, outage.describe(outcome))
                items[i] = IngestItem(status=500, detail=f"not stored: {outage.describe(outcome)}")
            else:
                items[i] = IngestItem(status=202, **outcome.model_dump())
        return JSONResponse([item.model_dump(exclude_none=True) for item in items if item is not None],
                            status_code=status.HTTP_202_ACCEPTED)

    router.include_router(build_sources_router(sessions, access))
    return router


def build_sources_router(sessions: async_sessionmaker[AsyncSession], access: Access | None = None) -> APIRouter:
    """`GET /api/sources` alone: the ingest service serves it, and so does a process that serves the console
    without ingest (`watchfloor run api` or `run alert`, see watchfloor/runtime.py), since the console's
    sources page asks the server it came from."""
    router = APIRouter(tags=["ingest"])
    access = access or Access(sessions)

    @router.get("/api/sources", dependencies=[Depends(access.require("viewer", "read source health"))])
    async def sources() -> list[SourceHealth]:
        """Every source with its health: status, failures, last error, last and next poll. Needs a viewer
        token (or open mode): an error can quote what an internal address answered."""
        async with session_scope(sessions) as session:
            return [SourceHealth.of(s) for s in await store.list_sources(session)]

    return router
