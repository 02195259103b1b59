"""The policy file: pydantic models, validated whole before any cloud is called.

Errors name the file, the rule and the field. Deployment-specific values can be overridden from
the environment: JANITOR_POLICY (which file), JANITOR_STATE_URL, JANITOR_REGIONS.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from janitor import checkpoints as ckpt
from janitor.clouds import registry
from janitor.model import Cloud

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhmw])\s*$")
# The longest duration a policy may hold. Dates are computed from durations (a stop date is the
# streak start plus stop_after), so an unbounded one overflows `datetime` mid-run instead of here.
MAX_DURATION = timedelta(days=3650)
_UNITS = {
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def parse_duration(value: object) -> timedelta:
    """`30d`, `12h`, `90m`, `2w`; a bare number is days. Negative, zero, not a number (NaN,
    infinite) and longer than `MAX_DURATION` are refused."""
    too_long = f"{value!r}: a duration must be at most {format_duration(MAX_DURATION)}"
    try:
        if isinstance(value, timedelta):
            result = value
        elif isinstance(value, bool):
            raise ValueError("a duration like 30d or 12h is required")  # noqa: TRY004 (pydantic)
        elif isinstance(value, int | float):
            if not math.isfinite(value):
                raise ValueError(f"{value!r} is not a duration: use a number of days, or 30d")
            result = timedelta(days=value)
        elif isinstance(value, str):
            match = _DURATION.match(value)
            if not match:
                raise ValueError(
                    f"{value!r} is not a duration: use a positive number with d, h, m or w "
                    "(30d, 12h)"
                )
            result = float(match.group(1)) * _UNITS[match.group(2)]
        else:
            raise ValueError("a duration like 30d or 12h is required")  # noqa: TRY004 (pydantic)
    except OverflowError:
        raise ValueError(too_long) from None
    if result <= timedelta(0):
        raise ValueError(f"{value!r}: a duration must be positive")
    if result > MAX_DURATION:
        raise ValueError(too_long)
    return result


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]

DEFAULT_OWNER_TAGS = ("owner", "Owner", "owner-email", "created-by")

# us-east-1, eu-central-2, ap-southeast-4, us-gov-west-1, cn-north-1, us-isob-east-1
_AWS_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")
# arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME (partitions aws, aws-cn, aws-us-gov, aws-iso...)
_ROLE_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:iam::\d{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}$")


def check_aws_region(value: str) -> str:
    if not _AWS_REGION.match(value):
        raise ValueError(f"{value!r} is not an AWS region name (like us-east-1)")
    return value


AwsRegion = Annotated[str, AfterValidator(check_aws_region)]

# GCP project ids: 6 to 30 characters, lower-case letters, digits and hyphens, starting with a
# letter and not ending with a hyphen.
_GCP_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
# Azure subscription ids are GUIDs.
_AZURE_SUBSCRIPTION = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
# GCP regions (us-central1, europe-west4) and Azure regions (eastus, westeurope, eastus2):
# non-empty lower-case names.
_CLOUD_REGION = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$|^[a-z]$")
# example.com, corp.example.co.uk
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.IGNORECASE
)


def _pattern(regex: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not regex.match(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


# `strict`: an id is a string in YAML; a bare number (a YAML int) is refused, not coerced.
GcpProject = Annotated[
    str,
    Field(strict=True),
    _pattern(_GCP_PROJECT, "a GCP project id (6-30 of a-z, 0-9 and -, like my-project-123)"),
]
AzureSubscription = Annotated[
    str,
    Field(strict=True),
    _pattern(
        _AZURE_SUBSCRIPTION,
        "an Azure subscription id (a GUID like 00000000-0000-0000-0000-000000000000)",
    ),
]
CloudRegion = Annotated[
    str,
    Field(strict=True),
    _pattern(_CLOUD_REGION, "a region name (lower case, like us-central1 or westeurope)"),
]
# A threshold is compared with measured values: NaN would make every comparison false.
Threshold = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Strict):
    notify_after: Duration = timedelta(days=30)
    stop_after: Duration = timedelta(days=60)
    warning: Duration = timedelta(days=7)
    owner_tags: tuple[str, ...] = DEFAULT_OWNER_TAGS
    exempt_tag: str = "janitor-exempt"
    max_stops_per_run: int = Field(default=25, ge=0)


class GpuMetric(_Strict):
    """A GPU utilisation metric published from inside the guest (an agent such as Telegraf's
    `nvidia_smi` input writing to Azure Monitor custom metrics), in percent."""

    namespace: str = Field(min_length=1)  # e.g. "Telegraf/nvidia_smi"
    name: str = Field(min_length=1)  # e.g. "utilization_gpu"


def _check_pattern(value: str) -> str:
    problem = ckpt.pattern_problem(value)
    if problem:
        raise ValueError(problem)
    return value


CheckpointPattern = Annotated[str, Field(strict=True), AfterValidator(_check_pattern)]


class CheckpointBucket(_Strict):
    """A bucket (Azure: `account/container`) a checkpoint rule lists, beside the tagged ones."""

    name: str = Field(strict=True, min_length=1)  # checked against the kind's store below
    prefix: str = Field(default="", strict=True, max_length=ckpt.MAX_PREFIX)


class CheckpointOptions(_Strict):
    """`checkpoints:` of the checkpoint kinds (`KindSpec.options` has "checkpoints")."""

    buckets: tuple[CheckpointBucket, ...] = ()
    file_patterns: tuple[CheckpointPattern, ...] = ckpt.DEFAULT_FILE_PATTERNS
    dir_patterns: tuple[CheckpointPattern, ...] = ckpt.DEFAULT_DIR_PATTERNS
    keep_latest: int = Field(default=ckpt.DEFAULT_KEEP_LATEST, strict=True, ge=1, le=1000)
    # A tier (cold, archive, deep-archive) or the store's own class name; checked per store.
    storage_class: str = Field(default=ckpt.DEFAULT_STORAGE_CLASS, strict=True, min_length=1)

    @model_validator(mode="after")
    def _recognises_something(self) -> CheckpointOptions:
        if not self.file_patterns and not self.dir_patterns:
            raise ValueError(
                "file_patterns and dir_patterns are both empty: nothing is a checkpoint"
            )
        return self

    def problems(self, cloud: Cloud) -> list[str]:
        """What does not fit the kind's object store, one line each."""
        store = ckpt.store_of(cloud)
        found: list[str] = []
        try:
            ckpt.target_class(store, self.storage_class)
        except ValueError as exc:
            found.append(f"checkpoints.storage_class: {exc}")
        seen: dict[str, list[tuple[int, str]]] = {}
        for index, bucket in enumerate(self.buckets):
            where = f"checkpoints.buckets[{index}]"
            problem = ckpt.bucket_problem(store, bucket.name)
            if problem:
                found.append(f"{where}.name: {problem}")
            for other, prefix in seen.get(bucket.name, []):
                if bucket.prefix.startswith(prefix) or prefix.startswith(bucket.prefix):
                    found.append(
                        f"{where}: {bucket.name} prefix {bucket.prefix!r} overlaps "
                        f"checkpoints.buckets[{other}] (prefix {prefix!r}): runs would be "
                        "listed twice"
                    )
            seen.setdefault(bucket.name, []).append((index, bucket.prefix))
        return found


