"""The pipeline's delivery step through the real SlackNotifier and the local Slack server:
digests delivered in part, and stop notices kept until they get through.

The cloud side is the in-memory fakes of tests/unit/test_pipeline.py (our own protocols); the
lifecycle clock is the pipeline's `now`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import ALICE, SLACK_TOKEN
from tests.unit.test_pipeline import InMemoryScope, day, gpu_box, make_policy, state_of

from janitor import pipeline
from janitor.devserver.slack import SlackDevServer
from janitor.model import LifecycleState, Resource
from janitor.notify.slack import SlackNotifier, SlackSettings, web_client
from janitor.report import RunReport
from janitor.state.sqlite import SqliteStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
def slack(slack_server: SlackDevServer, monkeypatch: pytest.MonkeyPatch) -> SlackNotifier:
    monkeypatch.setenv("JANITOR_SLACK_MAX_RETRIES", "0")
    monkeypatch.delenv("JANITOR_KILL_SWITCH", raising=False)
    settings = SlackSettings(token=SLACK_TOKEN, api_url=slack_server.url)
    return SlackNotifier(web_client(settings), fallback_channel="#ml-spend")


def run_at(n: float, cloud: InMemoryScope, store: SqliteStore, slack: SlackNotifier) -> RunReport:
    policy = make_policy(max_stops=100)
    return pipeline.run(
        policy, now=day(n), store=store, notifier=slack, apply=True, tasks=[cloud.task(policy)]
    )


def shown(server: SlackDevServer, boxes: list[Resource]) -> list[set[str]]:
    """Per chat.postMessage answered ok: the names of the boxes the owner read in it."""
    out = []
    for m in server.messages():
        if m.error is None and m.params["channel"] == ALICE.id:
            text = json.dumps(m.params.get("blocks"))
            out.append({b.name for b in boxes if f"*{b.name}*" in text})
    return out


def test_a_digest_delivered_in_part_counts_what_the_owner_read_and_resends_the_rest(
    store: SqliteStore, slack: SlackNotifier, slack_server: SlackDevServer
) -> None:
    boxes = [gpu_box(f"box-{i:02d}") for i in range(60)]  # one owner, more than 50 blocks
    cloud = InMemoryScope(*boxes)
    slack_server.fail("chat.postMessage", "channel_not_found", after=1)

    day53 = run_at(53, cloud, store, slack)

    (read,) = shown(slack_server, boxes)  # the first message got through, the second did not
    assert read
    assert len(read) < 60
    assert day53.exit_code() == 1
    (failure,) = [line for line in day53.delivery_failures if "alice" in line]
    assert f"{len(read)} of 60 delivered, the rest next run" in failure
    for box in boxes:
        state = state_of(store, box)
        assert state is not None
        if box.name in read:
            assert (state.warned_at, state.stop_due) == (day(53), day(60))  # the date shown
        else:
            assert (state.warned_at, state.stop_due) == (None, None)

    slack_server.clear()
    day54 = run_at(54, cloud, store, slack)

    assert day54.delivery_failures == []
    (resent,) = shown(slack_server, boxes)
    assert resent == {b.name for b in boxes} - read, "only what the owner has not read"
    assert "stops on Sat 02 Mar 2024" in json.dumps(
        slack_server.messages()[0].params["blocks"]
    )  # day 61
    for box in boxes:
        state = state_of(store, box)
        assert state is not None
        assert state.stop_due == (day(60) if box.name in read else day(61))

    stop60 = run_at(60, cloud, store, slack)
    assert sorted(cloud.stopper.stopped) == sorted(read), "stopped on the date they read"
    assert stop60.exit_code() == 0


def test_a_stop_notice_slack_refused_is_sent_on_the_next_run(
    store: SqliteStore, slack: SlackNotifier, slack_server: SlackDevServer
) -> None:
    box = gpu_box("train-box")
    store.put_state(
        LifecycleState(
            key=box.ref.key,
            streak_start=day(0),
            notified_at=day(30),
            warned_at=day(53),
            stop_due=day(60),
            owner=ALICE.email,
        )
    )
    cloud = InMemoryScope(box)
    slack_server.outage(True)

    stopped = run_at(60, cloud, store, slack)

    assert cloud.stopper.stopped == ["train-box"]
    assert stopped.exit_code() == 1
    assert [n.key for n in store.pending_notices()] == [box.ref.key]
    cloud.scanner.resources = []  # stopped: no longer listed

    slack_server.outage(False)
    slack_server.clear()
    later = run_at(61, cloud, store, slack)

    assert later.delivery_failures == []
    (message,) = [m for m in slack_server.messages() if m.params["channel"] == ALICE.id]
    text = json.dumps(message.params["blocks"])
    assert "Stopped" in text
    assert re.search(r"janitor restore \S*train-box", text)  # by name or by id
    assert "stopped on 2024-03-01 00:00 UTC" in text
    assert store.pending_notices() == []
    assert cloud.stopper.stopped == ["train-box"]
