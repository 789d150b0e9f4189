"""The watch floor's own gazetteer (`places` table): villages officers add because no package has them.

The CLI and the alert API write it (audited); classify reads it on top of the packaged gazetteer and
picks up changes without a restart (`version`); `unresolved` tells officers what to add, most named first.
"""

import math
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import ReasonError
from shared.gazetteer import Place, normalise
from shared.models import AuditEntry, Event, OfficerPlace, utcnow

KINDS = ("village", "town", "camp", "base", "airport", "airbase", "market", "mine", "border post", "area")


class PlaceError(ReasonError):
    """A place that cannot be added; `reason` names the field."""


@dataclass(frozen=True)
class NewPlace:
    name: str
    lat: float
    lon: float
    country: str
    source: str
    kind: str = "village"
    admin1: str | None = None
    aliases: tuple[str, ...] = ()

    def checked(self) -> "NewPlace":
        """The same place, tidied, or PlaceError naming what is wrong."""
        name = " ".join(self.name.split())
        if not name or len(name) > 200:
            raise PlaceError("name: must be 1 to 200 characters")
        for field, value, low, high in (("lat", self.lat, -90, 90), ("lon", self.lon, -180, 180)):
            if not (isinstance(value, int | float) and math.isfinite(value) and low <= value <= high):
                raise PlaceError(f"{field}: must be a number from {low} to {high}")
        country = (self.country or "").strip().upper()
        if len(country) != 2 or not country.isalpha():
            raise PlaceError("country: must be an ISO 3166-1 alpha-2 code such as NE or ML")
        if not (self.source or "").strip():
            raise PlaceError("source: say which public reference the point comes from (a map, an article, a report)")
        if self.kind not in KINDS:
            raise PlaceError(f"kind: must be one of {', '.join(KINDS)}")
        aliases = tuple(dict.fromkeys(a.strip() for a in self.aliases if a.strip() and a.strip() != name))
        return NewPlace(name, float(self.lat), float(self.lon), country, self.source.strip(), self.kind,
                        (self.admin1 or "").strip() or None, aliases)


def as_gazetteer_place(row: OfficerPlace) -> Place:
    """An officer's place as the classifier sees it: a curated row (`wf:` ids rank first), its reference kept."""
    return Place(id=f"wf:officer:{row.id}", name=row.name, lat=row.lat, lon=row.lon, country=row.country,
                 admin1=row.admin1, kind=row.kind, precision_km=1.0, source=f"officer place {row.id}: {row.source}",
                 aliases=tuple(row.aliases or ()))


async def add_place(session: AsyncSession, place: NewPlace, *, actor: str) -> OfficerPlace:
    """Stores a checked place (audited). PlaceError if one of that name is already there in that country."""
    place = place.checked()
    key = normalise(place.name)
    existing = await session.scalar(
        sa.select(OfficerPlace).where(OfficerPlace.key == key, OfficerPlace.country == place.country))
    if existing is not None:
        raise PlaceError(f"name: {existing.name} ({existing.country}) is already place {existing.id}")
    row = OfficerPlace(name=place.name, key=key, lat=place.lat, lon=place.lon, country=place.country,
                       admin1=place.admin1, kind=place.kind, aliases=list(place.aliases), source=place.source,
                       created_by=actor, created_at=utcnow())
    session.add(row)
    await session.flush()
    session.add(AuditEntry(actor=actor, action="place.added", target_kind="place", target_id=str(row.id),
                           detail={"name": row.name, "lat": row.lat, "lon": row.lon, "country": row.country,
                                   "source": row.source}))
    return row


async def list_places(session: AsyncSession) -> list[OfficerPlace]:
    return list((await session.scalars(sa.select(OfficerPlace).order_by(OfficerPlace.id))).all())


async def version(session: AsyncSession) -> tuple[int, int]:
    """(count, highest id): changes whenever a place is added or removed, for a cheap poll."""
    count, top = (await session.execute(
        sa.select(sa.func.count(OfficerPlace.id), sa.func.coalesce(sa.func.max(OfficerPlace.id), 0)))).one()
    return int(count), int(top)


@dataclass(frozen=True)
class UnresolvedName:
    name: str
    admin1: str | None
    country: str | None
    mentions: int
    last_seen: datetime
    example_event: str


async def unresolved(session: AsyncSession, *, since: datetime, limit: int = 50) -> list[UnresolvedName]:
    """Places posts named that no gazetteer knew, most mentioned first; names officers have added since are
    left out. Reads the events classified since `since` that carry one (a bounded window, not the whole log)."""
    known = {(r.key, r.country) for r in await list_places(session)}
    rows = await session.execute(
        sa.select(Event.id, Event.unresolved_place, Event.classified_at)
        .where(Event.unresolved_place.is_not(None), Event.classified_at >= since)
        .order_by(Event.classified_at.desc()).limit(50_000))
    groups: dict[tuple[str, str | None], list] = {}
    for event_id, place, at in rows:
        if not place or not place.get("name"):
            continue
        key = (normalise(place["name"]), place.get("country"))
        if (key[0], key[1]) in known:
            continue
        groups.setdefault(key, []).append((event_id, place, at))
    out = [
        UnresolvedName(name=items[0][1]["name"], admin1=items[0][1].get("admin1"), country=items[0][1].get("country"),
                       mentions=len(items), last_seen=max(at for _, _, at in items), example_event=items[0][0])
        for items in groups.values()
    ]
    out.sort(key=lambda u: (-u.mentions, -u.last_seen.timestamp(), u.name))
    return out[:limit]


async def events_naming(session: AsyncSession, keys: set[str], *, since: datetime, limit: int = 500) -> list[str]:
    """Ids of recent events whose unresolved place is one of `keys` (normalised names): to classify again."""
    rows = await session.execute(
        sa.select(Event.id, Event.unresolved_place)
        .where(Event.unresolved_place.is_not(None), Event.classified_at >= since)
        .order_by(Event.classified_at.desc()).limit(50_000))
    return [event_id for event_id, place in rows if place and normalise(place.get("name") or "") in keys][:limit]
