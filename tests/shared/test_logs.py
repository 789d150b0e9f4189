"""JSON log lines: `extra=` fields kept as keys, values that are not JSON written as text, exceptions with their
traceback, and the ids of the message being handled on every line emitted while it is handled."""

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from shared.logs import JsonFormatter, current_ids, make_handler, message_ids


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    logger = logging.getLogger("tests.logs")
    logger.handlers[:] = [make_handler("json", out)]
    logger.propagate, logger.level = False, logging.DEBUG
    yield logger, out
    logger.handlers[:] = []
    logger.propagate = True


def parsed(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_extra_fields_are_keys_of_their_own(lines) -> None:
    logger, out = lines
    logger.info("queued alert=%s v=%d", "ab12", 2, extra={"alert_id": "ab12cd", "version": 2, "muted": False,
                                                           "sources": ["a", "b"], "place": {"name": "Niamey"}})
    [line] = parsed(out)
    assert line["msg"] == "queued alert=ab12 v=2"
    assert line["level"] == "info" and line["logger"] == "tests.logs" and line["ts"].endswith("+00:00")
    assert (line["alert_id"], line["version"], line["muted"]) == ("ab12cd", 2, False)
    assert line["sources"] == ["a", "b"] and line["place"] == {"name": "Niamey"}
    assert not {"args", "levelno", "pathname", "thread", "taskName", "exc_text"} & set(line)


def test_values_json_cannot_write_are_written_as_text_and_never_raise(lines) -> None:
    logger, out = lines
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    logger.warning("odd values", extra={"when": when, "raw": b"\xff\x00", "mixed": [when], "bad": Unprintable(),
                                        "nan": float("nan")})
    [line] = parsed(out)
    assert line["when"] == "2026-01-02T03:04:05+00:00"  # ISO 8601, as orjson writes a datetime
    assert line["raw"] == "b'\\xff\\x00'"
    assert line["mixed"] == ["2026-01-02T03:04:05+00:00"]
    assert line["nan"] is None  # valid JSON: null, not NaN
    assert line["bad"] == "<unprintable Unprintable>"
    assert line["msg"] == "odd values"


def test_an_extra_named_like_a_base_key_does_not_hide_it(lines) -> None:
    logger, out = lines
    logger.info("hello", extra={"level": "mine", "ts": 1})
    [line] = parsed(out)
    assert (line["level"], line["level_"], line["ts_"]) == ("info", "mine", 1)


def test_an_exception_has_its_type_message_and_traceback(lines) -> None:
    logger, out = lines
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("handler failed", extra={"stage": "classify"})
    [line] = parsed(out)
    assert line["level"] == "error" and line["stage"] == "classify"
    assert line["error"] == "ValueError: boom"
    assert line["traceback"].startswith("Traceback (most recent call last):")
    assert 'raise ValueError("boom")' in line["traceback"] and line["traceback"].endswith("ValueError: boom")


def test_message_ids_are_on_every_line_inside_and_none_outside(lines) -> None:
    logger, out = lines
    with message_ids(post_id="p" * 64, event_id=None):
        logger.info("classified")
        with message_ids(event_id="e1", alert_id="a1"):
            logger.info("fired")
            assert current_ids() == {"post_id": "p" * 64, "event_id": "e1", "alert_id": "a1"}
        logger.info("after the alert", extra={"post_id": "explicit"})
    logger.info("outside")
    classified, fired, after, outside = parsed(out)
    assert classified["post_id"] == "p" * 64 and "event_id" not in classified
    assert (fired["post_id"], fired["event_id"], fired["alert_id"]) == ("p" * 64, "e1", "a1")
    assert after["post_id"] == "explicit" and "alert_id" not in after
    assert not {"post_id", "event_id", "alert_id"} & set(outside)


async def test_message_ids_do_not_leak_between_concurrent_handlers(lines) -> None:
    logger, out = lines

    async def handle(post_id: str) -> None:
        with message_ids(post_id=post_id):
            for _ in range(3):
                await asyncio.sleep(0)
                logger.info("step post=%s", post_id)

    await asyncio.gather(handle("one"), handle("two"))
    assert all(line["post_id"] == line["msg"].split("=")[1] for line in parsed(out))


def test_the_console_format_is_unchanged_by_ids() -> None:
    out = io.StringIO()
    handler = make_handler("console", out)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "classified post=%s", ("3f2a1c",), None)
    with message_ids(post_id="3f2a1c" + "0" * 58):
        handler.handle(record)
    assert out.getvalue().rstrip().endswith("I x: classified post=3f2a1c")


def test_the_formatter_alone_needs_no_filter() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain", (), None)
    assert json.loads(JsonFormatter().format(record))["msg"] == "plain"



def test_text_orjson_refuses_is_escaped_not_lost() -> None:
    """A lone surrogate (a JSON `\\ud800` in a hostile stream message) in the message or a field. Formatted
    directly: a captured log line with such text would break pytest-xdist's report of the test."""
    record = logging.LogRecord("tests.logs", logging.WARNING, __file__, 1, "title %s", ("a\ud800b",), None)
    record.reason = "x\udfffy"
    line = JsonFormatter().format(record)
    assert line.isascii() and (json.loads(line)["msg"], json.loads(line)["reason"]) == ("title a\ud800b", "x\udfffy")
