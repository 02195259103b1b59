"""scan -> usage -> decide -> guard -> execute -> report, for every cloud and kind.

`evaluate` only reads (clouds and state). `execute` is the one place with side effects, and a
dry run never reaches it: it stops at the report of what would be done.
"""

from __future__ import annotations

import importlib
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from janitor import lifecycle
from janitor.clouds import registry
from janitor.clouds.base import KindHandlers, RestoreFailed
from janitor.model import (
    Action,
    AuditEvent,
    Cloud,
    Decision,
    Finding,
    LifecycleState,
    Resource,
    ScopeError,
    Status,
    StopOutcome,
    StopResult,
    Window,
)
from janitor.notify.base import Digest, Notifier
from janitor.notify.pending import STOP_STAGE, notice_finding, stop_notice
from janitor.notify.render import build_digests, digest_stage
from janitor.policy import Policy, Rule
from janitor.pricing import monthly_cost_usd
from janitor.report import RunReport
from janitor.state.base import StateStore

Progress = Callable[[int, int, str], None]

# cloud -> provider module: `tasks(policy)` and `restore_scope(info)`.
_PROVIDERS: dict[Cloud, str] = {Cloud.AWS: "janitor.clouds.aws.provider"}

LOCK_TTL = timedelta(hours=2)


@dataclass(frozen=True)
class Task:
    """One rule in one scope (account x region, project, subscription)."""

    rule: Rule
    scope: Any  # the cloud's scope object (e.g. AwsScope), handed to the kind's factory
    cloud: Cloud
    scope_id: str
    region: str
    # Handlers to use instead of building the kind's own from `scope` (in-memory fakes in tests,
    # or a caller that already holds them).
    handlers: KindHandlers | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        return f"{self.rule.kind} {self.scope_id}/{self.region}"


@dataclass
class TaskResult:
    task: Task
    handlers: KindHandlers | None
    findings: list[Finding] = field(default_factory=list)
    error: ScopeError | None = None


@dataclass
class Evaluation:
    now: datetime
    evidence_until: datetime
    results: list[TaskResult]
    skipped: list[str]
    errors: list[ScopeError]
    priors: dict[str, LifecycleState]

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.results for f in r.findings]


