"""Slack delivery: one digest per owner, as a DM found by email, else to a fallback channel.

Configuration comes from the environment (secrets never live in the policy file):
- SLACK_BOT_TOKEN: the bot token (scopes chat:write, users:read, users:read.email);
- JANITOR_SLACK_API_URL: another Web API base URL (Enterprise Grid proxies, GovSlack, tests);
- JANITOR_SLACK_FALLBACK_CHANNEL: where resources go whose owner cannot be reached;
- JANITOR_SLACK_WEBHOOK_URL: incoming-webhook mode for teams without a bot (channel only).

A digest counts as delivered only when Slack answered `ok: true` for every part of it. A digest
split into several messages (Slack's 50-block limit) that got through in part reports, per item,
which resources were in the confirmed messages: those count as delivered, the rest are sent again
on the next run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from janitor.notify.base import Delivery, Digest
from janitor.notify.slack_blocks import SlackMessage, digest_messages, item_text, summary_messages

if TYPE_CHECKING:
    from slack_sdk import WebClient
    from slack_sdk.http_retry.handler import RetryHandler
    from slack_sdk.webhook import WebhookClient

USER_ID = re.compile(r"^[UW][A-Z0-9]{6,}$")
CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{6,}$")
BULK_LOOKUP_THRESHOLD = 25  # more email owners than this: one paged users.list instead
DEFAULT_RETRIES = 3  # per request, for 429 (after Retry-After), connection errors and 5xx


def _retry_handlers() -> list[RetryHandler]:
    """429 after Retry-After, connection errors and 5xx: JANITOR_SLACK_MAX_RETRIES each."""
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    retries = max_retries(os.environ)
    return [
        RateLimitErrorRetryHandler(max_retry_count=retries),
        ConnectionErrorRetryHandler(max_retry_count=retries),
        ServerErrorRetryHandler(max_retry_count=retries),
    ]


class SlackConfigError(ValueError):
    """A Slack variable in the environment that cannot work; the message is one line."""


MAX_RETRIES_LIMIT = 10


def max_retries(environ: Mapping[str, str]) -> int:
    """JANITOR_SLACK_MAX_RETRIES: a whole number from 0 to 10; unset or empty: the default."""
    value = environ.get("JANITOR_SLACK_MAX_RETRIES", "").strip()
    if not value:
        return DEFAULT_RETRIES
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_RETRIES_LIMIT:
        raise SlackConfigError(
            f"JANITOR_SLACK_MAX_RETRIES={value!r}: give a whole number from 0 to "
            f"{MAX_RETRIES_LIMIT} (default {DEFAULT_RETRIES})"
        )
    return int(value)


def _url_problem(value: str) -> str | None:
    if any(char.isspace() for char in value):
        return "contains white space"
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http"):
        return "not an http(s) URL"
    try:
        host, _port = parts.hostname, parts.port
    except ValueError:
        return "the port is not a number from 0 to 65535"
    if not host:
        return "no host name"
    return None


def check_environment(environ: Mapping[str, str]) -> None:
    """Refuse, before a run starts, the Slack variables that could only fail later, mid-run.

    The webhook URL is a secret: the message names its problem, never its value.
    """
    api_url = environ.get("JANITOR_SLACK_API_URL", "").strip()
    problem = _url_problem(api_url) if api_url else None
    if problem:
        raise SlackConfigError(
            f"JANITOR_SLACK_API_URL={api_url!r}: {problem} (like https://slack.com/api/)"
        )
    webhook = environ.get("JANITOR_SLACK_WEBHOOK_URL", "").strip()
    problem = _url_problem(webhook) if webhook else None
    if problem:
        raise SlackConfigError(
            f"JANITOR_SLACK_WEBHOOK_URL: {problem} (like https://hooks.slack.com/services/...)"
        )
    max_retries(environ)


@dataclass(frozen=True)
class SlackSettings:
    token: str | None = field(default=None, repr=False)
    webhook_url: str | None = field(default=None, repr=False)
    api_url: str | None = None
    fallback_channel: str | None = None
    summary_channel: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.token or self.webhook_url)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        fallback_channel: str | None = None,
        summary_channel: str | None = None,
    ) -> SlackSettings:
        def get(name: str) -> str | None:
            value = environ.get(name, "").strip()
            return value or None

        return cls(
            token=get("SLACK_BOT_TOKEN"),
            webhook_url=get("JANITOR_SLACK_WEBHOOK_URL"),
            api_url=get("JANITOR_SLACK_API_URL"),
            fallback_channel=get("JANITOR_SLACK_FALLBACK_CHANNEL") or fallback_channel,
            summary_channel=get("JANITOR_SLACK_SUMMARY_CHANNEL") or summary_channel,
        )


class SlackLookupError(Exception):
    """Slack could not be asked (outage, missing scope): not the same as "no such user"."""


@dataclass(frozen=True, slots=True)
class Recipient:
    channel: str | None  # a user id (DM), a channel id or #name; None: not reachable
    zone: tzinfo
    reason: str = ""  # why the owner could not be reached, for the fallback message


def _zone(name: object) -> tzinfo:
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return UTC
    return UTC


def _error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            return str(response["error"])
        except (KeyError, TypeError):
            return f"HTTP {getattr(response, 'status_code', '?')}"
    return type(exc).__name__


def _network_error(exc: OSError) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason).strip().splitlines()
    return f"Slack unreachable: {text[0] if text else type(exc).__name__}"


class OwnerDirectory:
    """Finds owners in Slack, once per run: by email, user id or #channel."""

    def __init__(self, client: WebClient, *, bulk_threshold: int = BULK_LOOKUP_THRESHOLD) -> None:
        self._client = client
        self._bulk_threshold = bulk_threshold
        self._cache: dict[str, Recipient] = {}
        self._by_email: dict[str, dict[str, Any]] | None = None

    def prepare(self, owners: Iterable[str | None]) -> None:
        emails = {o.strip().lower() for o in owners if o and "@" in o} - set(self._cache)
        if len(emails) > self._bulk_threshold:
            self._by_email = self._all_users()

    def _all_users(self) -> dict[str, dict[str, Any]]:
        from slack_sdk.errors import SlackApiError

        users: dict[str, dict[str, Any]] = {}
        cursor = None
        try:
            while True:
                page = self._client.users_list(cursor=cursor, limit=200)
                for member in page.get("members") or []:
                    email = (member.get("profile") or {}).get("email")
                    if email:
                        users[str(email).lower()] = member
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    return users
        except SlackApiError as exc:
            raise SlackLookupError(f"users.list: {_error(exc)}") from None
        except OSError as exc:
            raise SlackLookupError(f"users.list: {_network_error(exc)}") from None

    def resolve(self, owner: str | None) -> Recipient:
        if not owner or not owner.strip():
            return Recipient(None, UTC, "the resource has no owner tag")
        key = owner.strip()
        if "@" in key:
            key = key.lower()
        if key not in self._cache:
            self._cache[key] = self._lookup(key)
        return self._cache[key]

    def _lookup(self, owner: str) -> Recipient:

        if owner.startswith("#") or CHANNEL_ID.match(owner):
            return Recipient(owner, UTC)
        if "@" in owner:
            if self._by_email is not None:
                user = self._by_email.get(owner)
                if user is None:
                    return Recipient(None, UTC, f"no Slack user has the email {owner}")
                return self._user(user, owner)
            return self._ask(
                "users.lookupByEmail",
                {"email": owner},
                "users_not_found",
                f"no Slack user has the email {owner}",
                owner,
            )
        if USER_ID.match(owner):
            return self._ask(
                "users.info", {"user": owner}, "user_not_found", f"no Slack user {owner}", owner
            )
        return Recipient(
            None, UTC, f"owner tag {owner!r} is not an email, a Slack user ID or a #channel"
        )

    def _ask(
        self, method: str, params: dict[str, str], missing: str, reason: str, owner: str
    ) -> Recipient:
        """One user look-up: the user, "no such user" (a fallback), or a look-up failure."""
        from slack_sdk.errors import SlackApiError

        try:
            answer = self._client.api_call(method, http_verb="GET", params=params)
        except SlackApiError as exc:
            if _error(exc) == missing:
                return Recipient(None, UTC, reason)
            raise SlackLookupError(f"{method}: {_error(exc)}") from None
        except OSError as exc:  # unreachable after the retries (URLError, timeouts)
            raise SlackLookupError(f"{method}: {_network_error(exc)}") from None
        return self._user(answer["user"], owner)

    @staticmethod
    def _user(user: Mapping[str, Any], owner: str) -> Recipient:
        if user.get("deleted"):
            return Recipient(None, UTC, f"the Slack user of {owner} is deactivated")
        return Recipient(str(user["id"]), _zone(user.get("tz")))


