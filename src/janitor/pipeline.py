"""scan -> usage -> decide -> guard -> execute -> report, for every cloud and kind.

`evaluate` only reads (clouds and state). `execute` is the one place with side effects, and a
dry run never reaches it: it stops at the report of what would be done.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from janitor import interrupts, lifecycle
from janitor.clouds import registry
from janitor.clouds.base import KindHandlers, RestoreFailed, Task
from janitor.journal import Journal, Lease
from janitor.model import (
    Action,
    AuditEvent,
    Cloud,
    Decision,
    Finding,
    LifecycleState,
    Resource,
    ResourceRef,
    ScopeError,
    Status,
    StopOutcome,
    StopResult,
    Verdict,
    Window,
)
from janitor.notify.base import Delivery, Digest, Notifier
from janitor.notify.pending import STOP_STAGE, notice_finding, stop_notice
from janitor.notify.render import build_digests, digest_stage
from janitor.policy import OwnersSettings, Policy
from janitor.pricing import monthly_cost_usd
from janitor.report import RunReport
from janitor.state.base import OUTCOME_EVENTS, LockLost, StateStore, intent_run

log = logging.getLogger("janitor")

Progress = Callable[[int, int, str], None]

LOCK_TTL = timedelta(hours=2)


@dataclass
class TaskResult:
    task: Task
    handlers: KindHandlers | None
    findings: list[Finding] = field(default_factory=list)
    error: ScopeError | None = None
    # Parts of the scope the scanner could not read (an unreachable zone): the rest was used.
    partial: list[ScopeError] = field(default_factory=list)


@dataclass
class Evaluation:
    now: datetime
    evidence_until: datetime
    results: list[TaskResult]
    skipped: list[str]
    errors: list[ScopeError]
    priors: dict[str, LifecycleState]
    read_at: datetime = field(default_factory=lambda: _wall_now())  # wall clock of the reads

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.results for f in r.findings]


def discover(policy: Policy) -> tuple[list[Task], list[str], list[ScopeError]]:
    tasks: list[Task] = []
    skipped: list[str] = []
    errors: list[ScopeError] = []
    for cloud in sorted(policy.clouds()):
        t, s, e = registry.provider(cloud).tasks(policy)
        tasks += t
        skipped += s
        errors += e
    return tasks, skipped, errors


def _wall_now() -> datetime:
    return datetime.now(UTC)


def evaluate(
    policy: Policy,
    *,
    now: datetime,
    store: StateStore,
    progress: Progress | None = None,
    tasks: Sequence[Task] | None = None,
) -> Evaluation:
    """Read the clouds and the state; decide. No side effects.

    `now` is the lifecycle clock (`--as-of`); evidence is read up to the present at most, so a
    future `--as-of` forecasts from today's evidence.
    """
    skipped: list[str] = []
    errors: list[ScopeError] = []
    if tasks is None:
        tasks, skipped, errors = discover(policy)
    read_at = _wall_now()
    evidence_until = min(now, read_at)
    results: list[TaskResult] = []
    pools = _pools_per_cloud(policy, tasks)
    try:
        futures = {pools[t.cloud].submit(_scan_task, t, evidence_until): t for t in tasks}
        with interrupts.interruptible():
            for done, future in enumerate(as_completed(futures), start=1):
                results.append(future.result())
                if progress:
                    progress(done, len(tasks), futures[future].label)
    except BaseException:
        for pool in pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        raise
    for pool in pools.values():
        pool.shutdown()
    results.sort(key=lambda r: (r.task.rule.name, r.task.scope_id, r.task.region))

    keys = [f.resource.ref.key for r in results for f in r.findings]
    priors = store.get_states(keys)
    for result in results:
        errors += result.partial
        if result.error is not None:
            errors.append(result.error)
            continue
        result.findings, failed = _decide_all(result, priors, now, policy.owners)
        if failed is not None:
            errors.append(failed)
    return Evaluation(now, evidence_until, results, skipped, errors, priors, read_at)


def _pools_per_cloud(policy: Policy, tasks: Sequence[Task]) -> dict[Cloud, ThreadPoolExecutor]:
    """One pool per cloud, sized by that cloud's own `max_concurrency`: each cloud's scopes are
    read concurrently up to its limit, independently of the other clouds."""
    counts: dict[Cloud, int] = {}
    for task in tasks:
        counts[task.cloud] = counts.get(task.cloud, 0) + 1
    return {
        cloud: ThreadPoolExecutor(
            max_workers=max(1, min(policy.max_concurrency(cloud), count)),
            thread_name_prefix=f"janitor-scan-{cloud.value}",
        )
        for cloud, count in counts.items()
    }


def _scan_task(task: Task, evidence_until: datetime) -> TaskResult:
    """Scan and probe one task. Failures are caught per scope: the rest of the run goes on."""
    try:
        handlers = task.handlers or registry.get(task.rule.kind).build(task.scope, task.rule)
        resources = list(handlers.scanner.scan())
        window = Window.ending(evidence_until, task.rule.lookback)
        verdicts = handlers.probe.usage(resources, window, evidence_until)
    except Exception as exc:  # noqa: BLE001 - recorded against the scope, never swallowed
        return TaskResult(task, None, error=_scope_error(task, exc))
    partial = [
        ScopeError(task.cloud, task.scope_id, task.region, task.rule.kind, line)
        for line in getattr(handlers.scanner, "scan_warnings", ())
    ]
    findings = []
    for resource in resources:
        verdict = verdicts.get(resource.ref.key) or Verdict.unknown(
            resource.ref, "the usage probe gave no verdict"
        )
        # Provisional decision; the real one is made once prior state is loaded.
        placeholder = Decision(resource.ref, Action.NONE, verdict.status, "")
        findings.append(Finding(resource, verdict, placeholder, None, None))
    return TaskResult(task, handlers, findings, partial=partial)


def _scope_error(task: Task, exc: Exception, resource: str | None = None) -> ScopeError:
    """Any failure of one scope (or one resource in it) as the scope's error: the run goes on.
    A failure that is not the cloud's is a bug, logged with its traceback (`failure_message`)."""
    from janitor.clouds.errors import failure_message

    where = f"{task.label}" + (f" ({resource})" if resource else "")
    message = failure_message(exc, where)
    if resource:
        message = f"{resource}: {message}"
    return ScopeError(task.cloud, task.scope_id, task.region, task.rule.kind, message)


