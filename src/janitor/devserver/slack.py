"""A local Slack for tests and the demo: the Web API methods janitor uses, plus an incoming webhook.

`SlackDevServer` answers on 127.0.0.1 from a daemon thread (`http.server`, no third-party
dependencies) in the shapes of Slack's real answers: the keys and value types of the files in
tests/fixtures/slack/ (recorded where a recording exists, else written from Slack's
documentation; see the README there). The integration tests check every answer against them.

* The Web API under `url` ("http://127.0.0.1:PORT/api/", the `base_url` form of slack_sdk's
  `WebClient`): `auth.test`, `chat.postMessage`, `users.lookupByEmail`, `users.info`,
  `users.list` and `conversations.open`. Form-encoded, multipart, JSON and query-string
  requests are all accepted; the token comes from `Authorization: Bearer` or a `token` field
  (form or query; like Slack, never from a JSON body) and is checked on every method.
  Errors are Slack's envelope, HTTP 200 with `{"ok": false, "error": ...}`.
* One incoming webhook at `webhook_url`, which answers `ok` as plain text like Slack's, and
  an error code as text with the HTTP status Slack documents for it.

Every request is recorded (`received`, `messages()`, `webhooks()`) and counted per method
(`calls`), faulted ones included. Faults are injected per method: `rate_limit` (HTTP 429 with
Retry-After, before the token is checked), `fail` (an `ok: false` error), `outage` (every call
answers a 5xx).

Documented but not recorded: users.lookupByEmail answers `users_not_found` for a deactivated
user, while users.info and users.list still show it with `deleted: true` (and, as in the
recorded users.info, without `real_name`/`tz*`); conversations.open answers `user_disabled`
for it. Chosen here, neither recorded nor documented: posting to a deactivated user's id answers
`channel_not_found`; a rate-limited webhook answers the text `rate_limited`; an outage answers
`service_unavailable` (`internal_error` for 500) in the JSON envelope; the `invalid_blocks`
detail messages (`response_metadata.messages`) approximate Slack's.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import hashlib
import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from janitor.devserver.background import BackgroundServer

TEAM_ID = "T0000000001"
TEAM_NAME = "Janitor Dev"
TEAM_URL = "https://janitor-dev.slack.com/"
BOT_ID = "B0000000001"
BOT_USER_ID = "U0000000000"
BOT_NAME = "janitor"
WEBHOOK_PATH = "/services/T000/B000/XXXX"

# Slack's documented limits.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_MESSAGE_TEXT = 40_000
DEFAULT_USERS_LIST_LIMIT = 200  # Slack's recommended page size; tests page with smaller limits

_JSON = "application/json; charset=utf-8"
# Error codes for the HTTP status of an outage (Slack's documented transient errors).
_OUTAGE_ERRORS = {500: "internal_error", 502: "service_unavailable", 503: "service_unavailable"}
# What Slack's incoming webhooks answer for an error, by code (text body, HTTP status).
_WEBHOOK_STATUS = {
    "invalid_payload": 400,
    "no_text": 400,
    "invalid_blocks": 400,
    "invalid_blocks_format": 400,
    "too_many_attachments": 400,
    "user_not_found": 400,
    "action_prohibited": 403,
    "invalid_token": 403,
    "posting_to_general_channel_denied": 403,
    "channel_not_found": 404,
    "no_service": 404,
    "no_team": 404,
    "team_disabled": 404,
    "channel_is_archived": 410,
}
_TZ_LABELS = {
    "UTC": "Coordinated Universal Time",
    "GMT": "Greenwich Mean Time",
    "BST": "British Summer Time",
    "WET": "Western European Time",
    "WEST": "Western European Summer Time",
    "CET": "Central European Time",
    "CEST": "Central European Summer Time",
    "EET": "Eastern European Time",
    "EEST": "Eastern European Summer Time",
    "EST": "Eastern Standard Time",
    "EDT": "Eastern Daylight Time",
    "CST": "Central Standard Time",
    "CDT": "Central Daylight Time",
    "MST": "Mountain Standard Time",
    "MDT": "Mountain Daylight Time",
    "PST": "Pacific Standard Time",
    "PDT": "Pacific Daylight Time",
    "JST": "Japan Standard Time",
    "AEST": "Australian Eastern Standard Time",
    "AEDT": "Australian Eastern Daylight Time",
}


@dataclass(frozen=True)
class SlackUser:
    id: str
    email: str
    name: str
    real_name: str
    tz: str = "UTC"
    deleted: bool = False
    is_bot: bool = False


@dataclass(frozen=True)
class Received:
    """One request as the server saw it: params decoded (form, multipart, JSON or query), the
    token taken out of them, `blocks`/`attachments` sent as JSON strings decoded to lists."""

    method: str  # "chat.postMessage", ..., or "webhook"
    params: dict[str, Any]
    token: str | None
    status: int = 200  # the HTTP status answered
    error: str | None = None  # the error code answered; None when the call succeeded


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = _JSON
    headers: tuple[tuple[str, str], ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Fault:
    kind: str  # "ratelimited" | "fail" | "pass" (answered normally: fail after N successes)
    error: str
    retry_after: int = 1


class _SlackError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


_Method = Callable[[dict[str, Any]], dict[str, Any]]


class SlackDevServer(BackgroundServer["ThreadingHTTPServer"]):
    """The Slack Web API methods janitor uses and an incoming webhook, on 127.0.0.1."""

    def __init__(
        self,
        *,
        token: str = "xoxb-test-token",
        users: Sequence[SlackUser] = (),
        port: int = 0,
        known_channels: Collection[str] | None = None,
    ) -> None:
        """`known_channels`: the channel names (with or without "#") that exist; posting to
        another name answers `channel_not_found`. None: every name exists."""
        super().__init__()
        self._token = token
        self._port = port
        self._known_channels = (
            None if known_channels is None else {_channel_name(c) for c in known_channels}
        )
        self._lock = threading.RLock()
        self._users: dict[str, SlackUser] = {}
        self._updated: dict[str, int] = {}
        self._open_dms: set[str] = set()
        self._received: list[Received] = []
        self._calls: Counter[str] = Counter()
        self._faults: dict[str, deque[_Fault]] = {}
        self._outage: int | None = None
        self._last_ts = 0
        self._methods: dict[str, _Method] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "users.lookupByEmail": self._lookup_by_email,
            "users.info": self._users_info,
            "users.list": self._users_list,
            "conversations.open": self._conversations_open,
        }
        for user in users:
            self.add_user(user)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            return
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_for(self))
        server.daemon_threads = True
        self._serve(server, "slack-devserver", poll_interval=0.02)

    @property
    def url(self) -> str:
        """The Web API base URL, for `WebClient(base_url=...)` (ends with a slash)."""
        return f"{self._root()}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self._root()}{WEBHOOK_PATH}"

    @property
    def token(self) -> str:
        return self._token

    def _root(self) -> str:
        return f"http://127.0.0.1:{self._port_in_use()}"

    # -- seeding -----------------------------------------------------------------------------

    def add_user(self, user: SlackUser) -> None:
        """Add a user, or replace the one with the same id."""
        try:
            ZoneInfo(user.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"user {user.id}: unknown time zone {user.tz!r}") from None
        with self._lock:
            for other in self._users.values():
                if other.id != user.id and other.email.lower() == user.email.lower():
                    raise ValueError(f"user {user.id}: email {user.email} is {other.id}'s")
            self._users[user.id] = user
            self._updated[user.id] = int(time.time())

    @staticmethod
    def channel_id(name: str) -> str:
        """The stable channel id answered for a channel name ("#alerts" or "alerts")."""
        digest = hashlib.sha256(_channel_name(name).encode()).hexdigest()
        return "C" + digest[:10].upper()

    @staticmethod
    def dm_id(user_id: str) -> str:
        """The stable DM channel id of the bot's conversation with a user."""
        return "D" + user_id[1:]

    # -- observation and faults --------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        """Every request since the last `clear()`, faulted ones included, in arrival order."""
        with self._lock:
            return list(self._received)

    def messages(self) -> list[Received]:
        """The chat.postMessage calls that were answered ok."""
        return [r for r in self.received if r.method == "chat.postMessage" and r.error is None]

    def webhooks(self) -> list[Received]:
        """The incoming-webhook posts that were answered ok."""
        return [r for r in self.received if r.method == "webhook" and r.error is None]

    @property
    def calls(self) -> Counter[str]:
        """A snapshot of requests per method ("webhook" for the webhook), faulted ones included."""
        with self._lock:
            return Counter(self._calls)

    def clear(self) -> None:
        """Forget requests, counts, pending faults and any outage (users and DMs stay)."""
        with self._lock:
            self._received.clear()
            self._calls.clear()
            self._faults.clear()
            self._outage = None

    def rate_limit(self, method: str, times: int, retry_after: int = 1) -> None:
        """The next `times` calls of `method` answer 429 + Retry-After, error `ratelimited`."""
        self._add_faults(method, times, _Fault("ratelimited", "ratelimited", retry_after))

    def fail(self, method: str, error: str, times: int = 1, *, after: int = 0) -> None:
        """The next `times` calls of `method` answer `{"ok": false, "error": error}` (HTTP 200;
        for the webhook, the status Slack uses for that code). `after`: answer that many calls
        normally first (e.g. the second message of a digest fails, the first gets through)."""
        if after < 0:
            raise ValueError("after must be >= 0")
        self._add_faults(method, after, _Fault("pass", ""))
        self._add_faults(method, times, _Fault("fail", error))

    def outage(self, on: bool = True, status: int = 503) -> None:
        """Every call answers `status` until `outage(False)`."""
        with self._lock:
            self._outage = status if on else None

    def _add_faults(self, method: str, times: int, fault: _Fault) -> None:
        if times < 0:
            raise ValueError("times must be >= 0")
        with self._lock:
            self._faults.setdefault(method, deque()).extend([fault] * times)

    # -- dispatch ----------------------------------------------------------------------------

    def _dispatch(
        self, path: str, query: str, content_type: str, authorization: str, body: bytes
    ) -> _Reply:
        if path.startswith("/api/"):
            return self._api(path.removeprefix("/api/"), query, content_type, authorization, body)
        if path == WEBHOOK_PATH:
            return self._webhook(content_type, body)
        if path.startswith("/services/"):
            return _text(404, "no_service")
        return _text(404, "not_found")

    def _api(
        self, method: str, query: str, content_type: str, authorization: str, body: bytes
    ) -> _Reply:
        params: dict[str, Any] = {}
        token: str | None = None
        decode_error: str | None = None
        try:
            params, form_token = _decode_params(query, content_type, body)
        except _SlackError as exc:
            decode_error, form_token = exc.error, None
        bearer = authorization.removeprefix("Bearer ").strip()
        if authorization.startswith("Bearer ") and bearer:
            token = bearer
        elif form_token:
            token = form_token
        with self._lock:
            self._calls[method] += 1
            reply = self._api_answer(method, params, token, decode_error)
            self._received.append(
                Received(method, _decoded(params), token, reply.status, reply.error)
            )
        return reply

    def _api_answer(
        self, method: str, params: dict[str, Any], token: str | None, decode_error: str | None
    ) -> _Reply:
        if self._outage is not None:
            return _outage_reply(self._outage)
        pending = self._faults.get(method)
        if pending and pending[0].kind == "ratelimited":  # Slack limits before it authenticates
            fault = pending.popleft()
            return _error(
                fault.error, status=429, headers=(("Retry-After", str(fault.retry_after)),)
            )
        if method not in self._methods:
            return _error("unknown_method")
        if decode_error is not None:
            return _error(decode_error)
        if token is None:
            return _error("not_authed")
        if token != self._token:
            return _error("invalid_auth")
        taken = pending.popleft() if pending else None
        if taken is not None and taken.kind != "pass":
            return _error(taken.error)
        try:
            answer = self._methods[method](params)
        except _SlackError as exc:
            return _error(exc.error, **exc.extra)
        return _json_reply(200, {"ok": True, **answer})

    def _take_fault(self, method: str) -> _Fault | None:
        pending = self._faults.get(method)
        return pending.popleft() if pending else None

    def _webhook(self, content_type: str, body: bytes) -> _Reply:
        params: dict[str, Any] = {}
        problem: str | None = None
        try:
            params = _webhook_payload(content_type, body)
        except _SlackError as exc:
            problem = exc.error
        with self._lock:
            self._calls["webhook"] += 1
            if self._outage is not None:
                reply = _text(self._outage, _OUTAGE_ERRORS.get(self._outage, "internal_error"))
            else:
                fault = self._take_fault("webhook")
                if fault is not None and fault.kind == "ratelimited":
                    reply = _text(
                        429,
                        "rate_limited",
                        headers=(("Retry-After", str(fault.retry_after)),),
                    )
                elif fault is not None and fault.kind != "pass":
                    reply = _text(_WEBHOOK_STATUS.get(fault.error, 400), fault.error)
                else:
                    problem = problem or _webhook_problem(params)
                    reply = (
                        _text(_WEBHOOK_STATUS.get(problem, 400), problem)
                        if problem
                        else _text(200, "ok")
                    )
            self._received.append(
                Received("webhook", _decoded(params), None, reply.status, reply.error)
            )
        return reply

    # -- methods (called with the lock held) -------------------------------------------------

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": TEAM_URL,
            "team": TEAM_NAME,
            "user": BOT_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(str(params.get("channel") or ""))
        text = params.get("text")
        text = text if isinstance(text, str) else ""
        blocks = _blocks(params.get("blocks"))
        attachments = _json_list(params.get("attachments"), "invalid_attachments")
        if not text and not blocks and not attachments:
            raise _SlackError("no_text")
        if len(text) > MAX_MESSAGE_TEXT:
            raise _SlackError("msg_too_long")
        if blocks:
            _check_blocks(blocks)
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "text": text,
            "bot_id": BOT_ID,
            "ts": ts,
        }
        if blocks:
            message["blocks"] = blocks
        if attachments:
            message["attachments"] = attachments
        return {"channel": channel, "ts": ts, "message": message}

    def _resolve_channel(self, channel: str) -> str:
        if not channel:
            raise _SlackError("channel_not_found")
        if channel[0] in "UW" and channel[1:].isalnum() and channel.isupper():
            user = self._users.get(channel)
            if user is None or user.deleted:
                raise _SlackError("channel_not_found")
            if user.is_bot:
                raise _SlackError("cannot_dm_bot")
            self._open_dms.add(user.id)
            return self.dm_id(user.id)
        if channel[0] == "D" and channel[1:].isalnum() and channel.isupper():
            user = self._users.get("U" + channel[1:]) or self._users.get("W" + channel[1:])
            if user is None or user.deleted or user.is_bot:
                raise _SlackError("channel_not_found")
            return channel
        if channel[0] in "CG" and channel[1:].isalnum() and channel.isupper():
            return channel
        if channel.startswith("@"):
            raise _SlackError("channel_not_found")
        name = _channel_name(channel)
        if not name or (self._known_channels is not None and name not in self._known_channels):
            raise _SlackError("channel_not_found")
        return self.channel_id(name)

    def _lookup_by_email(self, params: dict[str, Any]) -> dict[str, Any]:
        address = str(params.get("email") or "").strip().lower()
        if not address:
            raise _SlackError("invalid_arguments")
        for user in self._users.values():
            if user.email.lower() == address and not user.deleted and not user.is_bot:
                return {"user": self._user_object(user)}
        raise _SlackError("users_not_found")

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(str(params.get("user") or ""))
        if user is None:
            raise _SlackError("user_not_found")
        return {"user": self._user_object(user)}

    def _users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            limit = int(params.get("limit") or 0)
        except (TypeError, ValueError):
            raise _SlackError("invalid_limit") from None
        if limit <= 0:
            limit = DEFAULT_USERS_LIST_LIMIT
        users = list(self._users.values())
        start = 0
        cursor = str(params.get("cursor") or "")
        if cursor:
            start = _cursor_offset(cursor, [u.id for u in users])
        page = users[start : start + limit]
        rest = users[start + limit :]
        return {
            "members": [self._user_object(u) for u in page],
            "cache_ts": int(time.time()),
            "response_metadata": {"next_cursor": _cursor(rest[0].id) if rest else ""},
        }

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        wanted = [u.strip() for u in str(params.get("users") or "").split(",") if u.strip()]
        if channel and not wanted:
            user = self._users.get("U" + channel[1:])
            if not channel.startswith("D") or user is None or user.id not in self._open_dms:
                raise _SlackError("channel_not_found")
            return {"no_op": True, "already_open": True, "channel": {"id": channel}}
        if not wanted:
            raise _SlackError("users_list_not_supplied")
        if len(wanted) > 8:
            raise _SlackError("too_many_users")
        for user_id in wanted:
            user = self._users.get(user_id)
            if user is None:
                raise _SlackError("user_not_found")
            if user.deleted:
                raise _SlackError("user_disabled")
        if len(wanted) > 1:
            key = ",".join(sorted(set(wanted)))
            group = "G" + hashlib.sha256(key.encode()).hexdigest()[:10].upper()
            return {"channel": {"id": group}}
        user_id = wanted[0]
        dm = {"id": self.dm_id(user_id)}
        if user_id in self._open_dms:
            return {"no_op": True, "already_open": True, "channel": dm}
        self._open_dms.add(user_id)
        return {"channel": dm}

    def _user_object(self, user: SlackUser) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "real_name": user.real_name,
            "display_name": user.name,
        }
        if user.is_bot:
            profile["bot_id"] = "B" + user.id[1:]
        else:
            profile["email"] = user.email
        profile["team"] = TEAM_ID
        answer: dict[str, Any] = {
            "id": user.id,
            "team_id": TEAM_ID,
            "name": user.name,
            "deleted": user.deleted,
        }
        if user.deleted:
            # As recorded (users.info of a deleted user): no real_name / tz / admin flags.
            answer["profile"] = profile
        else:
            label, offset = _tz_now(user.tz)
            answer.update(
                real_name=user.real_name,
                tz=user.tz,
                tz_label=label,
                tz_offset=offset,
                profile=profile,
                is_admin=False,
                is_owner=False,
            )
        answer.update(is_bot=user.is_bot, is_app_user=False, updated=self._updated.get(user.id, 0))
        return answer

    def _next_ts(self) -> str:
        micros = max(time.time_ns() // 1000, self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


# -- HTTP plumbing -------------------------------------------------------------------------------


def _handler_for(dev: SlackDevServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "janitor-slack-devserver"

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            path, _, query = self.path.partition("?")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            body = self.rfile.read(length) if length > 0 else b""
            reply = dev._dispatch(
                path,
                query,
                self.headers.get("Content-Type", ""),
                self.headers.get("Authorization", ""),
                body,
            )
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("X-Slack-Req-Id", uuid.uuid4().hex)
            self.send_header("Access-Control-Expose-Headers", "x-slack-req-id, retry-after")
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


def _json_reply(
    status: int, payload: Mapping[str, Any], headers: tuple[tuple[str, str], ...] = ()
) -> _Reply:
    error = None if payload.get("ok") else str(payload.get("error"))
    return _Reply(status, json.dumps(payload).encode(), _JSON, headers, error)


def _error(
    error: str, *, status: int = 200, headers: tuple[tuple[str, str], ...] = (), **extra: Any
) -> _Reply:
    return _json_reply(status, {"ok": False, "error": error, **extra}, headers)


def _outage_reply(status: int) -> _Reply:
    return _error(_OUTAGE_ERRORS.get(status, "internal_error"), status=status)


def _text(status: int, text: str, *, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    """A plain-text answer, like the webhook's: "ok", or the error code."""
    return _Reply(status, text.encode(), "text/html", headers, None if status == 200 else text)


def _decode_params(query: str, content_type: str, body: bytes) -> tuple[dict[str, Any], str | None]:
    """Request params (query string, then the body) and the token of a `token` field.

    Like Slack, a `token` is read from the query string or a form body, never from JSON.
    """
    params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    token = params.pop("token", None)
    mime = content_type.split(";", 1)[0].strip().lower()
    if body:
        if mime == "application/json":
            try:
                payload = json.loads(body)
            except ValueError:
                raise _SlackError("invalid_json") from None
            if not isinstance(payload, dict):
                raise _SlackError("json_not_object")
            payload.pop("token", None)
            params.update(payload)
        elif mime in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = (
                _multipart(content_type, body)
                if mime == "multipart/form-data"
                else {
                    k: v[-1]
                    for k, v in parse_qs(
                        body.decode("utf-8", "replace"), keep_blank_values=True
                    ).items()
                }
            )
            token = form.pop("token", None) or token
            params.update(form)
        else:
            raise _SlackError("invalid_post_type")
    return params, token or None


def _multipart(content_type: str, body: bytes) -> dict[str, str]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise _SlackError("invalid_form_data")
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode("utf-8", "replace")
    return fields


def _decoded(params: dict[str, Any]) -> dict[str, Any]:
    """`blocks` / `attachments` sent as JSON strings (form bodies) decoded, when they parse."""
    out = dict(params)
    for key in ("blocks", "attachments"):
        value = out.get(key)
        if isinstance(value, str):
            try:
                out[key] = json.loads(value)
            except ValueError:
                continue
    return out


def _webhook_payload(content_type: str, body: bytes) -> dict[str, Any]:
    mime = content_type.split(";", 1)[0].strip().lower()
    raw: bytes | str = body
    if mime == "application/x-www-form-urlencoded":
        raw = (parse_qs(body.decode("utf-8", "replace")).get("payload") or [""])[-1]
    try:
        payload = json.loads(raw)
    except ValueError:
        raise _SlackError("invalid_payload") from None
    if not isinstance(payload, dict):
        raise _SlackError("invalid_payload")
    return payload


def _webhook_problem(payload: dict[str, Any]) -> str | None:
    try:
        blocks = _blocks(payload.get("blocks"))
        attachments = _json_list(payload.get("attachments"), "invalid_attachments")
        text = payload.get("text")
        if not (isinstance(text, str) and text) and not blocks and not attachments:
            return "no_text"
        if blocks:
            _check_blocks(blocks)
    except _SlackError as exc:
        return exc.error
    return None


def _json_list(value: Any, error: str) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _SlackError(error) from None
    if not isinstance(value, list):
        raise _SlackError(error)
    return value


def _blocks(value: Any) -> list[dict[str, Any]]:
    blocks = _json_list(value, "invalid_blocks_format")
    if not all(isinstance(b, dict) for b in blocks):
        raise _SlackError("invalid_blocks_format")
    return blocks


def _check_blocks(blocks: list[dict[str, Any]]) -> None:
    """Slack's Block Kit limits that janitor's messages could hit."""
    problems: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        where = f"/blocks/{i}"
        if not isinstance(kind, str):
            problems.append(f"missing required field: type [json-pointer:{where}]")
        elif kind == "section":
            problems += _section_problems(block, where)
        elif kind == "header":
            problems += _text_problems(block.get("text"), f"{where}/text", MAX_HEADER_TEXT)
    if problems:
        raise _SlackError(
            "invalid_blocks",
            response_metadata={"messages": [f"[ERROR] {p}" for p in problems]},
        )


def _section_problems(block: dict[str, Any], where: str) -> list[str]:
    text, fields = block.get("text"), block.get("fields")
    if text is None and not fields:
        return [f"must provide either text or fields [json-pointer:{where}]"]
    problems: list[str] = []
    if text is not None:
        problems += _text_problems(text, f"{where}/text", MAX_SECTION_TEXT)
    if fields is not None:
        if not isinstance(fields, list):
            return [*problems, f"must be an array [json-pointer:{where}/fields]"]
        if len(fields) > MAX_SECTION_FIELDS:
            problems.append(
                f"no more than {MAX_SECTION_FIELDS} items allowed [json-pointer:{where}/fields]"
            )
        for j, item in enumerate(fields):
            problems += _text_problems(item, f"{where}/fields/{j}", MAX_FIELD_TEXT)
    return problems


def _text_problems(obj: Any, where: str, limit: int) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in ("mrkdwn", "plain_text"):
        return [f"must be a text object [json-pointer:{where}]"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be more than 0 characters [json-pointer:{where}/text]"]
    if len(text) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{where}/text]"]
    return []


def _channel_name(channel: str) -> str:
    return channel.strip().removeprefix("#").lower()


def _cursor(user_id: str) -> str:
    return base64.b64encode(f"user:{user_id}".encode()).decode()


def _cursor_offset(cursor: str, ids: list[str]) -> int:
    try:
        decoded = base64.b64decode(cursor.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise _SlackError("invalid_cursor") from None
    user_id = decoded.removeprefix("user:")
    if not decoded.startswith("user:") or user_id not in ids:
        raise _SlackError("invalid_cursor")
    return ids.index(user_id)


def _tz_now(tz: str) -> tuple[str, int]:
    now = datetime.now(UTC).astimezone(ZoneInfo(tz))
    offset = now.utcoffset()
    abbreviation = now.tzname() or tz
    seconds = int(offset.total_seconds()) if offset is not None else 0
    return _TZ_LABELS.get(abbreviation, abbreviation), seconds
