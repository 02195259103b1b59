"""The plumbing every dev server shares: a socket server answered from a daemon thread."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar


class Serving(Protocol):
    server_port: int

    def serve_forever(self, poll_interval: float = ...) -> None: ...

    def shutdown(self) -> None: ...

    def server_close(self) -> None: ...


S = TypeVar("S", bound=Serving)


class BackgroundServer(Generic[S]):
    """Start with `start()` or `with`; `stop()` shuts the server down and joins its thread."""

    def __init__(self) -> None:
        self._server: S | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        raise NotImplementedError

    def _serve(self, server: S, name: str, poll_interval: float = 0.5) -> None:
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": poll_interval},
            name=f"{name}:{server.server_port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def started(self) -> bool:
        return self._server is not None

    def _port_in_use(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._server.server_port

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
