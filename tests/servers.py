"""Real HTTP servers on 127.0.0.1 for tests: a feed server and a webhook receiver (threads, stdlib)."""

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Route:
    body: bytes
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class _QuietServer(ThreadingHTTPServer):
    """A client hanging up first (the timeout tests do) is expected, not an error to print. A listen backlog of
    128, not socketserver's 5: a sender opening dozens of connections at once is refused nothing."""

    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
            super().handle_error(request, client_address)


class _Server:
    def __init__(self, port: int = 0) -> None:
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _record(self) -> Request:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                              time.monotonic())
                with outer._lock:
                    outer.requests.append(req)
                return req

            def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                with outer._lock:
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    outer.on_request(self, self._record())
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

            def do_POST(self) -> None:
                outer.on_request(self, self._record())

        self.httpd = _QuietServer(("127.0.0.1", port), Handler)  # a given port: a receiver back where it was
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def on_request(self, handler: Any, req: Request) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FeedServer(_Server):
    """Serves feed bytes at paths; honours If-None-Match / If-Modified-Since when a route has validators."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        super().__init__()

    def route(self, path: str, body: bytes | str, **kwargs: Any) -> str:
        self.routes[path] = Route(body.encode() if isinstance(body, str) else body, **kwargs)
        return self.base_url + path

    def on_request(self, handler: Any, req: Request) -> None:
        route = self.routes.get(req.path)
        if route is None:
            handler._reply(404, b"not found", {"Content-Type": "text/plain"})
            return
        if route.delay:
            time.sleep(route.delay)
        etag = route.headers.get("ETag")
        modified = route.headers.get("Last-Modified")
        if (etag and req.headers.get("if-none-match") == etag) or (
            modified and not etag and req.headers.get("if-modified-since") == modified
        ):
            handler._reply(304, b"", {k: v for k, v in route.headers.items()})
            return
        handler._reply(route.status, route.body, {"Content-Type": route.content_type, **route.headers})

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]


class WebhookReceiver(_Server):
    """Records every POST; answers with the scripted statuses in order, then `default_status`."""

    def __init__(self, port: int = 0) -> None:
        self.script: list[int] = []
        self.default_status = 200
        super().__init__(port)

    def on_request(self, handler: Any, req: Request) -> None:
        status = self.script.pop(0) if self.script else self.default_status
        handler._reply(status, b"ok" if status < 300 else b"receiver says no", {"Content-Type": "text/plain"})

    @property
    def url(self) -> str:
        return self.base_url + "/hook"

    def posts(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST"]

    def wait_for(self, count: int, timeout: float) -> list[Request]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.posts()) >= count:
                return self.posts()
            time.sleep(0.05)
        return self.posts()


@dataclass
class Mail:
    """One message as the SMTP server accepted it: the envelope and the parsed message."""

    sender: str
    recipients: list[str]
    raw: bytes
    at: float

    @property
    def message(self) -> Any:
        from email import message_from_bytes, policy

        return message_from_bytes(self.raw, policy=policy.default)

    @property
    def text(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()


class SmtpServer:
    """A real SMTP server on 127.0.0.1 (aiosmtpd, in its own thread). `answers` is a queue of replies to DATA,
    e.g. ["451 4.3.0 try again later", "250 OK"]; when it is empty each message is accepted (`default`)."""

    def __init__(self, port: int = 0) -> None:
        import socket

        from aiosmtpd.controller import Controller

        if not port:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
        self.port = port
        self.mails: list[Mail] = []
        self.answers: list[str] = []
        self.default = "250 2.0.0 OK: queued"
        self.tried = 0
        self._lock = threading.Lock()
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                with outer._lock:
                    outer.tried += 1
                    answer = outer.answers.pop(0) if outer.answers else outer.default
                    if answer.startswith("250"):
                        outer.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos),
                                                bytes(envelope.original_content or envelope.content), time.time()))
                return answer

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        self._controller.start()

    def received(self) -> list[Mail]:
        with self._lock:
            return list(self.mails)

    def close(self) -> None:
        self._controller.stop()
