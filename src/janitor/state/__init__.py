"""State stores, chosen by URL."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_data_dir

from janitor.state.base import LockHeld, LockLost, StateStore

__all__ = ["LockHeld", "LockLost", "StateStore", "default_state_url", "open_store"]


class StateUrlError(ValueError):
    pass


def default_state_url() -> str:
    return "sqlite:///" + str(Path(user_data_dir("janitor")) / "state.db")


def open_store(url: str | None) -> StateStore:
    """`sqlite:///relative.db`, `sqlite:////absolute/path.db` or `sqlite:///:memory:`."""
    url = url or default_state_url()
    if url.startswith("sqlite:///"):
        from janitor.state.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    scheme = url.split(":", 1)[0]
    raise StateUrlError(f"state URL {url!r}: unsupported scheme {scheme!r} (use sqlite:///PATH)")
