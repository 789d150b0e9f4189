"""Every attack a post reports: its main event, then each other attack of a roundup (roundup.py says where a
part starts), classified from its own part of the text. And the warm-up a worker runs before its first post."""

import re
from datetime import datetime

from services.classify.classify import MAX_CHARS, TITLE_CHARS, classified_part, classify_post
from services.classify.match import label_matcher
from services.classify.place import find_mentions, is_common_word, km_between
from services.classify.roundup import APART_KM, split_attacks
from services.classify.spelling import skeleton_index
from services.classify.warm import classify_gazetteer
from shared import ids
from shared.gazetteer import Gazetteer
from shared.messages import EventMessage, PostMessage


def _shifted(event: EventMessage, offset: int) -> dict:
    """The event as a dict with every text span moved by `offset` (a part's offsets -> the post's)."""

    def move(node: object) -> object:
        if isinstance(node, dict):
            if node.keys() >= {"field", "start", "end", "text"} and node["field"] == "text":
                return {**node, "start": node["start"] + offset, "end": node["end"] + offset}
            return {k: move(v) for k, v in node.items()}
        if isinstance(node, list):
            return [move(v) for v in node]
        return node

    return move(event.model_dump(by_alias=True))  # type: ignore[return-value]


# A part is another attack only where its own words put it somewhere: in/at, an attack on it, an offset, near it.
_PLACED_BY_CONTEXT = re.compile(r"locative cue|attack/target cue|km |near |dateline")


def classify_events(
    post: PostMessage, *, now: datetime, gazetteer: Gazetteer | None = None, max_chars: int = MAX_CHARS
) -> list[EventMessage]:
    """Every attack the post reports: its main event first (as classify_post), then each other attack of a
    roundup, classified from its own part of the text, when it is a current event somewhere else."""
    gaz = gazetteer or classify_gazetteer()
    main = classify_post(post, now=now, gazetteer=gaz, max_chars=max_chars)
    if not main.is_event:
        return [main]
    title, text = classified_part(post.title or "", TITLE_CHARS), classified_part(post.text or "", max_chars)
    matcher = label_matcher()
    attack_hits = [h for h in matcher.scan(text, "text", ("tactic",)) if h.value]
    # the same call as the main event's place resolution made: its mentions come from the cache
    blocked = [
        (h.field, h.start, h.end)
        for field, body in (("title", title), ("text", text))
        for h in matcher.scan(body, field, ("actor", "army"))
        if h.kind == "actor"
    ]
    mentions = find_mentions(title, text, gaz, blocked)
    # a second attack needs a second place in the text: most posts name one, and need no splitting
    parts = split_attacks(text, attack_hits, mentions) if sum(m.field == "text" for m in mentions) > 1 else []
    if not parts:
        return [main]
    # The main event is the first attack: the headline and the text up to the second one.
    first = post.model_copy(update={"text": text[: parts[0].start]})
    head = classify_post(first, now=now, gazetteer=gaz, max_chars=max_chars)
    others: list[EventMessage] = []
    places = [(head.place.lat, head.place.lon)] if head.place else []
    for part in parts:
        piece = post.model_copy(update={"title": "", "text": text[part.start : part.end]})
        sub = classify_post(piece, now=now, gazetteer=gaz, max_chars=max_chars)
        if not (sub.is_event and sub.place) or any(
            km_between((sub.place.lat, sub.place.lon), other) <= APART_KM for other in places
        ):
            continue
        if not _PLACED_BY_CONTEXT.search(sub.place.reason or ""):
            continue  # "withdrew towards the Timbuktu Triangle": a place named in passing is not another attack
        places.append((sub.place.lat, sub.place.lon))
        row = _shifted(sub, part.start)
        row.update(event_id=ids.event_id(post.post_id, len(others) + 1), title=post.title, text=post.text)
        others.append(EventMessage.model_validate(row))
    if not others:
        return [main]  # one attack told with other places (where it was announced, where the dead were taken)
    main = head.model_copy(update={"text": post.text})
    return [main.model_copy(update={"also": [e.event_id for e in others]}), *others]


def warm_up(gazetteer: Gazetteer, now: datetime) -> None:
    """Builds what the first posts would otherwise pay for: the automata, the spelling index, the word lists
    (and, before a fork, what every worker then shares)."""
    post = PostMessage(
        post_id="0" * 64, source_id="warm-up", title="Gunmen attack army post near Niamey",
        text="Gunmen attacked the village of Kandagou near Niamey, killing 3.", fetched_at=now,
    )
    classify_events(post, now=now, gazetteer=gazetteer)
    skeleton_index(gazetteer)
    is_common_word("save")
