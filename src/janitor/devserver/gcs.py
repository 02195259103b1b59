"""gcp-storage-emulator (PyPI), in-process, for the tests and the demo: Cloud Storage's JSON API.

`GcsEmulator` serves the emulator's own router and handlers (`gcp_storage_emulator.server`) over
an in-memory `Storage`, on 127.0.0.1 from a daemon thread. Point google-cloud-storage at it with
`STORAGE_EMULATOR_HOST=<emulator.url>` (`emulator.env()`).

Credentials. With `STORAGE_EMULATOR_HOST` set and no `credentials=` given, google-cloud-storage
silently uses `AnonymousCredentials` (no Authorization header, ADC never consulted). To exercise
the same ADC path as the other GCP kinds, build the client with the credentials janitor loads
(`storage.Client(project=..., credentials=janitor.clouds.gcp.session.load_credentials()
.credentials)`). Started with `auth=<GcpDevServer>`, the emulator refuses (401, Google's error
shape) any request whose bearer token that server did not issue or cannot verify, so an
anonymous client fails the test instead of passing by accident.

What the emulator does not model, and how tests see it instead: every request is recorded
(`requests`: method, path, query, headers, body), since the emulator
* answers `objects.list` in one page whatever `maxResults` says (no `nextPageToken`);
* keeps the source's storage class on `objects.rewrite` (the `storageClass` in the body is
  ignored) and always answers `done: true` (never a `rewriteToken`);
* gives a rewritten object a new generation and new `timeCreated` / `updated` (GCS does too).
Assert page sizes, rewrite tokens and rewrite bodies through `requests`. With
`storage_class_rewrites=True` (the default) this wrapper makes a rewrite's `storageClass` stick
(the answer and the stored object carry it), so that a scan after an archive, or a restore, sees
the class GCS would show; `False` leaves the emulator as it is.

Backdating. The emulator stamps `timeCreated`, `updated` and `generation` from this process's
clock, so `at(when)` (time_machine, ticking so generations stay distinct) seeds objects in the
past. Nothing else sets them: `updated` is not writable through the API.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from janitor.devserver.background import BackgroundServer
from janitor.model import require_aware

if TYPE_CHECKING:
    from janitor.devserver.gcp import GcpDevServer

EMULATOR_HOST_ENV = "STORAGE_EMULATOR_HOST"
_REWRITE = re.compile(
    r"/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<object>.+)/rewriteTo/b/(?P<dest_bucket>[^/]+)/o/(?P<dest_object>.+)"
)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the emulator received it."""

    method: str
    path: str  # percent-decoded, without the query
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (None when empty or not JSON)."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


def _handler_class(emulator: GcsEmulator) -> type[Any]:
    from gcp_storage_emulator.server import RequestHandler, Router

    class Handler(RequestHandler):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(emulator._storage, *args, **kwargs)

        def _dispatch(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            self.rfile: Any = io.BytesIO(body)  # the emulator reads the body again
            parts = urlsplit(self.path)
            record = RecordedRequest(
                method=self.headers.get("X-HTTP-Method-Override") or method,
                path=unquote(parts.path),
                query=parse_qs(parts.query),
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
            )
            with emulator._lock:
                emulator._requests.append(record)
            if not emulator._authorized(record):
                self._unauthorized()
                return
            with emulator._lock:  # the emulator's storage is not thread-safe
                restore = emulator._apply_storage_class(record)
                try:
                    Router(self).handle(method)
                finally:
                    restore()

        def _unauthorized(self) -> None:
            payload = json.dumps(
                {
                    "error": {
                        "code": 401,
                        "message": "Invalid Credentials",
                        "errors": [
                            {"domain": "global", "reason": "authError", "message": "Invalid"}
                        ],
                    }
                }
            ).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:  # noqa: N802 (http.server's names)
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._dispatch("PUT")

        def do_PATCH(self) -> None:  # noqa: N802
            self._dispatch("PATCH")

        def do_DELETE(self) -> None:  # noqa: N802
            self._dispatch("DELETE")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    return Handler


class GcsEmulator(BackgroundServer[ThreadingHTTPServer]):
    """`with GcsEmulator(auth=gcp_server) as gcs: ...`; `gcs.url` is STORAGE_EMULATOR_HOST."""

    def __init__(
        self,
        *,
        auth: GcpDevServer | None = None,
        storage_class_rewrites: bool = True,
        port: int = 0,
    ) -> None:
        super().__init__()
        from gcp_storage_emulator.storage import Storage

        self._auth = auth
        self._storage_class_rewrites = storage_class_rewrites
        self._port = port
        self._lock = threading.RLock()
        self._storage = Storage(use_memory_fs=True)
        self._requests: list[RecordedRequest] = []

    def start(self) -> None:
        if self.started:
            return
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_class(self))
        server.daemon_threads = True
        self._serve(server, "gcs-emulator", poll_interval=0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port_in_use()}"

    def env(self) -> dict[str, str]:
        return {EMULATOR_HOST_ENV: self.url}

    def _authorized(self, request: RecordedRequest) -> bool:
        if self._auth is None:
            return True
        return self._auth.accepts(request.headers.get("authorization", ""))

    def _apply_storage_class(self, request: RecordedRequest) -> Callable[[], None]:
        """For `objects.rewrite` with a `storageClass` in the body: give the source object that
        class for the duration of the rewrite, so the emulator copies it to the new generation
        (and answers it). Returns how to put the source back (a no-op when source = dest, or
        when this is not such a rewrite)."""
        nothing: Callable[[], None] = lambda: None  # noqa: E731
        if not self._storage_class_rewrites or request.method != "POST":
            return nothing
        match = _REWRITE.fullmatch(request.path)
        body = request.json()
        if match is None or not isinstance(body, dict) or not body.get("storageClass"):
            return nothing
        source_key = (match["bucket"], match["object"])
        try:
            source = self._storage.get_file_obj(*source_key)
        except Exception:  # noqa: BLE001 (the emulator's NotFound): the rewrite answers 404
            return nothing
        former = source.get("storageClass")
        source["storageClass"] = body["storageClass"]
        if source_key == (match["dest_bucket"], match["dest_object"]):
            return nothing

        def put_back() -> None:
            source["storageClass"] = former

        return put_back

    # -- observation -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order (refused ones included)."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def wipe(self) -> None:
        """Delete every bucket and object, and forget the recorded requests."""
        with self._lock:
            self._storage.wipe()
            self._requests.clear()


@contextmanager
def at(when: datetime) -> Iterator[None]:
    """Run the block with this process's clock starting at `when` and ticking: objects uploaded
    to the in-process emulator get `timeCreated` / `updated` from about `when` on, each with a
    distinct generation. (Ticking, not frozen: clients may retry and sleep.)"""
    import time_machine

    require_aware(when, "when")
    with time_machine.travel(when, tick=True):
        yield
