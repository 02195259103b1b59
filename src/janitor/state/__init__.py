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
    """`sqlite:///relative.db`, `sqlite:////absolute/path.db` or `sqlite:///:memory:`.

    A URL that cannot be used (no path, a directory, a file that is not a database, a place
    that cannot be written) raises `StateUrlError`, one line naming the URL, before any run.
    """
    url = url or default_state_url()
    if url.startswith("sqlite:///"):
        return _open_sqlite(url, url.removeprefix("sqlite:///"))
    if url.startswith("sqlite:"):
        raise StateUrlError(
            f"state URL {url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    scheme = url.split(":", 1)[0]
    raise StateUrlError(f"state URL {url!r}: unsupported scheme {scheme!r} (use sqlite:///PATH)")


def _open_sqlite(url: str, path: str) -> StateStore:
    import sqlite3

    from janitor.state.sqlite import SqliteStore

    if not path.strip():
        # sqlite3 would open a private temporary database: every run would start from nothing.
        raise StateUrlError(
            f"state URL {url!r}: no path (use sqlite:///PATH, e.g. sqlite:///state.db)"
        )
    if path != ":memory:":
        if Path(path).is_dir():
            raise StateUrlError(f"state URL {url!r}: {path} is a directory, not a database file")
        blocking = next((p for p in Path(path).parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise StateUrlError(f"state URL {url!r}: {blocking} is a file, not a directory")
    try:
        return SqliteStore(path)
    except OSError as exc:
        raise StateUrlError(
            f"state URL {url!r}: cannot open {path}: {exc.strerror or exc}"
        ) from None
    except sqlite3.Error as exc:
        raise StateUrlError(f"state URL {url!r}: cannot open {path}: {exc}") from None
