"""aws.sagemaker-notebook against the local AWS: moto in server mode plus the dev server's
CloudTrail event history, reached by real boto3 over HTTP."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from janitor.clouds.aws.sagemaker_notebook import OPEN_EVENT, START_EVENT, build
from janitor.clouds.base import KindHandlers, RestoreFailed, stop_now
from janitor.devserver.aws import ACCOUNT_ID, AwsDevServer
from janitor.devserver.timetravel import at
from janitor.model import Confidence, Resource, Status, StopOutcome, Verdict, Window
from janitor.policy import parse_policy

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.literals import InstanceTypeType
    from mypy_boto3_sagemaker.type_defs import TagTypeDef

    from janitor.clouds.aws.session import AwsScope

pytestmark = pytest.mark.integration

ScopeFactory = Callable[..., "AwsScope"]
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/sagemaker"
WINDOW = timedelta(days=74)  # the default rule's lookback: stop_after 60d + 14d


class Env:
    def __init__(self, scope: AwsScope, server: AwsDevServer) -> None:
        rule = parse_policy(
            "rules:\n  - name: nb\n    kind: aws.sagemaker-notebook\n", "test.yaml", env={}
        ).rules[0]
        self.server = server
        self.sagemaker: SageMakerClient = scope.client("sagemaker")
        self.handlers: KindHandlers = build(scope, rule)

    def create(
        self,
        name: str,
        *,
        days_ago: float = 0,
        tags: Mapping[str, str] | None = None,
        instance_type: InstanceTypeType = "ml.t3.medium",
    ) -> str:
        tag_list: list[TagTypeDef] = [{"Key": k, "Value": v} for k, v in (tags or {}).items()]
        with at(datetime.now(UTC) - timedelta(days=days_ago)):
            answer = self.sagemaker.create_notebook_instance(
                NotebookInstanceName=name, InstanceType=instance_type, RoleArn=ROLE, Tags=tag_list
            )
        return answer["NotebookInstanceArn"]

    def event(
        self, name: str, event_name: str, days_ago: float, *, user: str = "alice", **extra: str
    ) -> None:
        self.server.add_cloudtrail_event(
            region=extra.pop("region", REGION),
            event_name=event_name,
            resource_name=extra.pop("resource_name", name),
            at=datetime.now(UTC) - timedelta(days=days_ago),
            username=user,
            request_parameters={"notebookInstanceName": name},
        )

    def scan(self) -> dict[str, Resource]:
        return {r.name: r for r in self.handlers.scanner.scan()}

    def usage(self, now: datetime, window: timedelta = WINDOW) -> dict[str, Verdict]:
        resources = list(self.scan().values())
        verdicts = self.handlers.probe.usage(resources, Window.ending(now, window), now)
        assert set(verdicts) == {r.ref.key for r in resources}
        by_key = {r.ref.key: r.name for r in resources}
        return {by_key[key]: v for key, v in verdicts.items()}

    def status(self, name: str) -> str:
        return self.sagemaker.describe_notebook_instance(NotebookInstanceName=name)[
            "NotebookInstanceStatus"
        ]


@pytest.fixture
def env(scope: ScopeFactory, aws_env: AwsDevServer) -> Env:
    return Env(scope(), aws_env)


def _moto_notebook(name: str) -> Any:
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT_ID][REGION].notebook_instances[name]


def _set_started(name: str, when: datetime) -> None:
    """SageMaker moves LastModifiedTime on every start; moto does not, so set its record."""
    notebook = _moto_notebook(name)
    notebook.last_modified_time = when.astimezone(UTC).replace(tzinfo=None)


def _set_status(name: str, status: str) -> None:
    """moto never leaves a notebook in a transitional status; put it in one."""
    notebook = _moto_notebook(name)
    notebook.status = status


# --- scan ------------------------------------------------------------------------------------


def test_scan_lists_in_service_notebooks_with_tags_in_bulk(env: Env) -> None:
    arn = env.create(
        "Research-NB",
        days_ago=30,
        tags={"owner": "ana", "team": "nlp"},
        instance_type="ml.p3.2xlarge",
    )
    env.create("plain", days_ago=3)
    env.create("parked")
    env.sagemaker.stop_notebook_instance(NotebookInstanceName="parked")
    env.server.reset_calls()
    now = datetime.now(UTC)

    found = env.scan()

    assert set(found) == {"Research-NB", "plain"}
    nb = found["Research-NB"]
    assert nb.ref.id == arn
    assert nb.ref.kind == "aws.sagemaker-notebook"
    assert (nb.ref.scope, nb.ref.region) == (ACCOUNT_ID, REGION)
    assert dict(nb.tags) == {"owner": "ana", "team": "nlp"}
    assert nb.state == "InService"
    assert nb.instance_type == "ml.p3.2xlarge"
    assert now - timedelta(days=31) < nb.created_at < now - timedelta(days=29)
    assert nb.last_started_at is None  # LastModifiedTime == CreationTime: never restarted
    assert nb.streak_floor == nb.created_at
    assert dict(found["plain"].tags) == {}
    assert env.server.calls["sagemaker.ListNotebookInstances"] == 1
    assert env.server.calls["tagging.GetResources"] == 1
    assert env.server.calls["sagemaker.ListTags"] == 0
    assert env.handlers.scanner.describe([nb]) == [nb]


def test_a_later_last_modified_time_is_the_last_start(env: Env) -> None:
    env.create("restarted", days_ago=50)
    started = datetime.now(UTC) - timedelta(days=6)
    _set_started("restarted", started)

    nb = env.scan()["restarted"]

    assert nb.last_started_at is not None
    assert abs(nb.last_started_at - started) < timedelta(seconds=1)
    assert nb.streak_floor == nb.last_started_at


def test_scan_of_an_empty_region_makes_no_tag_call(env: Env) -> None:
    assert env.scan() == {}
    assert env.server.calls["tagging.GetResources"] == 0


# --- usage -----------------------------------------------------------------------------------


def test_opens_and_starts_decide_activity(env: Env) -> None:
    env.create("fresh", days_ago=60)
    env.event("fresh", OPEN_EVENT, days_ago=0.1, user="alice")
    env.create("forgotten", days_ago=60)
    env.event("forgotten", OPEN_EVENT, days_ago=45, user="bob")
    env.event("forgotten", OPEN_EVENT, days_ago=40, user="bob")
    env.create("never", days_ago=20)
    env.create("restarted", days_ago=60)
    env.event("restarted", OPEN_EVENT, days_ago=40)
    env.event("restarted", START_EVENT, days_ago=10, user="carol")
    env.create("json-only", days_ago=60)  # the event names it only in requestParameters
    env.event("json-only", OPEN_EVENT, days_ago=0.5, resource_name="")
    env.create("by-arn", days_ago=60)  # the event names it by its (lower-cased) ARN
    env.event(
        "by-arn",
        OPEN_EVENT,
        days_ago=0.5,
        resource_name=f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:notebook-instance/by-arn",
    )
    env.event("someone-else", OPEN_EVENT, days_ago=0.1)
    env.event("never", OPEN_EVENT, days_ago=0.1, region="eu-west-1")  # another region's history
    now = datetime.now(UTC)
    found = env.scan()

    verdicts = env.usage(now)

    assert verdicts["fresh"].status is Status.ACTIVE
    assert "by alice" in verdicts["fresh"].evidence
    assert verdicts["json-only"].status is Status.ACTIVE
    assert verdicts["by-arn"].status is Status.ACTIVE

    forgotten = verdicts["forgotten"]
    assert forgotten.status is Status.IDLE
    assert forgotten.confidence is Confidence.MEDIUM
    assert forgotten.idle_since is not None
    assert abs(forgotten.idle_since - (now - timedelta(days=40))) < timedelta(seconds=5)
    assert forgotten.last_activity == forgotten.idle_since
    assert forgotten.evidence.startswith("last opened ")
    assert "by bob" in forgotten.evidence

    assert verdicts["never"].status is Status.IDLE
    assert verdicts["never"].idle_since == found["never"].created_at
    assert verdicts["never"].evidence.startswith("not opened since its creation on")
    assert verdicts["never"].last_activity is None

    restarted = verdicts["restarted"]
    assert restarted.status is Status.IDLE
    assert restarted.idle_since is not None
    assert abs(restarted.idle_since - (now - timedelta(days=10))) < timedelta(seconds=5)
    assert "not opened since its last start by carol" in restarted.evidence
    assert "last opened" in restarted.evidence  # the older open is still named
    # One paged pass per event name for the whole region, not one per notebook.
    assert env.server.calls["cloudtrail.LookupEvents"] == 2


def test_idle_since_a_start_when_only_last_modified_time_says_so(env: Env) -> None:
    env.create("rebooted", days_ago=60)
    _set_started("rebooted", datetime.now(UTC) - timedelta(days=5))
    now = datetime.now(UTC)

    verdict = env.usage(now)["rebooted"]

    assert verdict.status is Status.IDLE
    assert verdict.idle_since == env.scan()["rebooted"].last_started_at
    assert verdict.evidence.startswith("not opened since its last start on")


def test_history_older_than_cloudtrail_keeps_is_not_read(env: Env) -> None:
    env.create("ancient", days_ago=200)
    env.event("ancient", OPEN_EVENT, days_ago=100)  # beyond CloudTrail's 90 days
    now = datetime.now(UTC)

    verdict = env.usage(now, window=timedelta(days=150))["ancient"]

    assert verdict.status is Status.IDLE
    assert verdict.idle_since == now - timedelta(days=90)
    assert "the start of the CloudTrail history searched" in verdict.evidence
    assert verdict.last_activity is None


def test_lookup_events_is_paged_at_50(env: Env) -> None:
    env.create("busy-last-month", days_ago=80)
    for day in range(120):
        env.event("busy-last-month", OPEN_EVENT, days_ago=30 + day * 0.25)
    now = datetime.now(UTC)

    verdict = env.usage(now)["busy-last-month"]

    assert verdict.status is Status.IDLE
    assert verdict.idle_since is not None
    assert abs(verdict.idle_since - (now - timedelta(days=30))) < timedelta(seconds=5)
    opens_in_window = sum(1 for day in range(120) if 30 + day * 0.25 <= WINDOW.days)
    assert env.server.calls["cloudtrail.LookupEvents"] == math.ceil(opens_in_window / 50) + 1


@pytest.mark.parametrize(
    ("code", "word"),
    [("AccessDeniedException", "denied"), ("OperationNotPermittedException", "failed")],
)
def test_unreadable_cloudtrail_makes_every_notebook_unknown(env: Env, code: str, word: str) -> None:
    env.create("a", days_ago=40)
    env.create("b", days_ago=40)
    env.server.fail("cloudtrail.LookupEvents", 1, code)
    now = datetime.now(UTC)

    verdicts = env.usage(now)

    assert {v.status for v in verdicts.values()} == {Status.UNKNOWN}
    assert all(v.idle_since is None for v in verdicts.values())
    assert verdicts["a"].evidence.startswith(f"CloudTrail LookupEvents {word} in {REGION}")
    assert code in verdicts["a"].evidence
    assert "notebook opens cannot be seen" in verdicts["a"].evidence


# --- stop and restore -----------------------------------------------------------------------


def test_plan_reads_the_tags_as_they_are_now(env: Env) -> None:
    env.create("nb", instance_type="ml.p2.xlarge")
    resource = env.scan()["nb"]
    arn = env.sagemaker.describe_notebook_instance(NotebookInstanceName="nb")["NotebookInstanceArn"]
    env.sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "janitor-exempt", "Value": ""}])

    plan = env.handlers.stopper.plan(resource)

    assert plan.refusal is None
    assert plan.resource.tags.get("janitor-exempt") == ""
    assert env.status("nb") == "InService"  # planning changes nothing


def test_stop_then_restore_round_trip(env: Env) -> None:
    env.create("nb", instance_type="ml.p2.xlarge")
    resource = env.scan()["nb"]

    result = stop_now(env.handlers.stopper, resource)

    assert result.outcome is StopOutcome.STOPPED
    assert result.restore == {
        "kind": "aws.sagemaker-notebook",
        "account": ACCOUNT_ID,
        "region": REGION,
        "notebook_name": "nb",
        "instance_type": "ml.p2.xlarge",
    }
    assert env.status("nb") in {"Stopping", "Stopped"}
    again = stop_now(env.handlers.stopper, resource)
    assert again.outcome is StopOutcome.ALREADY_STOPPED
    assert again.restore is None

    message = env.handlers.stopper.restore(result.restore)

    assert message.startswith(f"started notebook nb in {REGION}")
    assert env.status("nb") in {"Pending", "InService"}
    assert "is already" in env.handlers.stopper.restore(result.restore)


def test_stop_refuses_a_notebook_in_a_transitional_state(env: Env) -> None:
    env.create("updating")
    resource = env.scan()["updating"]
    _set_status("updating", "Updating")

    result = stop_now(env.handlers.stopper, resource)

    assert result.outcome is StopOutcome.REFUSED_STATE
    assert "Updating" in result.message
    assert env.server.calls["sagemaker.StopNotebookInstance"] == 0


def test_stop_and_restore_of_a_deleted_notebook(env: Env) -> None:
    env.create("doomed")
    resource = env.scan()["doomed"]
    env.sagemaker.stop_notebook_instance(NotebookInstanceName="doomed")
    env.sagemaker.delete_notebook_instance(NotebookInstanceName="doomed")

    result = stop_now(env.handlers.stopper, resource)

    assert result.outcome is StopOutcome.NOT_FOUND
    assert env.server.calls["sagemaker.StopNotebookInstance"] == 1  # only the set-up's own
    with pytest.raises(RestoreFailed, match="no longer exists"):
        env.handlers.stopper.restore(
            {"kind": "aws.sagemaker-notebook", "region": REGION, "notebook_name": "doomed"}
        )
