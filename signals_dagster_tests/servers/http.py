"""A real HTTP server in the test process: records every request, answers from a script.

`http_server` gives a fresh script and request log per test over one session-wide threaded
server on a free loopback port (HTTP/1.1, keep-alive, like a real endpoint).
"""

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Answer:
    """One scripted answer: status, extra headers, body, and a delay before answering."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    delay: float = 0.0


@dataclass(frozen=True)
class Request:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class RecordingServer:
    """Answers each request with the next scripted Answer (then the default, 200)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._script: list[Answer] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/ingest", userinfo: str = "") -> str:
        """An absolute URL on this server (optionally with user:password@)."""
        return f"http://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}{path}"

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order."""
        with self._lock:
            self._script = list(answers)

    def reset(self) -> None:
        """Forget requests and script."""
        with self._lock:
            self.requests.clear()
            self._script = []

    def _next(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            return self._script.pop(0) if self._script else Answer()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                request = Request("POST", self.path, dict(self.headers.items()), body)
                answer = server._next(request)
                if answer.delay:
                    time.sleep(answer.delay)
                payload = answer.body.encode()
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet

        return Handler

    def start(self) -> "RecordingServer":
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def _http_server_session() -> Iterator[RecordingServer]:
    server = RecordingServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http_server(_http_server_session: RecordingServer) -> Iterator[RecordingServer]:
    """The test HTTP server with an empty request log and script."""
    _http_server_session.reset()
    yield _http_server_session
    _http_server_session.reset()