def _decide_all(
    result: TaskResult,
    priors: Mapping[str, LifecycleState],
    now: datetime,
    owners: OwnersSettings,
) -> tuple[list[Finding], ScopeError | None]:
    """Decide and describe one task's findings. A resource that cannot be decided is left out
    (and named in the scope's error); a failed `describe` fails the whole scope."""
    task = result.task
    rule = task.rule
    decided: list[Finding] = []
    broken: list[ScopeError] = []
    for f in result.findings:
        try:
            decision = lifecycle.decide(
                resource=f.resource,
                verdict=f.verdict,
                prior=priors.get(f.resource.ref.key),
                rule=rule,
                now=now,
            )
            owner = lifecycle.owner_destination(
                lifecycle.owner_of(f.resource.tags, rule.owner_tags),
                owner_map=owners.map,
                domain=owners.domain,
            )
        except Exception as exc:  # noqa: BLE001 - recorded against the resource
            broken.append(_scope_error(task, exc, f.resource.name))
            continue
        decided.append(replace(f, decision=decision, owner=owner))
    # Describe only what is not plainly in use: the candidates, and what the report must price.
    assert result.handlers is not None
    candidates = [f.resource for f in decided if f.decision.status is not Status.ACTIVE]
    try:
        described = {r.ref.key: r for r in result.handlers.scanner.describe(candidates)}
        out = []
        for f in decided:
            resource = described.get(f.resource.ref.key, f.resource)
            cost = monthly_cost_usd(resource) if f.decision.status is not Status.ACTIVE else None
            out.append(replace(f, resource=resource, monthly_cost_usd=cost))
    except Exception as exc:  # noqa: BLE001 - recorded against the scope
        return [], _scope_error(task, exc)
    if broken:
        message = "; ".join(e.message for e in broken)
        return out, replace(broken[0], message=message)
    return out, None


def guard(findings: Sequence[Finding], *, max_stops: int, kill_switch: bool) -> list[Finding]:
    """Caps and the kill switch: may demote a stop, never promote anything."""
    out = []
    stops = 0
    for f in findings:
        if f.decision.action is Action.STOP:
            reason = None
            if kill_switch:
                reason = "stop held: JANITOR_KILL_SWITCH is set"
            elif stops >= max_stops:
                reason = f"stop deferred: the per-run cap of {max_stops} stops was reached"
            else:
                stops += 1
            if reason:
                f = replace(f, decision=replace(f.decision, action=Action.SKIP, reason=reason))
        out.append(f)
    return out


