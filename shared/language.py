"""Languages of posts: a language tag read from a feed, a platform or an operator, normalised to its primary
subtag ("fr-FR" -> "fr"); and the language of a post that arrives without one (most feeds do not say), from
Google's CLD3 model, which ships inside the cld3-py wheel (offline) and knows Hausa as well as English, French
and Arabic.

Ingest tags each new post with it, so that a rule's `languages` filter works; the offline classifier uses it
for files without a `lang` column. A short or mixed text gives None rather than a wrong guess."""

import re
from functools import cache
from typing import Any

# Languages of the watch floor: a guess among these is taken on less evidence than any other.
WATCH_LANGUAGES = frozenset({"en", "fr", "ar", "ha"})
_SAMPLE_CHARS = 1_000  # the model reads no more than this; a bounded cost whatever the post's length
_MIN_CHARS = 12
_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
# ISO 639 codes that name no language: undetermined, no linguistic content, uncoded, multiple; qaa-qtz are
# private use.
_NOT_A_LANGUAGE = frozenset({"und", "zxx", "mis", "mul"})


def language(tag: Any) -> str | None:
    """The primary subtag of a BCP 47 tag, lower case ("fr-FR" -> "fr"); None if there is none. Checks the
    shape only: what a feed declares is taken as declared."""
    if not isinstance(tag, str) or not _TAG.match(tag.strip()):
        return None
    return tag.strip().split("-")[0].split("_")[0].lower()


def known_language(tag: Any) -> str | None:
    """`language(tag)` if it names a language in the ISO 639 registry (fr, ha, ar, bm, ff, dyu…); None for a
    code no language has (xx), a private-use one (qaa-qtz), or und/zxx/mis/mul. For what an operator types,
    where a typo must be refused rather than stored."""
    import langcodes

    code = language(tag)
    if code is None or code in _NOT_A_LANGUAGE or "qaa" <= code <= "qtz":
        return None
    return code if langcodes.tag_is_valid(code) else None


@cache
def _identifier() -> Any:
    import gcld3  # the cld3-py distribution; imported on first use (a C++ model, ~20 ms to load)

    return gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=4 * _SAMPLE_CHARS)


def detect_language(title: str, text: str) -> str | None:
    """ISO 639-1 code of the post's language, or None when the text is too short or the model unsure."""
    sample = " ".join(f"{title}. {text}".split())[:_SAMPLE_CHARS]
    # the model takes UTF-8: a lone surrogate (invalid text a feed or a push may carry) is dropped, not fatal
    sample = sample.encode("utf-8", "ignore").decode("utf-8")
    if len(sample) < _MIN_CHARS:
        return None
    result = _identifier().FindLanguage(sample)
    code = result.language.split("-")[0]
    if code == "und":
        return None
    if code in WATCH_LANGUAGES:
        return code if result.is_reliable or result.probability >= 0.2 else None
    # Another language on a short text is mostly a misreading of names and numbers ("Diffa : 5 morts" as Italian).
    return code if result.is_reliable and len(sample) >= 80 else None
