"""Nothing lost under faults: the CLI against the AWS emulator and the local Slack server.

The demo fleet's `bob-finetune-llama` notebook (idle 54 days; its evidence, notebook opens, is
read from CloudTrail) is warned on day 0 by a Slack DM to bob, and stopped on day 7. Each test
ends that day-7 run at a bad moment: SIGTERM while Slack is rate-limited, SIGKILL between the
stop call and its record, an exception from the Slack client, the state store failing after
the stop. After each one, `janitor history` shows the stop and `janitor restore` starts the
notebook again.

Time is moved by faking the clock: in-process with time_machine (the emulator runs in this
process and moves with it), and in a child process by a `python -c` that starts
time_machine before calling `janitor.cli.main`.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
import time_machine
from tests.conftest import SLACK_TOKEN
from tests.e2e.conftest import Fleet, by_name, run_json
from tests.unit.test_pipeline_faults import FailingStore

from janitor import cli, pipeline
from janitor.devserver.slack import SlackDevServer
from janitor.policy import load_policy
from janitor.state.sqlite import SqliteStore

pytestmark = pytest.mark.e2e

NOTEBOOK = "bob-finetune-llama"
CHILD = """
import sys
from datetime import datetime

import time_machine

from janitor import cli

with time_machine.travel(datetime.fromisoformat(sys.argv[1]), tick=True):
    sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.fixture
def slack_fleet(
    fleet: Fleet, slack_server: SlackDevServer, monkeypatch: pytest.MonkeyPatch
) -> Fleet:
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("JANITOR_SLACK_API_URL", slack_server.url)
    monkeypatch.setenv("JANITOR_SLACK_FALLBACK_CHANNEL", "#ml-spend")
    monkeypatch.setenv("JANITOR_SLACK_MAX_RETRIES", "1")
    return fleet


def moment(fleet: Fleet, day: int, hours: float = 1) -> datetime:
    return fleet.now + timedelta(days=day, hours=hours)


def apply_at(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], day: int, hours: float = 1
) -> tuple[int, dict[str, Any]]:
    with time_machine.travel(moment(fleet, day, hours), tick=True):
        return run_json(capsys, "run", "--apply")