def kill_switch_on(environ: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get("JANITOR_KILL_SWITCH", "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def scan(
    policy: Policy,
    *,
    now: datetime,
    store: StateStore,
    progress: Progress | None = None,
    tasks: Sequence[Task] | None = None,
) -> RunReport:
    ev = evaluate(policy, now=now, store=store, progress=progress, tasks=tasks)
    findings = guard(ev.findings, max_stops=policy.max_stops_per_run, kill_switch=kill_switch_on())
    return RunReport(
        as_of=now,
        dry_run=True,
        command="scan",
        policy_source=policy.source,
        findings=findings,
        errors=ev.errors,
        skipped=ev.skipped,
        delivery_failures=[],
    )


def run(
    policy: Policy,
    *,
    now: datetime,
    store: StateStore,
    notifier: Notifier,
    apply: bool,
    progress: Progress | None = None,
    run_id: str | None = None,
    tasks: Sequence[Task] | None = None,
    lock_ttl: timedelta = LOCK_TTL,
) -> RunReport:
    """One lifecycle pass. Without `apply`: no mutating call, no message, no state written.

    `tasks`: the rule x scope pairs to run (default: discovered from the policy's clouds).
    `lock_ttl`: the run lock's lease, renewed while the run goes on.
    """
    run_id = run_id or uuid.uuid4().hex[:12]
    if not apply:
        report = scan(policy, now=now, store=store, progress=progress, tasks=tasks)
        report.command = "run"
        report.deliveries = [
            f"would send to {d.owner or 'fallback'}: "
            + ", ".join(f"{i.stage.value} {i.finding.resource.name}" for i in d.items)
            for d in build_digests(report.findings, now)
        ]
        report.notes = held_notes(notifier)
        return report
    holder = f"run {run_id} pid {os.getpid()}"
    with store.lock(holder, lock_ttl) as token, Lease(store, token, lock_ttl) as lease:
        journal = Journal(store, run_id=run_id, now=now, lease=lease)
        unsettled, errors = reconcile(journal, policy, tasks=tasks)
        ev = evaluate(policy, now=now, store=store, progress=progress, tasks=tasks)
        ev.errors[:0] = errors
        interrupts.check()
        findings = guard(
            _hold_unsettled(ev.findings, unsettled),
            max_stops=policy.max_stops_per_run,
            kill_switch=kill_switch_on(),
        )
        return _execute(policy, ev, findings, journal=journal, notifier=notifier)


def _execute(
    policy: Policy,
    ev: Evaluation,
    findings: list[Finding],
    *,
    journal: Journal,
    notifier: Notifier,
) -> RunReport:
    """The one place with side effects: stops, deliveries, state and audit.

    Committed as it goes (`Journal`): each stop's intent and recipe before the mutating call,
    its outcome and lifecycle state right after; each digest's delivery and the state of what
    it delivered right after it was sent. Decisions, errors and the run summary are written
    at the end. A signal (`interrupts`) ends the run between two actions.
    """
    now = ev.now
    run_id = journal.run_id
    audit: list[AuditEvent] = []

    def record(event: str, f: Finding | None, **detail: Any) -> None:
        key = f.resource.ref.key if f else ""
        name = f.resource.name if f else ""
        audit.append(AuditEvent(now, run_id, event, key, name, detail))

    def commit_state(f: Finding, *, delivered: bool) -> None:
        key = f.resource.ref.key
        prior = ev.priors.get(key)
        state = lifecycle.next_state(
            prior,
            f.decision,
            key=key,
            owner=f.owner,
            delivered=delivered,
            stopped=f.outcome in (StopOutcome.STOPPED, StopOutcome.ALREADY_STOPPED),
            now=now,
        )
        if f.outcome is StopOutcome.NOT_FOUND or state is None:
            if prior is not None:
                journal.delete_state(key)
        elif state != prior:
            journal.put_state(state)

    by_key = {f.resource.ref.key: f for f in findings}
    handlers_of = {f.resource.ref.key: r for r in ev.results for f in r.findings}

    # 1. Stops, each after re-checking idleness against the cloud; each one recorded before
    # the next begins.
    failures: list[ScopeError] = []
    stop_keys = [k for k, f in by_key.items() if f.decision.action is Action.STOP]
    for result, group in _group_by_task(stop_keys, handlers_of):
        task = result.task
        stops = _stop_group(result, [by_key[k] for k in group], ev, now, journal)
        for key, outcome, recipe in stops:
            f = by_key[key]
            f = by_key[key] = replace(f, outcome=outcome.outcome, outcome_message=outcome.message)
            journal.outcome(
                f,
                action=task.rule.action,
                outcome=outcome.outcome.value,
                message=outcome.message,
                restore=recipe,
            )
            commit_state(f, delivered=False)
            if outcome.outcome is StopOutcome.FAILED:
                message = f"{f.resource.name}: stop failed: {outcome.message}"
                failures.append(
                    ScopeError(task.cloud, task.scope_id, task.region, task.rule.kind, message)
                )
            interrupts.check()  # this action is recorded: a signal may end the run here

    # 2. One digest per owner: notices, warnings, stops done (and stop notices still owed).
    def on_delivered(keys: frozenset[str]) -> None:
        # What a delivered digest announced is on record before the next one is sent.
        for key in keys:
            if key in by_key and key not in journal.written:
                commit_state(by_key[key], delivered=True)

    delivered = deliver_digests(
        list(by_key.values()), now, journal=journal, notifier=notifier, on_delivered=on_delivered
    )
    delivered_keys = delivered.keys
    delivery_failures = delivered.failures
    deliveries = delivered.lines
    digests = delivered.digests

    # 3. Lifecycle state and the audit of every decision.
    for key, f in by_key.items():
        d = f.decision
        if key not in journal.written:
            commit_state(f, delivered=key in delivered_keys)
        stage = digest_stage(f)
        record(
            "decision",
            f,
            action=d.action.value,
            status=d.status.value,
            reason=d.reason,
            idle_days=None if d.idle_days is None else round(d.idle_days, 2),
            stop_due=d.stop_due.isoformat() if d.stop_due else None,
            delivered=(key in delivered_keys) if stage else None,
            evidence=f.verdict.evidence,
            confidence=f.verdict.confidence.value,
            monthly_cost_usd=f.monthly_cost_usd,
            owner=f.owner,
        )
    errors = ev.errors + failures
    for e in errors:
        record(
            "error",
            None,
            cloud=e.cloud.value,
            scope=e.scope,
            region=e.region,
            kind=e.kind,
            message=e.message,
        )
    report = RunReport(
        as_of=now,
        dry_run=False,
        command="run",
        policy_source=policy.source,
        findings=list(by_key.values()),
        errors=errors,
        skipped=ev.skipped,
        delivery_failures=delivery_failures,
        deliveries=deliveries,
        notes=held_notes(notifier),
    )

    # 4. The run summary, where the notifier keeps one (an admin or fallback channel).
    lines = [f"error: {e.scope}/{e.region} {e.kind}: {e.message}" for e in errors] + [
        f"not reached: {line}" for line in delivery_failures
    ]
    # A run that had nothing to say sends nothing (a second run the same day is silent).
    summary = None
    if digests or lines:
        try:
            with interrupts.interruptible():
                summary = notifier.summarize(lines, run_figures(report))
        except Exception as exc:  # noqa: BLE001 - the summary is a delivery like any other
            summary = Delivery(False, "summary", _notifier_failure(notifier, exc, "the summary"))
    if summary is not None:
        if not summary.ok:
            delivery_failures.append(f"run summary: not delivered ({summary.detail})")
        record(
            "delivery",
            None,
            owner=None,
            ok=summary.ok,
            destination=summary.destination,
            detail=summary.detail,
            items=[],
            summary=True,
        )
    record(
        "run",
        None,
        findings=len(by_key),
        errors=len(errors),
        delivery_failures=len(delivery_failures),
        policy=policy.source,
    )
    journal.append_many(audit)
    return report


STOPS_HELD = (
    "stops are held until a notifier is configured: the {name} notifier reaches nobody, so no "
    "notice or warning counts as delivered and nothing is stopped (set SLACK_BOT_TOKEN or "
    "JANITOR_SLACK_WEBHOOK_URL; or, to stop without messages, put "
    "`notifier: {{type: console, counts_as_delivery: true}}` in the policy)"
)


def _notifier_failure(notifier: Notifier, exc: Exception, what: str) -> str:
    """One line for the report; the traceback goes to the log. An exception from a notifier
    (a garbled answer, a client bug) is a failed delivery: the run goes on, and exits 1."""
    log.warning("the %s notifier raised while %s", notifier.name, what, exc_info=exc)
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"the {notifier.name} notifier failed: {type(exc).__name__}: {first}".rstrip(": ")


def held_notes(notifier: Notifier) -> list[str]:
    """The report's note when nothing the notifier delivers counts (so no stop can follow)."""
    return [] if notifier.reaches_people else [STOPS_HELD.format(name=notifier.name)]


@dataclass
class Delivered:
    keys: set[str]  # the resources whose stage (notice, warning, stop) reached their owner
    failures: list[str]  # one line per digest not (wholly) delivered
    lines: list[str]  # one line per digest sent
    digests: list[Digest]


def deliver_digests(
    findings: list[Finding],
    now: datetime,
    *,
    journal: Journal,
    notifier: Notifier,
    on_delivered: Callable[[frozenset[str]], None],
) -> Delivered:
    """Send one digest per owner and say which items reached a person.

    - Only a notifier that reaches people (`reaches_people`) delivers: the console's output
      counts for nothing, so no notice or warning is recorded and no stop can follow.
    - Per item: a digest split into several messages that got through in part counts the items
      of the confirmed messages (with the stop date those showed); the rest are sent next run.
    - Stop notices (with their restore command) are kept in the store as owed before anything
      is sent, and forgotten once delivered; one that does not get through is added to the
      owner's digest on every later run until it does. A run killed mid-way loses none.
    - Each digest's delivery event and the state of what it delivered (`on_delivered`) are
      committed before the next digest is sent.
    """
    store = journal.store
    fresh = [f for f in findings if digest_stage(f) is Action.STOP]
    fresh_keys = {f.resource.ref.key for f in fresh}
    # A newer stop of the same resource replaces the notice still owed for the older one.
    owed = [n for n in store.pending_notices() if n.stage == STOP_STAGE]
    owed = [n for n in owed if n.key not in fresh_keys]
    store.put_notices(stop_notice(f, stopped_at=now, attempts=0) for f in fresh)
    attempts = {n.key: n.attempts for n in owed}
    stopped_at = {n.key: n.created_at for n in owed}
    digests = build_digests([*findings, *(notice_finding(n) for n in owed)], now)
    out = Delivered(set(), [], [], digests)
    try:
        with interrupts.interruptible():
            notifier.prepare([d.owner for d in digests])
    except Exception as exc:  # noqa: BLE001 - each digest's delivery says what came of it
        _notifier_failure(notifier, exc, "preparing the digests")
    for digest in digests:
        try:
            with interrupts.interruptible():
                sent = notifier.deliver(digest)
        except Exception as exc:  # noqa: BLE001 - a notifier that raises did not deliver
            detail = _notifier_failure(notifier, exc, f"delivering to {digest.owner}")
            sent = Delivery(False, digest.owner or "fallback", detail)
        got = sent.delivered_keys(digest) if notifier.reaches_people else frozenset()
        out.keys |= got
        names = ", ".join(f"{i.stage.value} {i.finding.resource.name}" for i in digest.items)
        if sent.ok:
            suffix = "" if notifier.reaches_people else " (printed only: does not count)"
            out.lines.append(f"sent to {sent.destination}: {names}{suffix}")
        else:
            part = ""
            if got:
                reached = [i for i in digest.items if i.finding.resource.ref.key in got]
                part = f"; {len(reached)} of {len(digest.items)} delivered, the rest next run"
                names = ", ".join(
                    f"{i.stage.value} {i.finding.resource.name}"
                    for i in digest.items
                    if i.finding.resource.ref.key not in got
                )
            out.failures.append(
                f"{digest.owner or 'unowned resources'}: not reached via {notifier.name}"
                f" ({sent.detail or 'no detail'}{part}): {names}"
            )
        journal.append(
            journal.event(
                "delivery",
                "",
                "",
                owner=digest.owner,
                ok=sent.ok,
                destination=sent.destination,
                detail=sent.detail,
                items=[i.finding.resource.ref.key for i in digest.items],
                delivered=sorted(got),
                counts=notifier.reaches_people,
            )
        )
        stops = [i.finding.resource.ref.key for i in digest.items if i.stage is Action.STOP]
        store.delete_notices(key for key in stops if key in got)
        on_delivered(got)
        interrupts.check()
    # What is still owed: one more attempt counted, the first stop time kept.
    undelivered = [i.finding for d in digests for i in d.items if i.stage is Action.STOP]
    store.put_notices(
        stop_notice(
            f,
            stopped_at=stopped_at.get(f.resource.ref.key, now),
            attempts=attempts.get(f.resource.ref.key, 0) + 1,
        )
        for f in undelivered
        if f.resource.ref.key not in out.keys
    )
    return out


def run_figures(report: RunReport) -> dict[str, str]:
    """The few numbers a run summary leads with."""
    summary = report.summary()
    actions = summary["by_action"]
    stopped = sum(1 for f in report.findings if f.outcome is StopOutcome.STOPPED)
    return {
        "notices": str(actions.get("notify", 0)),
        "warnings": str(actions.get("warn", 0)),
        "stopped": str(stopped),
        "potential savings": f"${summary['potential_monthly_savings_usd']:,.2f}/month",
        "realised savings": f"${summary['realised_monthly_savings_usd']:,.2f}/month",
        "errors": str(len(report.errors)),
        "owners not reached": str(len(report.delivery_failures)),
    }


def _group_by_task(
    keys: Iterable[str], result_of: Mapping[str, TaskResult]
) -> list[tuple[TaskResult, list[str]]]:
    groups: dict[int, tuple[TaskResult, list[str]]] = {}
    for key in keys:
        result = result_of[key]
        groups.setdefault(id(result), (result, []))[1].append(key)
    return list(groups.values())


def _with_scope(recipe: Mapping[str, Any] | None, task: Task) -> dict[str, Any] | None:
    """A stopper's recipe with what `restore` needs to find the kind and scope again."""
    if recipe is None:
        return None
    scope_info = {
        "cloud": task.cloud.value,
        "scope": task.scope_id,
        "region": task.region,
        "role_arn": getattr(task.scope, "role_arn", None),
    }
    return {**recipe, "kind": task.rule.kind, "scope_info": scope_info}


def _stop_group(
    result: TaskResult, findings: list[Finding], ev: Evaluation, now: datetime, journal: Journal
) -> Iterator[tuple[str, StopResult, dict[str, Any] | None]]:
    """Re-check each stop candidate against the cloud as it is now, then stop it.

    The re-check reads fresh evidence (one batched probe call for the task's candidates, up to
    this moment) and, through the stopper's read-only `plan`, the resource's current state and
    tags; the lifecycle decides again on those. Only a confirmed stop reaches `act`, and only
    after its intent and recipe are committed (fenced by the run's lease).

    Yields (key, outcome, recipe) one stop at a time: the caller records each outcome before
    the next stop begins.
    """
    assert result.handlers is not None
    handlers = result.handlers
    task = result.task
    rule = task.rule
    resources: list[Resource] = [f.resource for f in findings]
    # Evidence up to this moment: a long run re-reads what happened since its scan began.
    until = ev.evidence_until + max(_wall_now() - ev.read_at, timedelta(0))
    window = Window.ending(until, rule.lookback)
    try:
        fresh = handlers.probe.usage(resources, window, until)
    except Exception as exc:  # noqa: BLE001 - an unknown re-check means no stop
        line = f"re-check failed, not stopped: {_scope_error(task, exc).message}"
        for f in findings:
            yield f.resource.ref.key, StopResult(StopOutcome.STILL_ACTIVE, line), None
        return
    for f in findings:
        key = f.resource.ref.key
        verdict = fresh.get(key)
        if verdict is None:
            yield key, StopResult(StopOutcome.STILL_ACTIVE, "re-check: no verdict"), None
            continue
        recipe: dict[str, Any] | None = None
        try:
            plan = handlers.stopper.plan(f.resource)
            if plan.refusal is not None:
                yield key, plan.refusal, None
                continue
            again = lifecycle.decide(
                resource=plan.resource,
                verdict=verdict,
                prior=ev.priors.get(key),
                rule=rule,
                now=now,
            )
            if again.action is not Action.STOP:
                outcome = StopResult(
                    StopOutcome.STILL_ACTIVE,
                    f"re-check did not confirm the stop: {again.reason}",
                )
                yield key, outcome, None
                continue
            recipe = _with_scope(plan.recipe, task)
            journal.intent(f, action=rule.action, recipe=recipe)
            outcome = handlers.stopper.act(plan)
        except LockLost:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded against the resource
            message = _scope_error(task, exc).message
            outcome = StopResult(StopOutcome.FAILED, message)
        if outcome.restore is not None:
            recipe = _with_scope(outcome.restore, task)
        elif outcome.outcome not in (StopOutcome.STOPPED, StopOutcome.FAILED):
            recipe = None  # nothing changed: nothing to undo
        yield key, outcome, recipe


class RestoreError(Exception):
    """A restore that cannot be done; the message is one line for the user."""


def restore(
    query: str,
    *,
    policy: Policy,
    store: StateStore,
    now: datetime,
    run_id: str | None = None,
    handlers: KindHandlers | None = None,
) -> str:
    """Undo the last stop of the resource named or identified by `query`.

    `handlers`: used instead of building the recorded kind's handlers in its recorded scope.
    """
    from janitor.clouds.errors import scope_error_message

    run_id = run_id or uuid.uuid4().hex[:12]
    undoable = _undoable_stops(store.stop_events(query))
    if len(undoable) > 1:
        keys = ", ".join(sorted(undoable))
        raise RestoreError(
            f"{query}: matches {len(undoable)} stopped resources ({keys});"
            " name one by its id or full key"
        )
    if not undoable:
        raise RestoreError(f"{query}: no recorded stop to undo (see `janitor history {query}`)")
    ((stop_event, restored),) = undoable.values()
    if restored is not None:
        raise RestoreError(
            f"{query}: already restored on {restored.at:%Y-%m-%d %H:%M} UTC since its last stop"
        )
    recipe: Mapping[str, Any] = stop_event.detail["restore"]
    try:
        if handlers is None:
            handlers = _restore_handlers(recipe, policy)
        message: str = handlers.stopper.restore(recipe)
    except RestoreFailed as exc:
        raise RestoreError(f"{stop_event.name}: cannot restore: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - reported as one line
        line = scope_error_message(exc)
        if line is None:
            raise
        raise RestoreError(f"{stop_event.name}: restore failed: {line}") from None
    store.append(
        AuditEvent(
            now,
            run_id,
            "restore",
            stop_event.key,
            stop_event.name,
            {"message": message, "stopped_at": stop_event.at.isoformat()},
        )
    )
    store.delete_state(stop_event.key)  # it comes back with a fresh streak
    return message


def _undoable_stops(
    events: Sequence[AuditEvent],
) -> dict[str, tuple[AuditEvent, AuditEvent | None]]:
    """Per resource key, from its stop history (newest first): the last stop that can be undone
    (a `stopped` or `failed` outcome with its recipe, or an intent whose outcome was never
    recorded) and the `restore` that already undid it, if any."""
    found: dict[str, tuple[AuditEvent, AuditEvent | None]] = {}
    restored: dict[str, AuditEvent] = {}
    closed: set[tuple[str, str]] = set()  # (key, intent_run) of intents with an outcome
    for event in events:
        key = event.key
        if key in found:
            continue
        if event.event == "restore":
            restored.setdefault(key, event)
            continue
        run = intent_run(event.run_id, event.detail)
        is_open_intent = event.event == "intent" and (key, run) not in closed
        if event.event in OUTCOME_EVENTS:
            closed.add((key, run))
        if (_is_stop(event) or is_open_intent) and event.detail.get("restore"):
            found[key] = (event, restored.get(key))
    return found


def _is_stop(event: AuditEvent) -> bool:
    """An outcome that may have changed the resource: stopped, or a stop that failed midway."""
    return event.event in OUTCOME_EVENTS and event.detail.get("outcome") in ("stopped", "failed")


def _restore_handlers(recipe: Mapping[str, Any], policy: Policy) -> KindHandlers:
    """The recorded kind's handlers, in the scope the stop happened in."""
    kind = str(recipe["kind"])
    spec = registry.get(kind)
    info = recipe["scope_info"]
    provider = registry.provider(Cloud(info["cloud"]))
    rule = next((r for r in policy.rules if r.kind == kind), None)
    if rule is None:
        from janitor.policy import load_policy

        rule = next(r for r in load_policy(None, env={}).rules if r.kind == kind)
    return spec.build(provider.restore_scope(info), rule)


def _hold_unsettled(findings: Sequence[Finding], unsettled: set[str]) -> list[Finding]:
    """No new stop of a resource whose interrupted stop could not be settled yet: its record
    would hide the recipe of the first."""
    out = []
    for f in findings:
        if f.decision.action is Action.STOP and f.resource.ref.key in unsettled:
            reason = "stop held: an earlier, interrupted stop of it is not settled yet"
            f = replace(f, decision=replace(f.decision, action=Action.SKIP, reason=reason))
        out.append(f)
    return out


def reconcile(
    journal: Journal, policy: Policy, *, tasks: Sequence[Task] | None = None
) -> tuple[set[str], list[ScopeError]]:
    """Settle the intents an earlier run left without an outcome (it ended between the
    mutating call and its record): each gets a `reconciled` outcome, `stopped` if the resource
    is gone or stopped now, else `not-stopped`, and its lifecycle state follows.

    An intent whose resource cannot be read now stays open for the next run (a scope error),
    and its key is returned among the unsettled ones.
    `tasks`: their handlers are used for their kind and scope (fakes in tests).
    """
    errors: list[ScopeError] = []
    unsettled: set[str] = set()
    store = journal.store
    for intent in journal.store.open_intents():
        recipe: Mapping[str, Any] = intent.detail.get("restore") or {}
        cloud, kind, scope, region, resource_id = _split_key(intent.key)
        try:
            handlers = _handlers_for(recipe, policy, tasks, (kind, scope, region))
            resource = Resource(
                ResourceRef(cloud, kind, scope, region, resource_id),
                name=intent.name,
                state="unknown",
                created_at=intent.at,
            )
            plan = handlers.stopper.plan(resource)
        except Exception as exc:  # noqa: BLE001 - the intent stays open for the next run
            from janitor.clouds.errors import failure_message

            why: str | None = failure_message(exc, f"reconciling {intent.name}")
        else:
            failed = plan.refusal is not None and plan.refusal.outcome is StopOutcome.FAILED
            why = plan.refusal.message if failed and plan.refusal else None
        if why is not None:
            errors.append(
                ScopeError(
                    cloud,
                    scope,
                    region,
                    kind,
                    f"{intent.name}: cannot tell whether the interrupted stop of "
                    f"{intent.at:%Y-%m-%d %H:%M} UTC happened: {why}",
                )
            )
            unsettled.add(intent.key)
            continue
        refusal = plan.refusal
        gone = refusal is not None and refusal.outcome in (
            StopOutcome.NOT_FOUND,
            StopOutcome.ALREADY_STOPPED,
        )
        if gone:
            message = (
                f"the run of {intent.at:%Y-%m-%d %H:%M} UTC ended before recording its stop;"
                f" {refusal.message if refusal else ''}: stopped"
            )
        else:
            now_state = refusal.message if refusal else f"it is {plan.resource.state} now"
            message = (
                f"the run of {intent.at:%Y-%m-%d %H:%M} UTC ended before recording its stop;"
                f" {now_state}: not stopped"
            )
        journal.append(
            journal.event(
                "reconciled",
                intent.key,
                intent.name,
                action=intent.detail.get("action"),
                outcome="stopped" if gone else "not-stopped",
                message=message,
                intent_run_id=intent.run_id,
                restore=dict(recipe) if gone else None,
            )
        )
        if gone:
            prior = store.get_states([intent.key]).get(intent.key)
            base = prior or LifecycleState(key=intent.key, streak_start=intent.at)
            journal.put_state(replace(base, stopped_at=intent.at))
    return unsettled, errors


def _split_key(key: str) -> tuple[Cloud, str, str, str, str]:
    kind, scope, region, resource_id = key.split("|", 3)
    return Cloud(kind.split(".", 1)[0]), kind, scope, region, resource_id


def _handlers_for(
    recipe: Mapping[str, Any],
    policy: Policy,
    tasks: Sequence[Task] | None,
    where: tuple[str, str, str],
) -> KindHandlers:
    for task in tasks or ():
        if task.handlers is not None and (task.rule.kind, task.scope_id, task.region) == where:
            return task.handlers
    return _restore_handlers(recipe, policy)
