"""Azure Monitor metrics on the local ARM: Metrics - List At Subscription Scope
(`GET /subscriptions/{id}/providers/Microsoft.Insights/metrics`) and Metrics - List for one
resource (`GET {resourceUri}/providers/Microsoft.Insights/metrics`), daily grain (`P1D`).
Shapes: tests/fixtures/azure/monitor/.

Semantics modelled on the REST reference:

* `metricnamespace` is required at subscription scope; `region` picks the resources of that
  region; `metricnames` is a comma-separated list (one `value` item per metric, at most 20);
  `aggregation` a comma-separated list (`average`, `minimum`, `maximum`, `total`, `count`).
* `$filter`: clauses `Name eq 'value'` joined by `and`; `'*'` splits the answer into one series
  per value of that dimension (`Microsoft.ResourceId eq '*'`: one series per resource, its id in
  `metadatavalues`). Without a split, the series of all resources are combined into one.
* `top` (only with a filter; 10 by default): at most that many series are answered, the rest
  silently left out, as the real API does.
* Every day of the `timespan` has a data point; a day without data has `timeStamp` only.
* A namespace that holds no metrics in the region (a custom namespace nobody publishes, such as
  an in-guest agent's), or a metric the namespace does not define, is a 400 `BadRequest`.
* Subscription scope serves only resource types enabled for "Cross Resource metrics"; Azure
  does not document which are. Virtual machines are (`CROSS_RESOURCE_TYPES`); any other type
  answers 400 `Resource type: ... not enabled for Cross Resource metrics` (the message users of
  other metric exporters report for such types) unless a test enables it with
  `enable_cross_resource`. Azure ML online endpoints and deployments are among the refused
  types: the docs do not list them as multi-resource, so janitor reads them per resource.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from janitor.devserver.azure.core import ArmDevServer, ArmError, Reply, Request, ok

DEFAULT_TOP = 10
MAX_METRICS = 20
RESOURCE_ID = "Microsoft.ResourceId"
_AGGREGATIONS = ("average", "minimum", "maximum", "total", "count")

# Platform metrics by namespace (lower case): name -> unit. Seeding adds custom ones.
PLATFORM_METRICS: dict[str, dict[str, str]] = {
    "microsoft.compute/virtualmachines": {
        "Percentage CPU": "Percent",
        "Network In Total": "Bytes",
        "Network Out Total": "Bytes",
        "Network In": "Bytes",
        "Network Out": "Bytes",
        "Available Memory Bytes": "Bytes",
        "Disk Read Bytes": "Bytes",
        "Disk Write Bytes": "Bytes",
    },
    "microsoft.machinelearningservices/workspaces/onlineendpoints": {
        "RequestsPerMinute": "Count",
        "RequestLatency": "MilliSeconds",
        "NetworkBytes": "BytesPerSecond",
        "ConnectionsActive": "Count",
    },
    "microsoft.machinelearningservices/workspaces/onlineendpoints/deployments": {
        "CpuUtilizationPercentage": "Percent",
        "DeploymentCapacity": "Count",
        "GpuUtilizationPercentage": "Percent",
    },
}

# Resource types (lower case) the subscription-scope API serves by default.
CROSS_RESOURCE_TYPES = frozenset({"microsoft.compute/virtualmachines"})


@dataclass
class _Series:
    subscription: str  # lower case
    resource_id: str  # as given
    region: str  # lower case
    namespace: str  # lower case
    metric: str
    dimensions: dict[str, str]
    days: dict[date, float] = field(default_factory=dict)


def _subscription_of(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        raise ValueError(f"{resource_id!r} is not an ARM resource id")
    return parts[1].lower()


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_CLAUSE = re.compile(r"^\s*(?P<name>[\w.]+)\s+eq\s+'(?P<value>[^']*)'\s*$", re.IGNORECASE)


def parse_filter(text: str) -> list[tuple[str, list[str]]]:
    """`A eq 'a1' and B eq 'b1' or B eq 'b2' and C eq '*'` -> [(A, [a1]), (B, [b1, b2]),
    (C, [*])]: `or` joins values of one dimension only."""
    out: dict[str, list[str]] = {}
    order: list[str] = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        names: set[str] = set()
        for alternative in re.split(r"\s+or\s+", part, flags=re.IGNORECASE):
            match = _CLAUSE.match(alternative)
            if match is None:
                raise ArmError(400, "BadRequest", f"Invalid $filter clause: {alternative!r}")
            name = match.group("name")
            key = name.lower()
            names.add(key)
            if key not in out:
                out[key] = []
                order.append(name)
            out[key].append(match.group("value"))
        if len(names) > 1:
            raise ArmError(
                400,
                "BadRequest",
                "The logical or operator cannot separate two different metadata names.",
            )
    return [(name, out[name.lower()]) for name in order]


def _combine(aggregation: str, values: list[float]) -> float:
    if aggregation in ("total", "count"):
        return sum(values)
    if aggregation == "minimum":
        return min(values)
    if aggregation == "maximum":
        return max(values)
    return sum(values) / len(values)


class MonitorService:
    """Daily metric values per resource; mounted by `AzureDevServer`."""

    def __init__(self, server: ArmDevServer) -> None:
        self._server = server
        self._series: list[_Series] = []
        self._index: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], _Series] = {}
        self._metrics: dict[str, dict[str, str]] = {
            ns: dict(names) for ns, names in PLATFORM_METRICS.items()
        }
        self._cross_resource: set[str] = set(CROSS_RESOURCE_TYPES)
        server.route(
            "GET",
            r"/subscriptions/(?P<subscription>[^/]+)/providers/Microsoft\.Insights/metrics",
            "Metrics_ListAtSubscriptionScope",
            self._subscription_scope,
        )
        server.route(
            "GET",
            r"(?P<resource>/subscriptions/(?P<subscription>[^/]+)/resourceGroups/[^/]+/"
            r"providers/.+)/providers/Microsoft\.Insights/metrics",
            "Metrics_List",
            self._resource_scope,
        )

    # -- seeding -------------------------------------------------------------------------------

    def enable_cross_resource(self, resource_type: str) -> None:
        """Let subscription-scope queries serve `resource_type` (e.g.
        "Microsoft.MachineLearningServices/workspaces/onlineEndpoints")."""
        with self._server.lock:
            self._cross_resource.add(resource_type.lower())

    def register_metric(self, namespace: str, metric: str, unit: str = "Count") -> None:
        """Make `metric` known in `namespace` (platform metrics are known already)."""
        with self._server.lock:
            self._metrics.setdefault(namespace.lower(), {})[metric] = unit

    def add_daily(
        self,
        resource_id: str,
        metric: str,
        days: Mapping[date, float],
        *,
        namespace: str = "Microsoft.Compute/virtualMachines",
        region: str = "eastus",
        dimensions: Mapping[str, str] | None = None,
        unit: str | None = None,
    ) -> None:
        """One value per UTC day (the day's maximum, total, average... alike) of `metric` for
        `resource_id` in `region`, optionally for one combination of `dimensions` (e.g.
        {"deployment": "blue"})."""
        ns = namespace.lower()
        with self._server.lock:
            known = self._metrics.setdefault(ns, {})
            if metric not in known:
                known[metric] = unit or "Count"
            dims = dict(dimensions or {})
            key = (resource_id.lower(), ns, metric, tuple(sorted(dims.items())))
            existing = self._index.get(key)
            if existing is not None:
                existing.days.update(days)
                return
            series = _Series(
                _subscription_of(resource_id), resource_id, region.lower(), ns, metric, dims,
                dict(days),
            )  # fmt: skip
            self._series.append(series)
            self._index[key] = series

    # -- handlers ------------------------------------------------------------------------------

    def _window(self, request: Request) -> tuple[datetime, datetime]:
        timespan = request.arg("timespan")
        if timespan is None:
            end = datetime.now(UTC)
            return end - timedelta(hours=1), end
        first, _, last = timespan.partition("/")
        return _parse_time(first), _parse_time(last)

    def _subscription_scope(self, request: Request) -> Reply:
        region = request.arg("region")
        if not region:
            raise ArmError(400, "BadRequest", "The 'region' query parameter is required.")
        namespace = request.arg("metricnamespace")
        if not namespace:
            raise ArmError(400, "BadRequest", "The 'metricnamespace' query parameter is required.")
        subscription = request.params["subscription"].lower()
        with self._server.lock:
            candidates = [
                s
                for s in self._series
                if s.subscription == subscription
                and s.region == region.lower()
                and s.namespace == namespace.lower()
            ]
            types = {_namespace_of(s.resource_id).lower() for s in candidates}
            if not candidates and namespace.lower() in PLATFORM_METRICS:
                types = {namespace.lower()}
            refused = sorted(types - self._cross_resource)
        if refused:
            raise ArmError(
                400,
                "BadRequest",
                f"Resource type: {refused[0]} not enabled for Cross Resource metrics",
            )
        return self._answer(
            request, namespace, candidates, f"/subscriptions/{request.params['subscription']}",
            region,
        )  # fmt: skip

    def _resource_scope(self, request: Request) -> Reply:
        resource = request.params["resource"]
        namespace = request.arg("metricnamespace") or _namespace_of(resource)
        with self._server.lock:
            candidates = [s for s in self._series if s.resource_id.lower() == resource.lower()]
            region = candidates[0].region if candidates else "eastus"
        return self._answer(request, namespace, candidates, resource, region)

    def _answer(
        self,
        request: Request,
        namespace: str,
        candidates: list[_Series],
        scope: str,
        region: str,
    ) -> Reply:
        ns = namespace.lower()
        with self._server.lock:
            known = dict(self._metrics.get(ns, {}))
        if ns not in PLATFORM_METRICS and not candidates:
            raise ArmError(
                400,
                "BadRequest",
                f"Metric namespace '{namespace}' was not found in region '{region}': no metric "
                "is published in it.",
            )
        names = [n.strip() for n in (request.arg("metricnames") or "").split(",") if n.strip()]
        if not names:
            names = sorted(known)[:1]
        if len(names) > MAX_METRICS:
            raise ArmError(400, "BadRequest", f"At most {MAX_METRICS} metrics per request.")
        aggregations = [
            a.strip().lower()
            for a in (request.arg("aggregation") or "average").split(",")
            if a.strip()
        ]
        for aggregation in aggregations:
            if aggregation not in _AGGREGATIONS:
                raise ArmError(400, "BadRequest", f"Unknown aggregation {aggregation!r}.")
        interval = (request.arg("interval") or "PT1M").upper()
        if interval != "P1D":
            raise ArmError(
                400, "BadRequest", f"Only the P1D interval is modelled here, not {interval}."
            )
        start, end = self._window(request)
        filter_text = request.arg("$filter")
        clauses = parse_filter(filter_text) if filter_text else []
        top_text = request.arg("top")
        top = int(top_text) if top_text is not None else DEFAULT_TOP
        days = _days(start, end)
        value: list[dict[str, Any]] = []
        for name in names:
            unit = next((u for n, u in known.items() if n.lower() == name.lower()), None)
            if unit is None:
                raise ArmError(
                    400,
                    "BadRequest",
                    f"Failed to find metric configuration for provider: {namespace}, "
                    f"metric: {name}. Valid metrics: {', '.join(sorted(known))}",
                )
            series = [s for s in candidates if s.metric.lower() == name.lower()]
            timeseries = _split(series, clauses, aggregations, days)
            if clauses:
                timeseries = timeseries[: max(top, 0)]
            value.append(
                {
                    "id": f"{scope}/providers/Microsoft.Insights/metrics/{name}",
                    "type": "Microsoft.Insights/metrics",
                    "name": {"value": name, "localizedValue": name},
                    "displayDescription": f"{name} ({namespace})",
                    "unit": unit,
                    "timeseries": timeseries,
                    "errorCode": "Success",
                }
            )
        return ok(
            {
                "cost": len(days) * max(len(value), 1),
                "timespan": f"{_z(start)}/{_z(end)}",
                "interval": "P1D",
                "value": value,
                "namespace": namespace,
                "resourceregion": region,
            }
        )


def _namespace_of(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    index = [p.lower() for p in parts].index("providers")
    types = parts[index + 2 :: 2]
    return "/".join([parts[index + 1], *types])


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _days(start: datetime, end: datetime) -> list[date]:
    first = start.astimezone(UTC).date()
    out: list[date] = []
    day = first
    while datetime.combine(day, datetime.min.time(), UTC) < end:
        out.append(day)
        day += timedelta(days=1)
    return out


def _split(
    series: Iterable[_Series],
    clauses: list[tuple[str, list[str]]],
    aggregations: list[str],
    days: list[date],
) -> list[dict[str, Any]]:
    """Group the series by the split dimensions (`'*'`), keep those matching the fixed values,
    combine each group per day."""
    split: list[str] = []
    fixed: dict[str, list[str]] = {}
    for name, values in clauses:
        if "*" in values:
            split.append(name)
        else:
            fixed[name.lower()] = [v.lower() for v in values]

    def value_of(s: _Series, name: str) -> str | None:
        if name.lower() == RESOURCE_ID.lower():
            return s.resource_id
        for key, value in s.dimensions.items():
            if key.lower() == name.lower():
                return value
        return None

    groups: dict[tuple[str, ...], list[_Series]] = {}
    for s in series:
        if any((value_of(s, n) or "").lower() not in vs for n, vs in fixed.items()):
            continue
        if not any(day in s.days for day in days):
            continue
        key = tuple(value_of(s, name) or "" for name in split)
        groups.setdefault(key, []).append(s)
    out: list[dict[str, Any]] = []
    for key in sorted(groups):
        members = groups[key]
        data: list[dict[str, Any]] = []
        for day in days:
            point: dict[str, Any] = {"timeStamp": f"{day.isoformat()}T00:00:00Z"}
            found = [m.days[day] for m in members if day in m.days]
            if found:
                for aggregation in aggregations:
                    point[aggregation] = _combine(aggregation, found)
            data.append(point)
        out.append(
            {
                "metadatavalues": [
                    {"name": {"value": name, "localizedValue": name}, "value": value}
                    for name, value in zip(split, key, strict=True)
                ],
                "data": data,
            }
        )
    return out