def warned_on_day_0(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = apply_at(fleet, capsys, 0)
    assert code == 0, report["delivery_failures"]
    assert by_name(report)[NOTEBOOK]["action"] == "warn"


def notebook_status(name: str = NOTEBOOK) -> str:
    client: Any = boto3.client("sagemaker", region_name="us-east-1")
    status: str = client.describe_notebook_instance(NotebookInstanceName=name)[
        "NotebookInstanceStatus"
    ]
    return status


def stopped(name: str = NOTEBOOK) -> bool:
    return notebook_status(name) in ("Stopping", "Stopped")


def child_run(fleet: Fleet, day: int, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`janitor run --apply` in a child process whose clock reads `day` (an hour past the
    day-0 run's time of day, safely after the stop date its warning announced)."""
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, moment(fleet, day, 2).isoformat(), "run", "--apply",
         "--format", "json"],
        env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def history_of(capsys: pytest.CaptureFixture[str], name: str) -> str:
    capsys.readouterr()
    assert cli.main(["history", name]) == 0
    return capsys.readouterr().out


def restores(capsys: pytest.CaptureFixture[str], name: str) -> None:
    capsys.readouterr()
    code = cli.main(["restore", name])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert name in captured.out
    assert not stopped(name)


# -- SIGTERM while Slack is rate-limited ---------------------------------------------------------


def test_sigterm_while_slack_is_rate_limited_records_the_stop_and_releases_the_lock(
    slack_fleet: Fleet, slack_server: SlackDevServer, capsys: pytest.CaptureFixture[str]
) -> None:
    warned_on_day_0(slack_fleet, capsys)
    slack_server.clear()
    slack_server.rate_limit("chat.postMessage", 100, retry_after=60)

    child = child_run(slack_fleet, 7)
    try:
        wait_for(
            lambda: slack_server.calls["chat.postMessage"] >= 1 or child.poll() is not None,
            "the first digest",
        )
        assert child.poll() is None, child.communicate()
        assert stopped()  # stopped before any message was sent
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
        child.wait()

    assert child.returncode == 128 + signal.SIGTERM, err
    (line,) = err.strip().splitlines()
    assert line.startswith("janitor: SIGTERM: stopped after recording the last action")
    assert out == ""
    history = history_of(capsys, NOTEBOOK)
    assert "stop -> stopped" in history

    slack_server.clear()
    code, report = apply_at(slack_fleet, capsys, 7, hours=3)  # the lock was released
    assert code == 0, report["errors"]
    assert "holds the lock" not in capsys.readouterr().err
    restores(capsys, NOTEBOOK)


# -- SIGKILL between the stop call and its record -----------------------------------------------


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A local HTTP server on a free loopback port, serving from a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class HoldingProxy:
    """Forwards to the AWS emulator; a StopNotebookInstance is carried out there, but its
    answer is held back (the process that sent it is killed while it waits)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.called = threading.Event()
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body, headers=headers, method="POST"
                )
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                try:
                    with opener.open(request, timeout=30) as answer:
                        status, payload = answer.status, answer.read()
                        answer_headers = list(answer.headers.items())
                except urllib.error.HTTPError as exc:
                    status, payload, answer_headers = (
                        exc.code,
                        exc.read(),
                        list(exc.headers.items()),
                    )
                if self.headers.get("X-Amz-Target", "").endswith(".StopNotebookInstance"):
                    proxy.called.set()
                    proxy.release.wait(60)
                    return
                self.send_response(status)
                for key, value in answer_headers:
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = serve(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def holding_proxy(slack_fleet: Fleet) -> Iterator[HoldingProxy]:
    proxy = HoldingProxy(slack_fleet.server.url)
    yield proxy
    proxy.close()


def test_sigkill_between_the_stop_and_its_record_is_restorable_and_reconciled(
    slack_fleet: Fleet, holding_proxy: HoldingProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    warned_on_day_0(slack_fleet, capsys)

    child = child_run(slack_fleet, 7, {"AWS_ENDPOINT_URL_SAGEMAKER": holding_proxy.url})
    try:
        assert holding_proxy.called.wait(90), "the child never stopped the notebook"
        child.kill()  # SIGKILL: no handler, no cleanup, no outcome recorded
    finally:
        child.kill()
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    wait_for(stopped, "the stop to take effect")

    assert "about to stop (undo recipe recorded)" in history_of(capsys, NOTEBOOK)
    with sqlite3.connect(slack_fleet.state) as db:
        outcomes = db.execute(
            "SELECT COUNT(*) FROM audit WHERE name = ? AND event = 'action'", (NOTEBOOK,)
        ).fetchone()
    assert outcomes == (0,)

    # The next run, after the dead run's lease ran out, settles the interrupted stop.
    code, report = apply_at(slack_fleet, capsys, 7, hours=5)
    assert not any("holds the lock" in e["message"] for e in report["errors"])
    history = history_of(capsys, NOTEBOOK)
    assert "reconciled" in history
    assert "stop -> stopped: the run of" in history
    restores(capsys, NOTEBOOK)


# -- an exception from the notifier --------------------------------------------------------------


class GarbledSlack:
    """Answers every Slack Web API call with a body cut short: the Slack client raises."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                payload = b'{"ok": true, "channel": '
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = serve(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_exception_from_the_slack_client_after_the_stop_loses_nothing(
    slack_fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    warned_on_day_0(slack_fleet, capsys)
    garbled = GarbledSlack()
    monkeypatch.setenv("JANITOR_SLACK_API_URL", garbled.url)
    try:
        with time_machine.travel(moment(slack_fleet, 7, 2), tick=True):
            code = cli.main(["run", "--apply", "--format", "json"])
    finally:
        garbled.close()
    report = json.loads(capsys.readouterr().out)

    assert stopped()
    assert code == 1  # the Slack client raised: a failed delivery, told, not a crash
    assert any("notifier failed" in line for line in report["delivery_failures"])
    owed = SqliteStore(slack_fleet.state)
    notices = owed.pending_notices()  # the stops are told on a later run
    assert NOTEBOOK in {n.payload["name"] for n in notices}
    assert {n.stage for n in notices} == {"stop"}
    owed.close()
    history = history_of(capsys, NOTEBOOK)
    assert "stop -> stopped" in history
    restores(capsys, NOTEBOOK)


# -- the state store failing after the stop ------------------------------------------------------


def test_the_state_store_failing_after_the_stop_leaves_a_restorable_record(
    slack_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    warned_on_day_0(slack_fleet, capsys)
    policy = load_policy(None)
    store = FailingStore(SqliteStore(slack_fleet.state))
    store.allowed = 1  # the first intent is written; the disk is full from then on
    try:
        with (
            time_machine.travel(moment(slack_fleet, 7, 2), tick=True),
            pytest.raises(sqlite3.OperationalError, match="disk is full"),
        ):
            pipeline.run(
                policy,
                now=moment(slack_fleet, 7, 2),
                store=store,
                notifier=cli._notifier(policy, "json"),
                apply=True,
            )
    finally:
        store.close()

    with sqlite3.connect(slack_fleet.state) as db:
        ((first, detail),) = db.execute(
            "SELECT name, detail FROM audit WHERE event = 'intent'"
        ).fetchall()
    assert json.loads(detail)["restore"]
    assert "about to stop" in history_of(capsys, first)

    code, report = apply_at(slack_fleet, capsys, 7, hours=3)  # settles it, stops the rest
    assert report["errors"] == []
    history = history_of(capsys, first)
    assert "reconciled" in history
    assert "stop -> stopped: the run of" in history
    capsys.readouterr()
    assert cli.main(["restore", first]) == 0, capsys.readouterr().err
    assert not stopped(first)