class RuleModel(_Strict):
    name: str = Field(min_length=1)
    kind: str
    enabled: bool = True
    action: str | None = None  # None: the kind's own action; "notify-only" never stops
    notify_after: Duration | None = None
    stop_after: Duration | None = None
    warning: Duration | None = None
    lookback: Duration | None = None
    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    regions: tuple[str, ...] | None = None  # checked against the kind's cloud below
    owner_tags: tuple[str, ...] | None = None
    # Kinds that declare "gpu_metric" in their KindSpec.options only.
    gpu_metric: GpuMetric | None = None
    # Kinds that declare "checkpoints" in their KindSpec.options only.
    checkpoints: CheckpointOptions | None = None

    @field_validator("regions")
    @classmethod
    def _regions_of_the_kinds_cloud(
        cls, value: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        kind = info.data.get("kind")  # validated before `regions`; absent when it was refused
        if value is None or kind is None:
            return value
        for region in value:
            if registry.get(kind).cloud is Cloud.AWS:
                check_aws_region(region)
            elif not _CLOUD_REGION.match(region):
                raise ValueError(f"{region!r} is not a region name (lower case, like us-central1)")
        return value

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        try:
            registry.get(value)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        return value

    @model_validator(mode="after")
    def _fits_kind(self) -> RuleModel:
        spec = registry.get(self.kind)
        unknown = sorted(set(self.thresholds) - set(spec.thresholds))
        if unknown:
            allowed = ", ".join(sorted(spec.thresholds)) or "none"
            raise ValueError(
                f"thresholds {unknown} are not known for {self.kind} (allowed: {allowed})"
            )
        if self.gpu_metric is not None and "gpu_metric" not in spec.options:
            raise ValueError(f"gpu_metric is not known for {self.kind}")
        if self.checkpoints is not None:
            if "checkpoints" not in spec.options:
                raise ValueError(f"checkpoints is not known for {self.kind}")
            problems = self.checkpoints.problems(spec.cloud)
            if problems:
                raise ValueError("; ".join(problems))
        if self.action not in (None, spec.action, *spec.actions, "notify-only"):
            allowed = ", ".join(repr(a) for a in (spec.action, *spec.actions))
            raise ValueError(
                f"action {self.action!r} is not available for {self.kind} "
                f"(use {allowed} or 'notify-only')"
            )
        return self


class AwsAccount(_Strict):
    name: str | None = None
    role_arn: str | None = None  # assumed from the base credentials; None: the base credentials
    external_id: str | None = None

    @field_validator("role_arn")
    @classmethod
    def _role_arn(cls, value: str | None) -> str | None:
        if value is not None and not _ROLE_ARN.match(value):
            raise ValueError(
                f"{value!r} is not an IAM role ARN (like arn:aws:iam::123456789012:role/janitor)"
            )
        return value


class AwsSettings(_Strict):
    regions: tuple[AwsRegion, ...] = ()  # empty: the session's region
    accounts: tuple[AwsAccount, ...] = ()  # empty: the account of the base credentials
    max_concurrency: int = Field(default=8, ge=1, le=64)


class GcpSettings(_Strict):
    """Accepted and validated now; used once GCP kinds exist."""

    projects: tuple[GcpProject, ...] = ()  # empty: the project of the default credentials
    regions: tuple[CloudRegion, ...] = ()  # empty: every region
    max_concurrency: int = Field(default=8, ge=1, le=64)


class AzureSettings(_Strict):
    """Accepted and validated now; used once Azure kinds exist."""

    subscriptions: tuple[AzureSubscription, ...] = ()  # empty: those of the credentials
    regions: tuple[CloudRegion, ...] = ()  # empty: every region
    max_concurrency: int = Field(default=8, ge=1, le=64)


class OwnersSettings(_Strict):
    """How an owner tag or label value becomes a destination, for every cloud
    (`lifecycle.owner_destination`): `map` first, then `value@domain`, else the value."""

    map: dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]] = Field(
        default_factory=dict
    )
    domain: str | None = None

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is not None and not _DOMAIN.match(value):
            raise ValueError(f"{value!r} is not a domain name (like example.com)")
        return value