def discover(policy: Policy) -> tuple[list[Task], list[str], list[ScopeError]]:
    tasks: list[Task] = []
    skipped: list[str] = []
    errors: list[ScopeError] = []
    for cloud in sorted(policy.clouds()):
        t, s, e = importlib.import_module(_PROVIDERS[cloud]).tasks(policy)
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
    evidence_until = min(now, _wall_now())
    results: list[TaskResult] = []
    workers = max(1, min(policy.aws.max_concurrency, len(tasks)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="janitor-scan") as pool:
        futures = {pool.submit(_scan_task, t, evidence_until): t for t in tasks}
        for done, future in enumerate(as_completed(futures), start=1):
            results.append(future.result())
            if progress:
                progress(done, len(tasks), futures[future].label)
    results.sort(key=lambda r: (r.task.rule.name, r.task.scope_id, r.task.region))

    keys = [f.resource.ref.key for r in results for f in r.findings]
    priors = store.get_states(keys)
    for result in results:
        if result.error:
            errors.append(result.error)
            continue
        result.findings = _decide_all(result, priors, now)
    return Evaluation(now, evidence_until, results, skipped, errors, priors)


def _scan_task(task: Task, evidence_until: datetime) -> TaskResult:
    """Scan and probe one task. Failures are caught per scope: the rest of the run goes on."""
    from janitor.clouds.errors import scope_error_message

    try:
        handlers = task.handlers or registry.get(task.rule.kind).build(task.scope, task.rule)
        resources = list(handlers.scanner.scan())
        window = Window.ending(evidence_until, task.rule.lookback)
        verdicts = handlers.probe.usage(resources, window, evidence_until)
    except Exception as exc:  # noqa: BLE001 - recorded against the scope, never swallowed
        message = scope_error_message(exc)
        if message is None:
            raise
        error = ScopeError(task.cloud, task.scope_id, task.region, task.rule.kind, message)
        return TaskResult(task, None, error=error)
    findings = []
    for resource in resources:
        verdict = verdicts[resource.ref.key]
        # Provisional decision; the real one is made once prior state is loaded.
        placeholder = Decision(resource.ref, Action.NONE, verdict.status, "")
        findings.append(Finding(resource, verdict, placeholder, None, None))
    return TaskResult(task, handlers, findings)


def _decide_all(
    result: TaskResult, priors: Mapping[str, LifecycleState], now: datetime
) -> list[Finding]:
    rule = result.task.rule
    decided: list[Finding] = []
    for f in result.findings:
        decision = lifecycle.decide(
            resource=f.resource,
            verdict=f.verdict,
            prior=priors.get(f.resource.ref.key),
            rule=rule,
            now=now,
        )
        owner = lifecycle.owner_of(f.resource.tags, rule.owner_tags)
        decided.append(replace(f, decision=decision, owner=owner))
    # Describe only what is not plainly in use: the candidates, and what the report must price.
    assert result.handlers is not None
    candidates = [f.resource for f in decided if f.decision.status is not Status.ACTIVE]
    described = {r.ref.key: r for r in result.handlers.scanner.describe(candidates)}
    out = []
    for f in decided:
        resource = described.get(f.resource.ref.key, f.resource)
        cost = monthly_cost_usd(resource) if f.decision.status is not Status.ACTIVE else None
        out.append(replace(f, resource=resource, monthly_cost_usd=cost))
    return out


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
) -> RunReport:
    """One lifecycle pass. Without `apply`: no mutating call, no message, no state written.

    `tasks`: the rule x scope pairs to run (default: discovered from the policy's clouds).
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
    with store.lock(f"run {run_id} pid {os.getpid()}", LOCK_TTL):
        ev = evaluate(policy, now=now, store=store, progress=progress, tasks=tasks)
        findings = guard(
            ev.findings, max_stops=policy.max_stops_per_run, kill_switch=kill_switch_on()
        )
        return _execute(policy, ev, findings, store=store, notifier=notifier, run_id=run_id)


def _execute(
    policy: Policy,
    ev: Evaluation,
    findings: list[Finding],
    *,
    store: StateStore,
    notifier: Notifier,
    run_id: str,
) -> RunReport:
    """The one place with side effects: stops, deliveries, state and audit."""
    now = ev.now
    audit: list[AuditEvent] = []

    def record(event: str, f: Finding | None, **detail: Any) -> None:
        key = f.resource.ref.key if f else ""
        name = f.resource.name if f else ""
        audit.append(AuditEvent(now, run_id, event, key, name, detail))

    by_key = {f.resource.ref.key: f for f in findings}
    handlers_of = {f.resource.ref.key: r for r in ev.results for f in r.findings}

    # 1. Stops, each after re-checking idleness against the cloud.
    failures: list[ScopeError] = []
    stop_keys = [k for k, f in by_key.items() if f.decision.action is Action.STOP]
    for result, group in _group_by_task(stop_keys, handlers_of):
        for key, outcome in _stop_group(result, [by_key[k] for k in group], ev, now).items():
            f = by_key[key]
            by_key[key] = replace(f, outcome=outcome.outcome, outcome_message=outcome.message)
            task = result.task
            recipe = None
            if outcome.restore:
                scope_info = {
                    "cloud": task.cloud.value,
                    "scope": task.scope_id,
                    "region": task.region,
                    "role_arn": getattr(task.scope, "role_arn", None),
                }
                recipe = {**outcome.restore, "kind": task.rule.kind, "scope_info": scope_info}
            record(
                "action",
                f,
                action=task.rule.action,
                outcome=outcome.outcome.value,
                message=outcome.message,
                restore=recipe,
            )
            if outcome.outcome is StopOutcome.FAILED:
                message = f"{f.resource.name}: stop failed: {outcome.message}"
                failures.append(
                    ScopeError(task.cloud, task.scope_id, task.region, task.rule.kind, message)
                )

    # 2. One digest per owner: notices, warnings, stops done (and stop notices still owed).
    delivered = deliver_digests(
        list(by_key.values()), now, store=store, notifier=notifier, record=record
    )
    delivered_keys = delivered.keys
    delivery_failures = delivered.failures
    deliveries = delivered.lines
    digests = delivered.digests

    # 3. Lifecycle state and the audit of every decision.
    for key, f in by_key.items():
        d = f.decision
        state = lifecycle.next_state(
            ev.priors.get(key),
            d,
            key=key,
            owner=f.owner,
            delivered=key in delivered_keys,
            stopped=f.outcome in (StopOutcome.STOPPED, StopOutcome.ALREADY_STOPPED),
            now=now,
        )
        if f.outcome is StopOutcome.NOT_FOUND or state is None:
            if key in ev.priors:
                store.delete_state(key)
        elif state != ev.priors.get(key):
            store.put_state(state)
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
    summary = notifier.summarize(lines, run_figures(report)) if digests or lines else None
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
    store.append_many(audit)
    return report


STOPS_HELD = (
    "stops are held until a notifier is configured: the {name} notifier reaches nobody, so no "
    "notice or warning counts as delivered and nothing is stopped (set SLACK_BOT_TOKEN or "
    "JANITOR_SLACK_WEBHOOK_URL; or, to stop without messages, put "
    "`notifier: {{type: console, counts_as_delivery: true}}` in the policy)"
)


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
    store: StateStore,
    notifier: Notifier,
    record: Callable[..., None],
) -> Delivered:
    """Send one digest per owner and say which items reached a person.

    - Only a notifier that reaches people (`reaches_people`) delivers: the console's output
      counts for nothing, so no notice or warning is recorded and no stop can follow.
    - Per item: a digest split into several messages that got through in part counts the items
      of the confirmed messages (with the stop date those showed); the rest are sent next run.
    - Stop notices (with their restore command) that do not get through are kept in the store
      and added to the owner's digest on every later run until one does.
    """
    owed = [n for n in store.pending_notices() if n.stage == STOP_STAGE]
    fresh_stops = {f.resource.ref.key for f in findings if digest_stage(f) is Action.STOP}
    # A newer stop of the same resource replaces the notice still owed for the older one.
    owed = [n for n in owed if n.key not in fresh_stops]
    attempts = {n.key: n.attempts for n in owed}
    stopped_at = {n.key: n.created_at for n in owed}
    digests = build_digests([*findings, *(notice_finding(n) for n in owed)], now)
    out = Delivered(set(), [], [], digests)
    notifier.prepare([d.owner for d in digests])
    for digest in digests:
        sent = notifier.deliver(digest)
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
        record(
            "delivery",
            None,
            owner=digest.owner,
            ok=sent.ok,
            destination=sent.destination,
            detail=sent.detail,
            items=[i.finding.resource.ref.key for i in digest.items],
            delivered=sorted(got),
            counts=notifier.reaches_people,
        )
    stops = [i.finding for d in digests for i in d.items if i.stage is Action.STOP]
    store.delete_notices(f.resource.ref.key for f in stops if f.resource.ref.key in out.keys)
    store.put_notices(
        stop_notice(
            f,
            stopped_at=stopped_at.get(f.resource.ref.key, now),
            attempts=attempts.get(f.resource.ref.key, 0) + 1,
        )
        for f in stops
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


def _stop_group(
    result: TaskResult, findings: list[Finding], ev: Evaluation, now: datetime
) -> dict[str, StopResult]:
    """Re-check idleness for a task's stop candidates (one batched probe call), then stop."""
    from janitor.clouds.errors import scope_error_message

    assert result.handlers is not None
    rule = result.task.rule
    resources: list[Resource] = [f.resource for f in findings]
    window = Window.ending(ev.evidence_until, rule.lookback)
    outcomes: dict[str, StopResult] = {}
    try:
        fresh = result.handlers.probe.usage(resources, window, ev.evidence_until)
    except Exception as exc:  # noqa: BLE001 - an unknown re-check means no stop
        message = scope_error_message(exc)
        if message is None:
            raise
        return {
            f.resource.ref.key: StopResult(
                StopOutcome.STILL_ACTIVE, f"re-check failed, not stopped: {message}"
            )
            for f in findings
        }
    for f in findings:
        key = f.resource.ref.key
        verdict = fresh.get(key)
        again = None
        if verdict is not None:
            again = lifecycle.decide(
                resource=f.resource, verdict=verdict, prior=ev.priors.get(key), rule=rule, now=now
            )
        if verdict is None or again is None or again.action is not Action.STOP:
            why = verdict.evidence if verdict else "no verdict"
            outcomes[key] = StopResult(
                StopOutcome.STILL_ACTIVE, f"re-check did not confirm idleness: {why}"
            )
            continue
        try:
            outcomes[key] = result.handlers.stopper.stop(f.resource)
        except Exception as exc:  # noqa: BLE001 - recorded against the resource
            message = scope_error_message(exc)
            if message is None:
                raise
            outcomes[key] = StopResult(StopOutcome.FAILED, message)
    return outcomes


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
    recipe: Mapping[str, Any] | None = None
    stop_event: AuditEvent | None = None
    events = [e for e in store.events(match=query, limit=10_000) if e.key]
    # An exact name, id or key wins over a substring of keys (`i-1` must not mean `i-10`), and
    # the query must come down to one stopped resource.
    exact = [e for e in events if query in (e.name, e.key, e.key.rsplit("|", 1)[-1])]
    events = exact or events
    stopped = sorted({e.key for e in events if _is_stop(e)})
    if len(stopped) > 1:
        raise RestoreError(
            f"{query}: matches {len(stopped)} stopped resources ({', '.join(stopped)});"
            " name one by its id or full key"
        )
    for event in events:
        if event.key not in stopped:
            continue
        if event.event == "restore":
            raise RestoreError(
                f"{query}: already restored on {event.at:%Y-%m-%d %H:%M} UTC since its last stop"
            )
        if _is_stop(event):
            recipe = event.detail.get("restore")
            stop_event = event
            break
    if recipe is None or stop_event is None:
        raise RestoreError(f"{query}: no recorded stop to undo (see `janitor history {query}`)")
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


def _is_stop(event: AuditEvent) -> bool:
    return event.event == "action" and event.detail.get("outcome") == "stopped"


def _restore_handlers(recipe: Mapping[str, Any], policy: Policy) -> KindHandlers:
    """The recorded kind's handlers, in the scope the stop happened in."""
    kind = str(recipe["kind"])
    spec = registry.get(kind)
    info = recipe["scope_info"]
    provider = importlib.import_module(_PROVIDERS[Cloud(info["cloud"])])
    rule = next((r for r in policy.rules if r.kind == kind), None)
    if rule is None:
        from janitor.policy import load_policy

        rule = next(r for r in load_policy(None, env={}).rules if r.kind == kind)
    return spec.build(provider.restore_scope(info), rule)