def _items_per_message(
    digest: Digest, messages: list[SlackMessage], zone: tzinfo
) -> list[frozenset[str]]:
    """For each message, the keys of the digest items whose section it carries."""
    by_text: dict[str, set[str]] = {}
    for item in digest.items:
        by_text.setdefault(item_text(item, zone), set()).add(item.finding.resource.ref.key)
    out = []
    for message in messages:
        keys: set[str] = set()
        for block in message.blocks:
            text = (block.get("text") or {}).get("text") if block.get("type") == "section" else None
            keys |= by_text.get(text, set()) if isinstance(text, str) else set()
        out.append(frozenset(keys))
    return out


def web_client(settings: SlackSettings) -> WebClient:
    from slack_sdk import WebClient

    kwargs: dict[str, Any] = {}
    if settings.api_url:
        kwargs["base_url"] = (
            settings.api_url if settings.api_url.endswith("/") else (settings.api_url + "/")
        )
    return WebClient(
        token=settings.token,
        timeout=15,
        retry_handlers=_retry_handlers(),
        **kwargs,
    )


class SlackNotifier:
    """Bot-token mode: DMs to owners, the fallback channel for the rest."""

    name = "slack"
    reaches_people = True

    def __init__(
        self,
        client: WebClient,
        *,
        fallback_channel: str | None,
        summary_channel: str | None = None,
        exempt_tag: str = "janitor-exempt",
        directory: OwnerDirectory | None = None,
    ) -> None:
        self._client = client
        self._fallback = fallback_channel
        self._summary_channel = summary_channel or fallback_channel
        self._exempt_tag = exempt_tag
        self._directory = directory or OwnerDirectory(client)
        self.sent: list[tuple[str, SlackMessage]] = []  # what Slack accepted, for the report

    def prepare(self, owners: Iterable[str | None]) -> None:
        try:
            self._directory.prepare(owners)
        except SlackLookupError:
            return  # each delivery then looks its owner up, and reports what fails

    def deliver(self, digest: Digest) -> Delivery:
        try:
            recipient = self._directory.resolve(digest.owner)
        except SlackLookupError as exc:
            return Delivery(False, "slack", f"owner lookup failed: {exc}")
        note = None
        channel = recipient.channel
        if channel is None:
            if not self._fallback:
                return Delivery(False, "slack", f"{recipient.reason}; no fallback channel is set")
            channel = self._fallback
            note = f"Sent to this channel because {recipient.reason}."
        messages = digest_messages(
            digest, zone=recipient.zone, exempt_tag=self._exempt_tag, note=note
        )
        return self._post(channel, messages, _items_per_message(digest, messages, recipient.zone))

    def _post(
        self,
        channel: str,
        messages: list[SlackMessage],
        items: list[frozenset[str]] | None = None,
    ) -> Delivery:
        """Post the messages in order; stop at the first one Slack does not confirm.

        `items`: the resource keys each message carries; the answer names those confirmed.
        """
        from slack_sdk.errors import SlackApiError

        confirmed: frozenset[str] = frozenset()
        for index, message in enumerate(messages):
            problem = None
            try:
                answer = self._client.chat_postMessage(
                    channel=channel, text=message.text, blocks=message.blocks
                )
            except SlackApiError as exc:
                problem = f"chat.postMessage: {_error(exc)}"
            except OSError as exc:  # unreachable after the retries
                problem = f"chat.postMessage: {_network_error(exc)}"
            else:
                if not answer.get("ok"):
                    problem = f"chat.postMessage: {answer.get('error')}"
            if problem is not None:
                if len(messages) > 1:
                    problem += f" (message {index + 1} of {len(messages)})"
                return Delivery(False, channel, problem, confirmed if items else None)
            self.sent.append((channel, message))
            if items:
                confirmed |= items[index]
        return Delivery(True, f"slack:{channel}")

    def summarize(self, lines: list[str], figures: Mapping[str, str]) -> Delivery | None:
        if not self._summary_channel:
            return None
        return self._post(self._summary_channel, [summary_messages(lines, figures)])