class SlackPolicy(_Strict):
    """Channels only: the token and webhook URL are secrets and come from the environment."""

    fallback_channel: str | None = (
        None  # owners that cannot be reached; JANITOR_SLACK_FALLBACK_CHANNEL
    )
    summary_channel: str | None = None  # the run summary (default: the fallback channel)


class NotifierSettings(_Strict):
    # auto: Slack when SLACK_BOT_TOKEN or JANITOR_SLACK_WEBHOOK_URL is set, else the console.
    type: Literal["auto", "console", "slack"] = "auto"
    slack: SlackPolicy = SlackPolicy()
    # The console reaches nobody, so its notices and warnings do not count and nothing is ever
    # stopped. `type: console` with `counts_as_delivery: true` is a team saying it wants stops
    # without messages.
    counts_as_delivery: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """`notifier: slack` is `notifier: {type: slack}`."""
        return {"type": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _counts_only_for_the_console(self) -> NotifierSettings:
        if self.counts_as_delivery and self.type != "console":
            raise ValueError(
                "counts_as_delivery is for `type: console` only (Slack deliveries always count)"
            )
        return self

    def describe(self) -> str:
        """One line for `janitor validate`: who is told, and whether stops can happen."""
        if self.type == "console":
            if self.counts_as_delivery:
                return (
                    "notifier: console, counts_as_delivery: true: notices and warnings are only "
                    "printed, and stops follow without any message to the owner"
                )
            return (
                "notifier: console: digests are printed, which reaches nobody; stops are held "
                "(set counts_as_delivery: true to stop without messages)"
            )
        slack = "Slack (SLACK_BOT_TOKEN, or JANITOR_SLACK_WEBHOOK_URL)"
        if self.type == "slack":
            return f"notifier: {slack}, required"
        return (
            f"notifier: auto: {slack} when configured; otherwise digests are printed and stops "
            "are held until a notifier is configured"
        )


class PolicyModel(_Strict):
    version: Literal[1] = 1
    state_url: str | None = Field(default=None, min_length=1)  # None: the user's data directory
    defaults: Defaults = Defaults()
    aws: AwsSettings = AwsSettings()
    gcp: GcpSettings = GcpSettings()
    azure: AzureSettings = AzureSettings()
    owners: OwnersSettings = OwnersSettings()
    notifier: NotifierSettings = NotifierSettings()
    # Not Field(min_length=1): pydantic checks the length of the items that validated, so one
    # broken rule would also report a spurious "at least 1 item". This runs only when all did.
    rules: tuple[RuleModel, ...]

    @field_validator("rules")
    @classmethod
    def _not_empty(cls, value: tuple[RuleModel, ...]) -> tuple[RuleModel, ...]:
        if not value:
            raise ValueError("at least one rule is required")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> PolicyModel:
        seen: dict[str, int] = {}
        for index, rule in enumerate(self.rules):
            if rule.name in seen:
                raise ValueError(
                    f"rule {rule.name!r} (rules[{index}]): name is already used by "
                    f"rules[{seen[rule.name]}]"
                )
            seen[rule.name] = index
        return self


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule with every default resolved: what the pipeline and the lifecycle read."""

    name: str
    kind: str
    cloud: Cloud
    action: str
    notify_after: timedelta
    stop_after: timedelta
    warning: timedelta
    lookback: timedelta
    thresholds: Mapping[str, float]
    regions: tuple[str, ...] | None
    owner_tags: tuple[str, ...]
    exempt_tag: str
    gpu_metric: GpuMetric | None = None  # the in-guest GPU metric, for kinds that read one
    # The checkpoint kinds' options, defaults filled in; None for every other kind.
    checkpoints: CheckpointOptions | None = None

    @property
    def may_stop(self) -> bool:
        return self.action != "notify-only"


@dataclass(frozen=True, slots=True)
class Policy:
    source: str
    state_url: str | None
    rules: tuple[Rule, ...]
    aws: AwsSettings
    notifier: NotifierSettings
    max_stops_per_run: int
    gcp: GcpSettings = GcpSettings()
    azure: AzureSettings = AzureSettings()
    owners: OwnersSettings = OwnersSettings()

    def clouds(self) -> set[Cloud]:
        return {rule.cloud for rule in self.rules}

    def max_concurrency(self, cloud: Cloud) -> int:
        """How many of `cloud`'s scopes may be read at once (its own section's limit)."""
        settings: AwsSettings | GcpSettings | AzureSettings = self.aws
        if cloud is Cloud.GCP:
            settings = self.gcp
        elif cloud is Cloud.AZURE:
            settings = self.azure
        return settings.max_concurrency


class PolicyError(Exception):
    """A policy that cannot be used; the message is one or more complete lines for the user."""


def _resolve(model: PolicyModel, source: str) -> Policy:
    d = model.defaults
    rules: list[Rule] = []
    problems: list[str] = []
    for index, raw in enumerate(model.rules):
        spec = registry.get(raw.kind)
        notify_after = raw.notify_after or d.notify_after
        stop_after = raw.stop_after or d.stop_after
        warning = raw.warning or d.warning
        where = f"{source}: rule {raw.name!r} (rules[{index}])"
        if stop_after <= notify_after:
            problems.append(
                f"{where}: stop_after ({format_duration(stop_after)}) must be later "
                f"than notify_after ({format_duration(notify_after)})"
            )
        if warning > stop_after - notify_after:
            problems.append(
                f"{where}: warning ({format_duration(warning)}) must fit between "
                f"notify_after and stop_after"
            )
        if raw.lookback is not None and raw.lookback < stop_after:
            problems.append(
                f"{where}: lookback ({format_duration(raw.lookback)}) is shorter than stop_after "
                f"({format_duration(stop_after)}): the evidence read could never show the idle "
                "time a stop needs"
            )
        lookback = raw.lookback or stop_after + timedelta(days=14)
        lookback = min(lookback, spec.max_lookback)
        if not raw.enabled:
            continue
        rules.append(
            Rule(
                name=raw.name,
                kind=raw.kind,
                cloud=spec.cloud,
                action=raw.action or spec.action,
                notify_after=notify_after,
                stop_after=stop_after,
                warning=warning,
                lookback=lookback,
                thresholds={**spec.thresholds, **raw.thresholds},
                regions=raw.regions,
                owner_tags=raw.owner_tags or d.owner_tags,
                exempt_tag=d.exempt_tag,
                gpu_metric=raw.gpu_metric,
                checkpoints=raw.checkpoints
                or (CheckpointOptions() if "checkpoints" in spec.options else None),
            )
        )
    if problems:
        raise PolicyError("\n".join(problems))
    if not rules:
        raise PolicyError(f"{source}: every rule is disabled; nothing to do")
    return Policy(
        source=source,
        state_url=model.state_url,
        rules=tuple(rules),
        aws=model.aws,
        notifier=model.notifier,
        max_stops_per_run=d.max_stops_per_run,
        gcp=model.gcp,
        azure=model.azure,
        owners=model.owners,
    )


def _format_validation_error(exc: ValidationError, data: Any, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = source
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            index = loc[1]
            rules = data.get("rules") if isinstance(data, dict) else None
            name = None
            if isinstance(rules, list) and index < len(rules) and isinstance(rules[index], dict):
                name = rules[index].get("name")
            where += f": rule {name!r} (rules[{index}])" if name else f": rules[{index}]"
            loc = loc[2:]
        field = ".".join(
            str(part) for part in loc if str(part) and not str(part).startswith("function-")
        )
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{where}: {field or '(policy)'}: {msg}" if field else f"{where}: {msg}")
    return "\n".join(lines)


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    data = dict(data)
    if env.get("JANITOR_STATE_URL"):
        data["state_url"] = env["JANITOR_STATE_URL"]
    if env.get("JANITOR_REGIONS"):
        regions = [r.strip() for r in env["JANITOR_REGIONS"].split(",") if r.strip()]
        for region in regions:
            try:
                check_aws_region(region)
            except ValueError as exc:
                raise PolicyError(f"JANITOR_REGIONS: {exc}") from None
        current = data.get("aws")
        if current is None or isinstance(current, dict):  # else validation reports the type
            data["aws"] = {**(current or {}), "regions": regions}
    return data


def parse_policy(text: str, source: str, env: Mapping[str, str] | None = None) -> Policy:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f": line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PolicyError(f"{source}{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy is a YAML mapping with a 'rules' list")
    data = _apply_env(data, os.environ if env is None else env)
    try:
        model = PolicyModel.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_format_validation_error(exc, data, source)) from None
    return _resolve(model, source)


DEFAULT_POLICY = "<embedded default policy>"


def default_policy_text() -> str:
    return resources.files("janitor.data").joinpath("default.yaml").read_text(encoding="utf-8")


def load_policy(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Policy:
    """Load from `path`, else $JANITOR_POLICY, else the embedded default policy."""
    environ = os.environ if env is None else env
    chosen = str(path) if path else environ.get("JANITOR_POLICY")
    if not chosen:
        return parse_policy(default_policy_text(), DEFAULT_POLICY, environ)
    try:
        text = Path(chosen).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{chosen}: cannot read policy file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(
            f"{chosen}: not a policy file: not UTF-8 text (byte {exc.start}); "
            "a policy is a YAML file"
        ) from None
    return parse_policy(text, chosen, environ)
