"""EventMessages as classify publishes them, for the alert tests: one car bomb in Niamey reported twice."""

from datetime import UTC, datetime, timedelta

from shared.messages import ActorLabel, EventMessage, PlaceLabel, Span, TacticLabel

# 30 h ago, so that the tests' reports (T0 - 1 day … T0 + 1 day) are all in the past and none is older
# than the alert service's max event age (3 days), which would open no alert.
T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=30)
NIAMEY = ("Niamey", 13.51366, 2.1098, "NE")
TILLABERI = ("Tillabéri", 14.2116, 1.4531, "NE")   # ~110 km north-west of Niamey
GAO = ("Gao", 16.2666, -0.0400, "ML")


def event(
    event_id: str,
    *,
    source: str = "src-en",
    actors: tuple[tuple[str, str], ...] = (("ISSP", "perpetrator"),),
    tactics: tuple[str, ...] = ("vbied",),
    place: tuple[str, float, float, str] | None = NIAMEY,
    at: datetime = T0,
    killed: int | None = None,
    is_event: bool = True,
    title: str = "Car bomb hits checkpoint on the outskirts of Niamey",
    text: str | None = None,
    lang: str = "en",
    confidence: float = 0.9,
    status: str | None = None,
    status_reason: str | None = None,
) -> EventMessage:
    return EventMessage(
        event_id=event_id.ljust(16, "0"), post_id=event_id.ljust(16, "0"), source_id=source,
        url=f"https://example.org/{event_id}", title=title, text=title if text is None else text, lang=lang,
        published_at=at, fetched_at=at + timedelta(minutes=2), classified_at=at + timedelta(minutes=2),
        is_event=is_event,
        actors=[ActorLabel(code=code, role=role, confidence=0.9,  # type: ignore[arg-type]  # test data
                           evidence=[Span(field="title", start=0, end=4, text=code)])
                for code, role in actors],
        perpetrator=next((c for c, r in actors if r == "perpetrator"), None),
        tactics=[TacticLabel(code=t, confidence=0.9) for t in tactics],
        place=PlaceLabel(name=place[0], lat=place[1], lon=place[2], country=place[3]) if place else None,
        killed=killed, confidence=confidence, classifier="test-1",
        status=status or ("reported" if is_event else None),  # type: ignore[arg-type]  # test data
        status_reason=status_reason,
    )


def vbied_niamey_en() -> EventMessage:
    return event("vbied-niamey-en", source="src-en", killed=3)


def vbied_niamey_fr() -> EventMessage:
    """The same attack reported in French an hour later, 6 km away, no claim yet."""
    return event(
        "vbied-niamey-fr", source="src-fr", actors=(), tactics=("vbied", "suicide_attack"),
        place=("Niamey", 13.55, 2.14, "NE"), at=T0 + timedelta(hours=1), lang="fr",
        title="Un véhicule piégé explose à un poste de contrôle près de Niamey",
    )
