"""The documents the app serves, fetched from a running app on 127.0.0.1 as a browser with no internet would:
/docs and /redoc load every script and style from the app itself, /openapi.json still answers, and
/asyncapi.json names every stream a service reads or writes with its message schema."""

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import uvicorn
import yaml

from shared import streams
from shared.consumer import public_url
from shared.db import make_engine, make_sessionmaker
from shared.messages import AlertMessage, EventMessage, PostMessage
from tests.conftest import REDIS_URL
from watchfloor.runtime import SERVICE_NAMES, build_app


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """`watchfloor up`'s app with its three services, served by uvicorn in a thread. No lifespan: the pages and
    documents need neither Redis nor the database, and the broker's subscribers exist once it is built."""
    app, _services = build_app(SERVICE_NAMES, {}, REDIS_URL, make_sessionmaker(make_engine("sqlite+aiosqlite://")))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def referenced_urls(page: str) -> list[str]:
    """Every URL the page makes a browser load: src and href attributes, spec-url, and the `url:` Swagger UI
    fetches."""
    found = re.findall(r'(?:src|href|spec-url)="([^"]+)"', page)
    found += re.findall(r"\burl:\s*'([^']+)'", page)
    return found


EXPECTED_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_everything_from_the_app_itself(base_url: str, page: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10, follow_redirects=False) as http:
        answer = http.get(page)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        urls = referenced_urls(answer.text)
        assert any(u.endswith(".js") for u in urls) and any(u.endswith("/openapi.json") for u in urls), urls
        if page == "/docs":
            assert any(u.endswith(".css") for u in urls), urls
        for url in urls:
            absolute = urljoin(base_url + page, url)
            assert urlsplit(absolute).netloc == urlsplit(base_url).netloc, f"{page} loads {url} from elsewhere"
            asset = http.get(absolute)
            assert asset.status_code == 200, url
            kind = EXPECTED_TYPES[next(ext for ext in EXPECTED_TYPES if url.endswith(ext))]
            assert kind in asset.headers["content-type"], (url, asset.headers["content-type"])
            assert len(asset.content) > 1000, url
        # nothing else in the page names another host (a validator badge, fonts, a CDN fallback)
        assert not [u for u in re.findall(r"https?://[^\s\"'<>]+", answer.text) if not u.startswith(base_url)]


def test_the_openapi_document_still_answers(base_url: str) -> None:
    answer = httpx.get(base_url + "/openapi.json", timeout=10)
    assert answer.status_code == 200
    paths = answer.json()["paths"]
    assert "/ingest" in paths and "/health" in paths
    assert not {"/docs", "/redoc", "/asyncapi.json"} & set(paths)  # the documents document the API, not themselves


def test_the_asyncapi_document_names_every_stream_with_its_schema(base_url: str) -> None:
    answer = httpx.get(base_url + "/asyncapi.json", timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    doc = json.loads(answer.text)
    assert doc["asyncapi"].startswith("3.") and doc["info"]["title"] == "watchfloor streams"

    channels = doc["channels"]
    consumed = set(streams.STREAM_FOR_STAGE.values())
    published = {streams.POSTS, streams.EVENTS, streams.ALERTS, streams.SOURCE_WATCH,
                 *(streams.dlq_stream(s) for s in streams.STAGES)}
    assert {c["address"] for c in channels.values()} == consumed | published
    assert all(c.get("description") for c in channels.values())

    def payload(channel: dict) -> str:
        [message] = channel["messages"].values()
        ref = message["$ref"].rsplit("/", 1)[1]
        return doc["components"]["messages"][ref]["payload"]["$ref"].rsplit("/", 1)[1]

    actions = {op["channel"]["$ref"].rsplit("/", 1)[1]: op["action"] for op in doc["operations"].values()}
    seen = {(c["address"], actions[key], payload(c)) for key, c in channels.items()}
    assert {
        (streams.POSTS, "send", "PostMessage"), (streams.POSTS, "receive", "PostMessage"),
        (streams.EVENTS, "send", "EventMessage"), (streams.EVENTS, "receive", "EventMessage"),
        (streams.ALERTS, "send", "AlertMessage"), (streams.ALERTS, "receive", "AlertMessage"),
        (streams.SOURCE_WATCH, "send", "SourceWatchMessage"), (streams.SOURCE_WATCH, "receive", "SourceWatchMessage"),
        *((streams.dlq_stream(s), "send", "DeadLetterEntry") for s in streams.STAGES),
    } == seen

    schemas = doc["components"]["schemas"]
    for model in (PostMessage, EventMessage, AlertMessage):
        assert set(schemas[model.__name__]["properties"]) == set(model.model_json_schema()["properties"])
    post = schemas["PostMessage"]
    assert {"schema", "post_id", "source_id", "title", "text", "fetched_at"} <= set(post["properties"])
    assert set(post["required"]) == {"post_id", "source_id", "fetched_at"}

    assert "@" not in json.dumps(doc["servers"]) and doc["servers"]  # no credentials, whatever the URL had

    as_yaml = httpx.get(base_url + "/asyncapi.yaml", timeout=10)
    assert as_yaml.status_code == 200 and "yaml" in as_yaml.headers["content-type"]
    assert yaml.safe_load(as_yaml.text) == doc


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://ops:s3cret@redis.internal:6379/2", "redis://redis.internal:6379/2"),
    ("rediss://:s3cret@redis.internal:6380/0?ssl_cert_reqs=none", "rediss://redis.internal:6380/0"),
    ("unix:///var/run/wf/redis.sock?db=0", "unix:///var/run/wf/redis.sock"),
], ids=["user and password", "password and query", "unix socket"])
def test_the_documented_broker_address_has_no_credentials(url: str, shown: str) -> None:
    assert public_url(url) == shown


def test_watchfloor_asyncapi_prints_the_document_up_serves(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from watchfloor.cli import main

    monkeypatch.setenv("WATCHFLOOR_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("WATCHFLOOR_CONSUMER_NAME", "doc")
    printed = CliRunner().invoke(main, ["asyncapi"], catch_exceptions=False)
    assert printed.exit_code == 0, printed.output
    served = httpx.get(base_url + "/asyncapi.json", timeout=10).json()
    doc = json.loads(printed.output)
    assert doc["components"] == served["components"] and doc["channels"].keys() == served["channels"].keys()
    assert doc["channels"]["wf:posts:classify"]["bindings"]["redis"]["consumerName"] == "doc"
    as_yaml = CliRunner().invoke(main, ["asyncapi", "--yaml"], catch_exceptions=False)
    assert yaml.safe_load(as_yaml.output) == doc
