"""An alert's headline: the most informative of its reports' headlines, tidied (pure).

A social post leads with emoji, "BREAKING", hashtags and links, and often has no title at all; a wire title
says what happened where. Each report offers a candidate (`candidate`: its title, else its text's first
sentence, tidied by `tidy`), and an alert keeps its headline until a report offers a clearly better one
(`better`): one that names the place, gives a figure, is neither a stub nor a paragraph, and is not shouted.
Every step reads a bounded prefix of the report, so a 1 MB post costs no more than a short one.
"""

import re
import unicodedata

import emoji

MAX_CHARS = 140
"""A headline longer than this is cut at a word, with an ellipsis."""
READ_CHARS = 2000
"""Characters of a title or text read for a headline."""
MARGIN = 0.15
"""How much better a new candidate must score to replace an alert's headline: headlines do not flicker."""

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_TRAILING_TAGS = re.compile(r"(?:\s*[#@]\w+)+\s*$")
_TAG = re.compile(r"#(\w+)")
_LEAD = re.compile(
    r"^(?:breaking(?: news)?|urgent|just in|flash|alerte|update|live|dernière minute|عاجل)\b\s*[:\-–—|!]*\s*",
    re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?؟])\s+|\n")
_DROPPED = frozenset({"So", "Cf", "Co", "Cs", "Cc", "Cn"})
_MAYBE_EMOJI = re.compile("[\u00a9\u00ae\u2000-\u33ff\ufe0f\U0001f000-\U0001ffff\U000e0000-\U000e007f]")
"""Every code point an emoji (or a part of one: keycaps, flags, tags, variation selectors) is made of lies in
these ranges: text with none of them has no emoji."""


def tidy(text: str) -> str:
    """The text without emoji, pictographs, links, a trailing run of hashtags or mentions, `#` signs, leading
    "BREAKING:"-style words and extra spaces. Idempotent."""
    text = text[:READ_CHARS]
    if _MAYBE_EMOJI.search(text):  # emoji's tokenizer is slow: only where an emoji could be
        text = emoji.replace_emoji(text, " ")
    text = _URL.sub(" ", text)
    text = "".join(" " if unicodedata.category(c) in _DROPPED and c not in "\n" else c for c in text)
    text = _TRAILING_TAGS.sub("", text)
    text = _TAG.sub(r"\1", text)
    text = "\n".join(_SPACE.sub(" ", line).strip() for line in text.splitlines())
    text = text.strip(" \n-–—|:·•*>")
    while (lead := _LEAD.match(text)) and lead.end():
        text = text[lead.end():].strip(" -–—|:·•*>")
    return text


def _cut(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    head = text[:MAX_CHARS - 1]
    return (head.rsplit(" ", 1)[0] if " " in head[MAX_CHARS // 2:] else head).rstrip(" ,;:-–—") + "…"


def candidate(title: str, text: str) -> str:
    """A report's headline: its title tidied, else the first sentence of its text, tidied; at most
    `MAX_CHARS`."""
    tidied = tidy(title).replace("\n", " ")
    if tidied:
        return _cut(tidied)
    body = tidy(text)
    first = next((s.strip() for s in _SENTENCE_END.split(body) if len(s.strip()) >= 12), body.strip())
    return _cut(first.replace("\n", " "))


def score(headline: str, place: str | None) -> float:
    """How much a headline tells at a glance: about 0 (a stub) to about 1.4 (a wire title naming the place and a
    figure)."""
    if not headline:
        return -1.0
    value = min(len(headline), 80) / 80
    if headline.endswith("…"):
        value -= 0.2
    letters = [c for c in headline if c.isalpha()]
    if len(letters) > 12 and sum(c.isupper() for c in letters) / len(letters) > 0.6:
        value -= 0.3
    if place and unicodedata.normalize("NFKD", place.casefold()).encode("ascii", "ignore") in (
            unicodedata.normalize("NFKD", headline.casefold()).encode("ascii", "ignore")):
        value += 0.3
    if any(c.isdigit() for c in headline):
        value += 0.1
    return value


def better(current: str | None, offered: str, place: str | None) -> str | None:
    """The headline to keep: `offered` when there is none yet or it scores clearly higher, else `current`."""
    if not current:
        return offered or None
    return offered if score(offered, place) > score(current, place) + MARGIN else current
