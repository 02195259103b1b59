"""Each cloud's scopes are read up to that cloud's own `max_concurrency`, independently.

In-memory fakes of our own Scanner: each scan counts how many scans of its cloud are in flight
and holds until its cloud's limit is reached (or every scan of that cloud has begun), so that
the peak per cloud is exactly the limit the pipeline allows: a lower peak means a cloud was
held back by another's limit, a higher one that its limit was not honoured.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from tests.unit.test_pipeline import ACCOUNT, KIND, REGION, FakeProbe, FakeStopper, day, gpu_box

from janitor import pipeline
from janitor.clouds.base import KindHandlers, Task
from janitor.model import Cloud, Resource
from janitor.policy import Policy, parse_policy
from janitor.state.sqlite import SqliteStore

# Not a timing assertion: only how long a scan waits for its peers before giving up, so that a
# pipeline that never lets the limit be reached fails instead of hanging.
PATIENCE_SECONDS = 10.0


class InFlight:
    """Counts scans in flight per cloud and the peak of each."""

    def __init__(self, limits: dict[Cloud, int], totals: dict[Cloud, int]) -> None:
        self.limits = limits
        self.totals = totals
        self.current = dict.fromkeys(limits, 0)
        self.started = dict.fromkeys(limits, 0)
        self.peak = dict.fromkeys(limits, 0)
        self.cond = threading.Condition()

    def enter(self, cloud: Cloud) -> None:
        with self.cond:
            self.current[cloud] += 1
            self.started[cloud] += 1
            self.peak[cloud] = max(self.peak[cloud], self.current[cloud])
            self.cond.notify_all()
            self.cond.wait_for(
                lambda: (
                    self.current[cloud] >= self.limits[cloud]
                    or self.started[cloud] == self.totals[cloud]
                ),
                timeout=PATIENCE_SECONDS,
            )

    def leave(self, cloud: Cloud) -> None:
        with self.cond:
            self.current[cloud] -= 1
            self.cond.notify_all()


class CountingScanner:
    def __init__(self, cloud: Cloud, resource: Resource, inflight: InFlight) -> None:
        self.cloud = cloud
        self.resource = resource
        self.inflight = inflight

    def scan(self) -> Iterator[Resource]:
        self.inflight.enter(self.cloud)
        try:
            yield self.resource
        finally:
            self.inflight.leave(self.cloud)

    def describe(self, resources: Sequence[Resource]) -> list[Resource]:
        return list(resources)


def policy_with(aws: int, gcp: int) -> Policy:
    text = (
        f"aws:\n  max_concurrency: {aws}\n"
        f"gcp:\n  max_concurrency: {gcp}\n"
        f"rules:\n  - name: idle-gpu-instances\n    kind: {KIND}\n"
    )
    return parse_policy(text, "test-policy.yaml", env={})


@pytest.mark.parametrize(("aws", "gcp"), [(2, 3), (4, 1)])
def test_each_cloud_is_read_up_to_its_own_limit(tmp_path: Path, aws: int, gcp: int) -> None:
    policy = policy_with(aws, gcp)
    limits = {Cloud.AWS: aws, Cloud.GCP: gcp}
    # Twice each limit plus one: some scans of each cloud wait for a free slot.
    totals = {cloud: 2 * limit + 1 for cloud, limit in limits.items()}
    inflight = InFlight(limits, totals)
    tasks = []
    for cloud, total in totals.items():
        for n in range(total):
            box = gpu_box(f"{cloud.value}-{n}", resource_id=f"i-{cloud.value}-{n}")
            scanner = CountingScanner(cloud, box, inflight)
            handlers = KindHandlers(scanner, FakeProbe(), FakeStopper())
            # The GCP tasks run an AWS rule: only the task's cloud matters to the scheduling.
            tasks.append(Task(policy.rules[0], None, cloud, f"{ACCOUNT}-{n}", REGION, handlers))

    store = SqliteStore(tmp_path / "state.db")
    try:
        ev = pipeline.evaluate(policy, now=day(1), store=store, tasks=tasks)
    finally:
        store.close()

    assert not ev.errors
    assert len(ev.findings) == sum(totals.values())
    assert inflight.started == totals
    assert inflight.peak == limits