class SlackWebhookNotifier:
    """Incoming-webhook mode: every digest to the webhook's channel, no DMs, no lookups."""

    name = "slack-webhook"
    reaches_people = True

    def __init__(self, client: WebhookClient, *, exempt_tag: str = "janitor-exempt") -> None:
        self._client = client
        self._exempt_tag = exempt_tag

    def prepare(self, owners: Iterable[str | None]) -> None:
        return None

    def deliver(self, digest: Digest) -> Delivery:
        note = f"Owner: {digest.owner}" if digest.owner else "No owner tag."
        messages = digest_messages(digest, zone=UTC, exempt_tag=self._exempt_tag, note=note)
        return self._post(messages, _items_per_message(digest, messages, UTC))

    def _post(
        self, messages: list[SlackMessage], items: list[frozenset[str]] | None = None
    ) -> Delivery:
        confirmed: frozenset[str] = frozenset()
        for index, message in enumerate(messages):
            try:
                answer = self._client.send(text=message.text, blocks=message.blocks)
            except OSError as exc:
                problem = _network_error(exc)
            else:
                if answer.status_code == 200:
                    if items:
                        confirmed |= items[index]
                    continue
                problem = f"HTTP {answer.status_code}: {answer.body}"
            if len(messages) > 1:
                problem += f" (message {index + 1} of {len(messages)})"
            return Delivery(False, "slack-webhook", problem, confirmed if items else None)
        return Delivery(True, "slack-webhook")

    def summarize(self, lines: list[str], figures: Mapping[str, str]) -> Delivery | None:
        return self._post([summary_messages(lines, figures)])


def webhook_client(settings: SlackSettings) -> WebhookClient:
    from slack_sdk.webhook import WebhookClient

    assert settings.webhook_url
    return WebhookClient(
        settings.webhook_url,
        timeout=15,
        retry_handlers=_retry_handlers(),
    )
