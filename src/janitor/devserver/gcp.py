"""A local Google Cloud for tests and the demo: the REST paths janitor calls, on one base URL.

No emulator exists for Compute Engine, Cloud Monitoring, Vertex AI or Notebooks, so
`GcpDevServer` answers them itself on 127.0.0.1 from a daemon thread (`http.server`), with
Google's REST paths, so that one base URL (`JANITOR_GCP_API_ENDPOINT`) serves every API:

* `POST /token`: the OAuth 2.0 JWT-bearer grant google-auth's service-account credentials send.
  The assertion's signature must verify against a key registered with `register_key`; the answer
  is an access token.
* Every other request must carry `Authorization: Bearer` with a token issued here, or a JWT the
  caller signed itself (google-auth's self-signed JWT, audience = the API) whose signature
  verifies against a registered key. Anything else is 401 in Google's error shape.
* Compute Engine v1: `aggregated/instances` (filter `status = RUNNING`, `maxResults` paging,
  a `NO_RESULTS_ON_PAGE` warning for every known zone without instances on the page and an
  `UNREACHABLE` warning for an unreachable zone), `instances.get/stop/start`,
  `zoneOperations.get/wait`. An operation is `RUNNING` when created and `DONE` after
  `operation_polls` polls; the instance goes RUNNING -> STOPPING -> TERMINATED (or
  TERMINATED -> STAGING -> RUNNING) with it.
* Cloud Monitoring v3: `projects.timeSeries.list` with `filter` (`metric.type`,
  `resource.type`, `metric.label(s).*`, `resource.label(s).*`; `=`, `!=`, `one_of`,
  `starts_with`; `AND` of clauses, `OR` within parentheses), `interval.*`,
  `aggregation.alignmentPeriod` + `perSeriesAligner` (ALIGN_NONE/MAX/MIN/MEAN/SUM), paged by
  points (`pageSize`, at most 100,000) as the real API pages.
* Vertex AI v1: Locations API, `endpoints.list/get/patch` (patch: the `updateMask` fields
  traffic_split, display_name, labels), `:deployModel`, `:undeployModel` with long-running
  operations at `GET /v1/{operation name}`; the traffic split is kept as the API documents;
  deployed-model ids are new on every deploy.
* Notebooks v2 (Workbench instances): `instances.list/get`, `:stop`, `:start`, operations.

Every request is counted per operation (`calls`, keyed by Google's method id such as
`compute.instances.aggregatedList`; pages and faulted requests included). Faults:
`disable_service`, `deny`, `rate_limit`, `outage`, `fail_nth`, `fail_next_operation`.

The shapes are those of the recordings in tests/fixtures/gcp/ (checked by
tests/integration/gcp/test_gcp_devserver_shapes.py).
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import os
import re
import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

from janitor.devserver.background import BackgroundServer

COMPUTE = "compute.googleapis.com"
MONITORING = "monitoring.googleapis.com"
AIPLATFORM = "aiplatform.googleapis.com"
NOTEBOOKS = "notebooks.googleapis.com"
_SERVICE_TITLES = {
    COMPUTE: "Compute Engine API",
    MONITORING: "Cloud Monitoring API",
    AIPLATFORM: "Vertex AI API",
    NOTEBOOKS: "Notebooks API",
}
_LINK = "https://www.googleapis.com/compute/v1"
TOKEN_PATH = "/token"
MAX_POINTS_PER_PAGE = 100_000  # Monitoring: pageSize counts points, at most 100,000
MAX_AGGREGATED_RESULTS = 500  # Compute: maxResults at most 500 (and the default)
DEFAULT_ZONES = ("us-central1-a", "us-central1-b", "us-east1-b", "europe-west4-a")
DEFAULT_LOCATIONS = ("us-central1", "us-east1", "europe-west4", "asia-east1")
_JSON = "application/json; charset=UTF-8"
_GRPC_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_GRPC_NUMBERS = {"INVALID_ARGUMENT": 3, "FAILED_PRECONDITION": 9, "INTERNAL": 13}
_COMPUTE_REASONS = {
    400: "invalid",
    401: "required",
    403: "forbidden",
    404: "notFound",
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
}
_UNITS = {
    "compute.googleapis.com/instance/cpu/utilization": "10^2.%",
    "compute.googleapis.com/instance/network/received_bytes_count": "By",
    "compute.googleapis.com/instance/network/sent_bytes_count": "By",
    "agent.googleapis.com/gpu/utilization": "%",
    "aiplatform.googleapis.com/prediction/online/prediction_count": "1",
    "aiplatform.googleapis.com/prediction/online/replicas": "1",
    "aiplatform.googleapis.com/prediction/online/cpu/utilization": "10^2.%",
}


# -- errors and replies --------------------------------------------------------------------------


class GoogleApiError(Exception):
    """An error answered in Google's JSON shape: {"error": {"code", "message", "status", ...}}."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: str | None = None,
        reason: str | None = None,
        details: Sequence[Mapping[str, Any]] = (),
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or _GRPC_CODES.get(code, "UNKNOWN")
        self.reason = reason
        self.details = list(details)
        self.headers = headers

    def body(self, service: str | None) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if service == COMPUTE:  # Compute keeps the older `errors` list next to `status`
            reason = self.reason or _COMPUTE_REASONS.get(self.code, "unknown")
            domain = "usageLimits" if reason == "accessNotConfigured" else "global"
            error["errors"] = [{"message": self.message, "domain": domain, "reason": reason}]
        error["status"] = self.status
        if self.details:
            error["details"] = self.details
        return {"error": error}


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = _JSON


def _ok(payload: Mapping[str, Any]) -> _Reply:
    return _Reply(200, json.dumps(payload).encode())


def _stamp(moment: datetime) -> str:
    """RFC 3339 with a Z, as Monitoring, Vertex and Notebooks write times."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _compute_stamp(moment: datetime) -> str:
    """Compute Engine writes times with an offset and milliseconds."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- state records -------------------------------------------------------------------------------


@dataclass
class _Operation:
    """A Compute zone operation or a long-running operation (Vertex AI, Notebooks)."""

    name: str  # Compute: the short name; LRO: the full resource name
    service: str
    project: str
    zone: str | None
    target: str  # the target's resource path
    kind: str  # "stop", "start", "deployModel", "undeployModel"
    polls_left: int
    on_done: Callable[[], dict[str, Any] | None]
    on_error: Callable[[], None] | None
    fail: tuple[str, str] | None  # (code, message) when it ends in error
    target_id: str
    insert_time: datetime
    done: bool = False
    end_time: datetime | None = None
    result: dict[str, Any] | None = None
    op_id: str = field(default_factory=lambda: str(secrets.randbits(63)))
    metadata_type: str = ""  # LRO: the metadata message, e.g. "DeployModelOperationMetadata"


@dataclass
class _Series:
    project: str
    metric_type: str
    metric_labels: dict[str, str]
    resource_type: str
    resource_labels: dict[str, str]
    metric_kind: str
    value_type: str
    points: list[tuple[datetime, float]]


@dataclass
class _Fault:
    operation: str
    status: int
    remaining: int = 1
    retry_after: int | None = None
    at_call: int | None = None  # fail exactly that (absolute) call number of the operation
    message: str = ""


# -- filters (Cloud Monitoring) ------------------------------------------------------------------

_COMPARISON = re.compile(r"^\s*([\w./-]+)\s*(!=|=)\s*(.+?)\s*$", re.S)
_FUNCTION = re.compile(r"^(one_of|starts_with|ends_with|has_substring)\s*\((.*)\)$", re.S)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class _Test:
    key: str
    negate: bool
    function: str  # "eq", "one_of", "starts_with", ...
    values: tuple[str, ...]

    def matches(self, actual: str | None) -> bool:
        if actual is None:
            hit = False
        elif self.function in ("eq", "one_of"):
            hit = actual in self.values
        elif self.function == "starts_with":
            hit = actual.startswith(self.values[0])
        elif self.function == "ends_with":
            hit = actual.endswith(self.values[0])
        else:
            hit = self.values[0] in actual
        return hit != self.negate


def _split_top(text: str, word: str) -> list[str]:
    """Split on ` word ` outside quotes and parentheses."""
    parts: list[str] = []
    depth, quoted, start, i = 0, False, 0, 0
    token = f" {word} "
    while i < len(text):
        char = text[i]
        if char == '"' and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and text.startswith(token, i):
            parts.append(text[start:i])
            i += len(token)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def _parse_comparison(text: str) -> _Test:
    match = _COMPARISON.match(text)
    if match is None:
        raise GoogleApiError(400, f"The provided filter doesn't have a valid form: {text!r}")
    key, operator, raw = match.groups()
    function_match = _FUNCTION.match(raw)
    function = "eq"
    if function_match is not None:
        function, raw = function_match.groups()
    values = tuple(v.replace('\\"', '"') for v in _QUOTED.findall(raw))
    if not values and function == "eq" and re.fullmatch(r"[\w.-]+", raw):
        values = (raw,)
    if not values:
        raise GoogleApiError(400, f"The provided filter doesn't have a valid form: {text!r}")
    return _Test(key, operator == "!=", function, values)


def parse_filter(text: str) -> list[list[_Test]]:
    """A Monitoring filter as clauses joined by AND, each an OR of comparisons."""
    clauses: list[list[_Test]] = []
    for clause in _split_top(text.strip(), "AND"):
        inner = clause
        while inner.startswith("(") and inner.endswith(")"):
            inner = inner[1:-1].strip()
        clauses.append([_parse_comparison(part) for part in _split_top(inner, "OR")])
    return clauses


def _series_value(series: _Series, key: str) -> str | None:
    if key == "metric.type":
        return series.metric_type
    if key == "resource.type":
        return series.resource_type
    if key == "project":
        return series.project
    for prefix, labels in (
        ("metric.labels.", series.metric_labels),
        ("metric.label.", series.metric_labels),
        ("resource.labels.", series.resource_labels),
        ("resource.label.", series.resource_labels),
    ):
        if key.startswith(prefix):
            return labels.get(key.removeprefix(prefix))
    raise GoogleApiError(400, f"The provided filter names an unknown field: {key}")


# -- the server ----------------------------------------------------------------------------------

_Handler = Callable[[re.Match[str], dict[str, str], dict[str, Any]], _Reply]


class GcpDevServer(BackgroundServer[ThreadingHTTPServer]):
    """Compute Engine, Cloud Monitoring, Vertex AI and Notebooks REST APIs on 127.0.0.1."""

    def __init__(
        self, *, port: int = 0, operation_polls: int = 2, max_points_per_page: int = 0
    ) -> None:
        """`operation_polls`: how many polls of an operation answer before it is done (the
        first answer, to the POST, is always not done). `max_points_per_page`: when set, a
        Monitoring page holds at most this many points whatever `pageSize` asks (the real API
        may answer fewer than asked), so tests can exercise paging with few points."""
        super().__init__()
        if operation_polls < 1:
            raise ValueError("operation_polls must be >= 1")
        self._port = port
        self._operation_polls = operation_polls
        self._max_points_per_page = max_points_per_page
        self._lock = threading.RLock()
        self._keys: dict[str, str] = {}  # key id -> public key PEM
        self._tokens: set[str] = set()
        self._zones: dict[str, list[str]] = {}
        self._unreachable: dict[str, set[str]] = {}
        self._instances: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._locations: dict[str, list[str]] = {}
        self._endpoints: dict[str, dict[str, Any]] = {}  # full name -> endpoint
        self._workbench: dict[str, dict[str, Any]] = {}  # full name -> instance
        self._series: list[_Series] = []
        self._operations: dict[str, _Operation] = {}  # key: "project/zone/name" or LRO name
        self._calls: Counter[str] = Counter()
        self._faults: list[_Fault] = []
        self._disabled: set[tuple[str, str]] = set()
        self._denied: set[tuple[str, str]] = set()
        self._fail_next: dict[str, tuple[str, str]] = {}
        self._ids = itertools.count(1_000_000_000_000_000_001)
        self._routes: list[tuple[str, re.Pattern[str], str, str, _Handler]] = []
        self._add_routes()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            return
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_for(self))
        server.daemon_threads = True
        self._serve(server, "gcp-devserver", poll_interval=0.02)

    @property
    def url(self) -> str:
        """The one base URL for every API (the value of `JANITOR_GCP_API_ENDPOINT`)."""
        return f"http://127.0.0.1:{self._port_in_use()}"

    @property
    def token_url(self) -> str:
        """The `token_uri` for a service-account key file."""
        return f"{self.url}{TOKEN_PATH}"

    # -- credentials -------------------------------------------------------------------------

    def register_key(self, key_id: str, public_key_pem: str | bytes) -> None:
        """Trust a service-account key: assertions and self-signed JWTs whose header names
        `key_id` (the key file's `private_key_id`) must verify against this public key."""
        pem = public_key_pem.decode() if isinstance(public_key_pem, bytes) else public_key_pem
        with self._lock:
            self._keys[key_id] = pem

    def accepts(self, authorization: str) -> bool:
        """Whether an `Authorization` header value would pass this server's authentication: a
        token it issued, or a self-signed JWT verifying against a registered key. Lets another
        local server (the Cloud Storage emulator) take the same credentials."""
        try:
            self._authenticate(authorization)
        except GoogleApiError:
            return False
        return True

    def issue_token(self) -> str:
        """An access token the server accepts (for requests made without google-auth)."""
        token = "ya29.local-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(token)
        return token

    # -- seeding: Compute Engine --------------------------------------------------------------

    def add_zone(self, project: str, zone: str) -> None:
        """Make `zone` known in `project` (every known zone appears in each aggregated page)."""
        with self._lock:
            zones = self._zones.setdefault(project, list(DEFAULT_ZONES))
            if zone not in zones:
                zones.append(zone)

    def unreachable_zone(self, project: str, zone: str) -> None:
        """Aggregated lists answer an `UNREACHABLE` warning for `zone` instead of its VMs."""
        self.add_zone(project, zone)
        with self._lock:
            self._unreachable.setdefault(project, set()).add(zone)

    def add_instance(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        machine_type: str = "n1-standard-8",
        accelerators: Sequence[tuple[str, int]] = (),
        labels: Mapping[str, str] | None = None,
        status: str = "RUNNING",
        local_ssds: int = 0,
        spot: bool = False,
        metadata: Mapping[str, str] | None = None,
        created_at: datetime | None = None,
        last_start: datetime | None = None,
    ) -> dict[str, Any]:
        """Add a VM (replacing one of the same name) and answer its body. `accelerators`:
        (accelerator type such as "nvidia-tesla-t4", count) pairs for `guestAccelerators`."""
        created = created_at or _now()
        base = f"{_LINK}/projects/{project}/zones/{zone}"
        instance_id = str(next(self._ids))
        disks: list[dict[str, Any]] = [
            {
                "kind": "compute#attachedDisk",
                "type": "PERSISTENT",
                "mode": "READ_WRITE",
                "source": f"{base}/disks/{name}",
                "deviceName": "persistent-disk-0",
                "index": 0,
                "boot": True,
                "autoDelete": True,
                "interface": "SCSI",
                "diskSizeGb": "100",
                "licenses": [f"{_LINK}/projects/ubuntu-os-cloud/global/licenses/ubuntu-2204-lts"],
                "guestOsFeatures": [{"type": "VIRTIO_SCSI_MULTIQUEUE"}, {"type": "GVNIC"}],
                "architecture": "X86_64",
            }
        ]
        for index in range(local_ssds):
            disks.append(
                {
                    "kind": "compute#attachedDisk",
                    "type": "SCRATCH",
                    "mode": "READ_WRITE",
                    "deviceName": f"local-ssd-{index}",
                    "index": index + 1,
                    "boot": False,
                    "autoDelete": True,
                    "interface": "NVME",
                    "diskSizeGb": "375",
                }
            )
        body: dict[str, Any] = {
            "kind": "compute#instance",
            "id": instance_id,
            "creationTimestamp": _compute_stamp(created),
            "name": name,
            "tags": {"items": ["janitor"], "fingerprint": "42WmSpB8rSM="},
            "machineType": f"{base}/machineTypes/{machine_type}",
            "status": status,
            "zone": base,
            "canIpForward": False,
            "networkInterfaces": [
                {
                    "kind": "compute#networkInterface",
                    "network": f"{_LINK}/projects/{project}/global/networks/default",
                    "subnetwork": (
                        f"{_LINK}/projects/{project}/regions/{zone.rsplit('-', 1)[0]}"
                        "/subnetworks/default"
                    ),
                    "networkIP": "10.128.0.2",
                    "name": "nic0",
                    "accessConfigs": [
                        {
                            "kind": "compute#accessConfig",
                            "type": "ONE_TO_ONE_NAT",
                            "name": "external-nat",
                            "natIP": "203.0.113.10",
                            "networkTier": "PREMIUM",
                        }
                    ],
                    "fingerprint": "pBk8Ft-pooc=",
                    "stackType": "IPV4_ONLY",
                }
            ],
            "disks": disks,
            "metadata": {"kind": "compute#metadata", "fingerprint": "MTIzNDU2Nzg="},
            "serviceAccounts": [
                {
                    "email": "123456789012-compute@developer.gserviceaccount.com",
                    "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                }
            ],
            "selfLink": f"{base}/instances/{name}",
            "scheduling": {
                "onHostMaintenance": "TERMINATE" if accelerators else "MIGRATE",
                "automaticRestart": True,
                "preemptible": False,
                "provisioningModel": "STANDARD",
            },
            "cpuPlatform": "Intel Cascade Lake",
            "labelFingerprint": "42WmSpB8rSM=",
            "startRestricted": False,
            "deletionProtection": False,
            "shieldedInstanceConfig": {
                "enableSecureBoot": False,
                "enableVtpm": True,
                "enableIntegrityMonitoring": True,
            },
            "shieldedInstanceIntegrityPolicy": {"updateAutoLearnPolicy": True},
            "fingerprint": "YcNkmQX6XHo=",
            "lastStartTimestamp": _compute_stamp(last_start or created),
            "description": "",
        }
        if metadata:  # the API leaves `items` out when there is no metadata
            body["metadata"]["items"] = [{"key": k, "value": v} for k, v in metadata.items()]
        if labels:
            body["labels"] = dict(labels)
        if accelerators:
            body["guestAccelerators"] = [
                {"acceleratorType": f"{base}/acceleratorTypes/{kind}", "acceleratorCount": count}
                for kind, count in accelerators
            ]
        if spot:  # a Spot VM, as the API describes one
            body["scheduling"].update(
                {
                    "provisioningModel": "SPOT",
                    "instanceTerminationAction": "STOP",
                    "automaticRestart": False,
                    "onHostMaintenance": "TERMINATE",
                }
            )
        if status == "TERMINATED":
            body["lastStopTimestamp"] = _compute_stamp(created)
        self.add_zone(project, zone)
        with self._lock:
            self._instances[(project, zone, name)] = body
        return copy.deepcopy(body)

    def instance(self, project: str, zone: str, name: str) -> dict[str, Any] | None:
        """A copy of a VM's body as the API would answer it, or None."""
        with self._lock:
            body = self._instances.get((project, zone, name))
            return None if body is None else copy.deepcopy(body)

    def delete_instance(self, project: str, zone: str, name: str) -> None:
        with self._lock:
            self._instances.pop((project, zone, name), None)

    def set_instance_status(self, project: str, zone: str, name: str, status: str) -> None:
        with self._lock:
            self._instances[(project, zone, name)]["status"] = status

    # -- seeding: Vertex AI and Workbench -----------------------------------------------------

    def set_locations(self, project: str, locations: Sequence[str]) -> None:
        """The locations the Vertex AI Locations API answers for `project`."""
        with self._lock:
            self._locations[project] = list(locations)

    def add_endpoint(
        self,
        project: str,
        location: str,
        endpoint_id: str,
        *,
        display_name: str | None = None,
        deployed_models: Sequence[Mapping[str, Any]] = (),
        traffic_split: Mapping[str, int] | None = None,
        labels: Mapping[str, str] | None = None,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Add an online prediction endpoint. Each deployed model is a DeployedModel body
        (`model`, `displayName`, `dedicatedResources`, ...); ids are given when missing.
        Without `traffic_split`, the first model takes 100%."""
        created = created_at or _now()
        name = f"projects/{project}/locations/{location}/endpoints/{endpoint_id}"
        models = [self._deployed_model(model, created) for model in deployed_models]
        split = dict(traffic_split) if traffic_split is not None else {}
        if traffic_split is None and models:
            split = {models[0]["id"]: 100}
        body: dict[str, Any] = {
            "name": name,
            "displayName": display_name or endpoint_id,
            "etag": base64.urlsafe_b64encode(secrets.token_bytes(24)).decode(),
            "labels": dict(labels or {}),
            "createTime": _stamp(created),
            "updateTime": _stamp(created),
        }
        if models:
            body["deployedModels"] = models
            body["trafficSplit"] = split
        with self._lock:
            self._endpoints[name] = body
        return copy.deepcopy(body)

    def endpoint(self, project: str, location: str, endpoint_id: str) -> dict[str, Any] | None:
        name = f"projects/{project}/locations/{location}/endpoints/{endpoint_id}"
        with self._lock:
            body = self._endpoints.get(name)
            return None if body is None else copy.deepcopy(body)

    def delete_endpoint(self, project: str, location: str, endpoint_id: str) -> None:
        name = f"projects/{project}/locations/{location}/endpoints/{endpoint_id}"
        with self._lock:
            self._endpoints.pop(name, None)

    def add_workbench(
        self,
        project: str,
        location: str,
        name: str,
        *,
        machine_type: str = "e2-standard-4",
        state: str = "ACTIVE",
        metadata: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        creator: str = "owner@example.com",
        accelerators: Sequence[tuple[str, int]] = (),
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Add a Workbench instance (`location` is its zone). `metadata` goes to
        `gceSetup.metadata` (e.g. {"idle-timeout-seconds": "10800"}); `accelerators`:
        (type such as "NVIDIA_TESLA_T4", count) pairs."""
        created = created_at or _now()
        full = f"projects/{project}/locations/{location}/instances/{name}"
        region = location.rsplit("-", 1)[0]
        backend = f"{secrets.randbits(60):016x}"
        zone_link = f"{_LINK}/projects/{project}/zones/{location}"
        gce: dict[str, Any] = {
            "machineType": f"{zone_link}/machineTypes/{machine_type}",
            "serviceAccounts": [
                {
                    "email": "123456789012-compute@developer.gserviceaccount.com",
                    "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                }
            ],
            "bootDisk": {"diskSizeGb": "150", "diskEncryption": "GMEK"},
            "dataDisks": [{"diskSizeGb": "100", "diskEncryption": "GMEK"}],
            "shieldedInstanceConfig": {"enableVtpm": True, "enableIntegrityMonitoring": True},
            "networkInterfaces": [
                {
                    "network": f"{_LINK}/projects/{project}/global/networks/default",
                    "subnet": f"{_LINK}/projects/{project}/regions/{region}/subnetworks/default",
                    "accessConfigs": [{"externalIp": "203.0.113.10"}],
                }
            ],
            "tags": ["deeplearning-vm", "notebook-instance"],
            "metadata": {
                "proxy-mode": "service_account",
                "shutdown-script": "/opt/deeplearning/bin/shutdown_script.sh",
                "notebooks-api": "PROD",
                "version": "20260809-2130-rc0",
                "new-proxy-agent-enabled": "true",
                "serial-port-logging-enable": "true",
                "enable-jupyterlab4": "true",
                "disable-swap-binaries": "true",
                "proxy-registration-url": f"https://{region}.notebooks.cloud.google.com/tun/m/{backend}",
                "proxy-backend-id": backend,
                "notebooks-api-version": "v2",
                "instance-region": region,
                "enable-guest-attributes": "TRUE",
                "enable-oslogin": "TRUE",
                "report-event-url": f"https://notebooks.googleapis.com/v2/{full}:reportInfoSystem",
                "resource-url": f"https://notebooks.googleapis.com/v2/{full}",
                "proxy-url": f"{backend}-dot-{region}.notebooks.googleusercontent.com",
            }
            | dict(metadata or {}),
            "gpuDriverConfig": {"enableGpuDriver": True} if accelerators else {},
            "instanceId": str(next(self._ids)),
            "minCpuPlatform": "AUTOMATIC",
            "reservationAffinity": {"consumeReservationType": "RESERVATION_ANY"},
        }
        if accelerators:
            gce["acceleratorConfigs"] = [
                {"type": kind, "coreCount": str(count)} for kind, count in accelerators
            ]
        body: dict[str, Any] = {
            "name": full,
            "gceSetup": gce,
            "proxyUri": f"{backend}-dot-{region}.notebooks.googleusercontent.com",
            "creator": creator,
            "state": state,
            "id": str(uuid.uuid4()),
            "healthState": "HEALTHY",
            "healthInfo": {
                "last_updated": created.astimezone(UTC).isoformat(timespec="seconds"),
                "system_health": "1",
                "docker_status": "1",
                "jupyterlab_status": "1",
                "jupyterlab_api_status": "1",
            },
            "createTime": _stamp(created),
            "updateTime": _stamp(created),
            "labels": {
                "consumer-project-id": project,
                "consumer-project-number": "123456789012",
                "notebooks-product": "workbench-instances",
                "resource-name": name,
            }
            | dict(labels or {}),
            "satisfiesPzi": True,
        }
        with self._lock:
            self._workbench[full] = body
        return copy.deepcopy(body)

    def delete_workbench(self, project: str, location: str, name: str) -> None:
        with self._lock:
            self._workbench.pop(f"projects/{project}/locations/{location}/instances/{name}", None)

    def workbench(self, project: str, location: str, name: str) -> dict[str, Any] | None:
        full = f"projects/{project}/locations/{location}/instances/{name}"
        with self._lock:
            body = self._workbench.get(full)
            return None if body is None else copy.deepcopy(body)

    # -- seeding: Cloud Monitoring -------------------------------------------------------------

    def add_points(
        self,
        project: str,
        metric_type: str,
        *,
        resource_type: str,
        resource_labels: Mapping[str, str],
        points: Iterable[tuple[datetime, float]],
        metric_labels: Mapping[str, str] | None = None,
        metric_kind: str = "GAUGE",
        value_type: str = "DOUBLE",
    ) -> None:
        """Raw points of one time series (the same identity adds to the same series)."""
        new = [(moment.astimezone(UTC), float(value)) for moment, value in points]
        labels = {"project_id": project} | dict(resource_labels)
        with self._lock:
            for series in self._series:
                if (
                    series.project == project
                    and series.metric_type == metric_type
                    and series.resource_type == resource_type
                    and series.resource_labels == labels
                    and series.metric_labels == dict(metric_labels or {})
                ):
                    series.points.extend(new)
                    return
            self._series.append(
                _Series(
                    project,
                    metric_type,
                    dict(metric_labels or {}),
                    resource_type,
                    labels,
                    metric_kind,
                    value_type,
                    new,
                )
            )

    def add_daily(
        self,
        project: str,
        metric_type: str,
        *,
        resource_type: str,
        resource_labels: Mapping[str, str],
        days: Mapping[date, float],
        metric_labels: Mapping[str, str] | None = None,
        metric_kind: str = "GAUGE",
        value_type: str = "DOUBLE",
    ) -> None:
        """One point per day, at 12:00 UTC of that day (its daily max, or its daily sum for a
        DELTA metric)."""
        self.add_points(
            project,
            metric_type,
            resource_type=resource_type,
            resource_labels=resource_labels,
            metric_labels=metric_labels,
            metric_kind=metric_kind,
            value_type=value_type,
            points=[(datetime.combine(day, time(12), UTC), value) for day, value in days.items()],
        )

    # -- observation and faults ----------------------------------------------------------------

    @property
    def calls(self) -> Counter[str]:
        """Requests per operation id (pages and faulted requests included), e.g.
        `compute.instances.aggregatedList`, `monitoring.timeSeries.list`, `oauth2.token`."""
        with self._lock:
            return Counter(self._calls)

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def disable_service(self, project: str, service: str) -> None:
        """Every call of `service` (e.g. "compute.googleapis.com") for `project` answers 403
        `SERVICE_DISABLED`, in the shape Google answers it."""
        with self._lock:
            self._disabled.add((project, service))

    def deny(self, project: str, service: str) -> None:
        """Every call of `service` for `project` answers 403 PERMISSION_DENIED."""
        with self._lock:
            self._denied.add((project, service))

    def rate_limit(self, operation: str, *, times: int = 1, retry_after: int = 1) -> None:
        """The next `times` calls of `operation` answer 429 with `Retry-After`."""
        with self._lock:
            self._faults.append(_Fault(operation, 429, times, retry_after))

    def outage(self, operation: str, *, times: int = 1, status: int = 503) -> None:
        """The next `times` calls of `operation` answer `status` (a 5xx)."""
        with self._lock:
            self._faults.append(_Fault(operation, status, times))

    def fail_nth(self, operation: str, n: int, *, status: int = 500) -> None:
        """The `n`th call of `operation` from now (1 = the next) answers `status`."""
        if n < 1:
            raise ValueError("n must be >= 1")
        with self._lock:
            self._faults.append(_Fault(operation, status, 1, at_call=self._calls[operation] + n))

    def fail_next_operation(
        self,
        target: str,
        *,
        code: str = "ZONE_RESOURCE_POOL_EXHAUSTED",
        message: str = "The zone does not have enough resources available.",
    ) -> None:
        """The next operation on `target` ends in error. `target`: a VM
        ("projects/p/zones/z/instances/n"), an endpoint or a Workbench instance (full name)."""
        with self._lock:
            self._fail_next[target] = (code, message)

    # -- dispatch ------------------------------------------------------------------------------

    def _add_routes(self) -> None:
        project = r"projects/(?P<project>[^/]+)"
        zone = rf"{project}/zones/(?P<zone>[^/]+)"
        loc = rf"{project}/locations/(?P<location>[^/:]+)"
        routes: list[tuple[str, str, str, str, _Handler]] = [
            ("POST", TOKEN_PATH, "oauth2.token", "", self._token),
            (
                "GET",
                rf"/compute/v1/{project}/aggregated/instances",
                "compute.instances.aggregatedList",
                COMPUTE,
                self._aggregated,
            ),
            (
                "GET",
                rf"/compute/v1/{zone}/instances/(?P<name>[^/]+)",
                "compute.instances.get",
                COMPUTE,
                self._instance_get,
            ),
            (
                "POST",
                rf"/compute/v1/{zone}/instances/(?P<name>[^/]+)/stop",
                "compute.instances.stop",
                COMPUTE,
                self._instance_stop,
            ),
            (
                "POST",
                rf"/compute/v1/{zone}/instances/(?P<name>[^/]+)/start",
                "compute.instances.start",
                COMPUTE,
                self._instance_start,
            ),
            (
                "GET",
                rf"/compute/v1/{zone}/operations/(?P<op>[^/]+)",
                "compute.zoneOperations.get",
                COMPUTE,
                self._zone_operation,
            ),
            (
                "POST",
                rf"/compute/v1/{zone}/operations/(?P<op>[^/]+)/wait",
                "compute.zoneOperations.wait",
                COMPUTE,
                self._zone_operation,
            ),
            (
                "GET",
                rf"/v3/{project}/timeSeries",
                "monitoring.timeSeries.list",
                MONITORING,
                self._time_series,
            ),
            (
                "GET",
                rf"/v1/{project}/locations",
                "aiplatform.locations.list",
                AIPLATFORM,
                self._locations_list,
            ),
            (
                "GET",
                rf"/v1/{loc}/endpoints",
                "aiplatform.endpoints.list",
                AIPLATFORM,
                self._endpoints_list,
            ),
            (
                "GET",
                rf"/v1/(?P<name>{loc}/endpoints/[^/:]+)",
                "aiplatform.endpoints.get",
                AIPLATFORM,
                self._endpoint_get,
            ),
            (
                "PATCH",
                rf"/v1/(?P<name>{loc}/endpoints/[^/:]+)",
                "aiplatform.endpoints.patch",
                AIPLATFORM,
                self._endpoint_patch,
            ),
            (
                "POST",
                rf"/v1/(?P<name>{loc}/endpoints/[^/:]+):deployModel",
                "aiplatform.endpoints.deployModel",
                AIPLATFORM,
                self._deploy,
            ),
            (
                "POST",
                rf"/v1/(?P<name>{loc}/endpoints/[^/:]+):undeployModel",
                "aiplatform.endpoints.undeployModel",
                AIPLATFORM,
                self._undeploy,
            ),
            (
                "GET",
                rf"/v1/(?P<name>{project}/locations/[^/]+/.*operations/[^/]+)",
                "aiplatform.operations.get",
                AIPLATFORM,
                self._lro_get,
            ),
            (
                "GET",
                rf"/v2/{loc}/instances",
                "notebooks.instances.list",
                NOTEBOOKS,
                self._workbench_list,
            ),
            (
                "GET",
                rf"/v2/(?P<name>{loc}/instances/[^/:]+)",
                "notebooks.instances.get",
                NOTEBOOKS,
                self._workbench_get,
            ),
            (
                "POST",
                rf"/v2/(?P<name>{loc}/instances/[^/:]+):stop",
                "notebooks.instances.stop",
                NOTEBOOKS,
                self._workbench_stop,
            ),
            (
                "POST",
                rf"/v2/(?P<name>{loc}/instances/[^/:]+):start",
                "notebooks.instances.start",
                NOTEBOOKS,
                self._workbench_start,
            ),
            (
                "GET",
                rf"/v2/(?P<name>{project}/locations/[^/]+/operations/[^/]+)",
                "notebooks.operations.get",
                NOTEBOOKS,
                self._lro_get,
            ),
        ]
        for method, pattern, operation, service, handler in routes:
            self._routes.append((method, re.compile(pattern + "$"), operation, service, handler))

    def _dispatch(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> _Reply:
        path, _, query_string = raw_path.partition("?")
        path = unquote(path)
        for route_method, pattern, operation, service, handler in self._routes:
            match = pattern.match(path)
            if match is None or route_method != method:
                continue
            with self._lock:
                self._calls[operation] += 1
                call_number = self._calls[operation]
            try:
                query = {k: v[-1] for k, v in parse_qs(query_string).items()}
                if operation == "oauth2.token":
                    return handler(match, query, {"_raw": body.decode()})
                self._authenticate(headers.get("authorization", ""))
                self._check_faults(operation, service, match, call_number)
                payload: dict[str, Any] = json.loads(body) if body.strip() else {}
                return handler(match, query, payload)
            except GoogleApiError as exc:
                return _Reply(exc.code, json.dumps(exc.body(service)).encode(), exc.headers)
            except (ValueError, KeyError) as exc:
                error = GoogleApiError(400, f"Invalid request: {exc}")
                return _Reply(400, json.dumps(error.body(service)).encode())
        error = GoogleApiError(404, f"The requested URL {path} was not found on this server.")
        return _Reply(404, json.dumps(error.body(None)).encode())

    def _check_faults(
        self, operation: str, service: str, match: re.Match[str], call_number: int
    ) -> None:
        project = match.groupdict().get("project", "")
        with self._lock:
            if (project, service) in self._disabled:
                raise _service_disabled(project, service)
            if (project, service) in self._denied:
                raise GoogleApiError(
                    403,
                    f"Permission denied on resource project {project}.",
                    reason="forbidden",
                    details=[
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "IAM_PERMISSION_DENIED",
                            "domain": "iam.googleapis.com",
                            "metadata": {
                                "permission": operation,
                                "resource": f"projects/{project}",
                            },
                        }
                    ],
                )
            for fault in self._faults:
                if fault.operation != operation or fault.remaining <= 0:
                    continue
                if fault.at_call is not None and fault.at_call != call_number:
                    continue
                fault.remaining -= 1
                if fault.status == 429:
                    raise GoogleApiError(
                        429,
                        "Quota exceeded for quota metric 'Read requests' of service "
                        f"'{service}' for consumer 'project_number:123456789012'.",
                        reason="rateLimitExceeded",
                        headers=(("Retry-After", str(fault.retry_after or 1)),),
                    )
                raise GoogleApiError(
                    fault.status,
                    "The service is currently unavailable."
                    if fault.status == 503
                    else "Internal error encountered.",
                )

    # -- auth ----------------------------------------------------------------------------------

    def _verify_jwt(self, token: str) -> Mapping[str, Any]:
        from google.auth import jwt  # the server runs only where the gcp extra is installed

        with self._lock:
            keys = dict(self._keys)
        if not keys:
            raise ValueError("no service-account key is registered")
        claims: Mapping[str, Any] = jwt.decode(token, certs=keys, verify=True)  # type: ignore[no-untyped-call]
        return claims

    def _authenticate(self, authorization: str) -> None:
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() == "bearer" and credential:
            with self._lock:
                if credential in self._tokens:
                    return
            if credential.count(".") == 2:
                try:
                    claims = self._verify_jwt(credential)
                except ValueError:
                    claims = {}
                audience = str(claims.get("aud", ""))
                if claims and (audience.endswith("googleapis.com/") or claims.get("scope")):
                    return
            raise GoogleApiError(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token,"
                " login cookie or other valid authentication credential. See"
                " https://developers.google.com/identity/sign-in/web/devconsole-project.",
                reason="authError",
                details=[_error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED", {})],
            )
        raise GoogleApiError(
            401,
            "Request is missing required authentication credential. Expected OAuth 2 access"
            " token, login cookie or other valid authentication credential. See"
            " https://developers.google.com/identity/sign-in/web/devconsole-project.",
            reason="required",
            details=[_error_info("CREDENTIALS_MISSING", {})],
        )

    def _token(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        form = {k: v[-1] for k, v in parse_qs(str(payload["_raw"])).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return _oauth_error("unsupported_grant_type", "Invalid grant_type: ")
        try:
            claims = self._verify_jwt(form.get("assertion", ""))
        except ValueError:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        if not claims.get("iss"):
            return _oauth_error("invalid_grant", "Invalid JWT: no issuer.")
        return _ok({"access_token": self.issue_token(), "expires_in": 3599, "token_type": "Bearer"})

    # -- Compute Engine ------------------------------------------------------------------------

    def _aggregated(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        project = match["project"]
        tests = _compute_filter(query.get("filter", ""))
        size = min(int(query.get("maxResults") or MAX_AGGREGATED_RESULTS), MAX_AGGREGATED_RESULTS)
        if size < 0:
            raise GoogleApiError(400, "Invalid value for field 'maxResults'.")
        offset = _decode_token(query.get("pageToken", ""))
        with self._lock:
            zones = sorted(self._zones.get(project, list(DEFAULT_ZONES)))
            unreachable = self._unreachable.get(project, set())
            rows = sorted(
                (zone, name, copy.deepcopy(body))
                for (p, zone, name), body in self._instances.items()
                if p == project
                and zone not in unreachable
                and all(_compute_matches(body, test) for test in tests)
            )
        page = rows[offset : offset + size]
        items: dict[str, Any] = {}
        for zone in zones:
            scope = f"zones/{zone}"
            instances = [body for z, _, body in page if z == zone]
            if instances:
                items[scope] = {"instances": instances}
            elif zone in unreachable:
                items[scope] = {"warning": _warning("UNREACHABLE", scope, unreachable=True)}
            else:
                items[scope] = {"warning": _warning("NO_RESULTS_ON_PAGE", scope)}
        answer: dict[str, Any] = {
            "kind": "compute#instanceAggregatedList",
            "id": f"projects/{project}/aggregated/instances",
            "items": items,
            "selfLink": f"{_LINK}/projects/{project}/aggregated/instances",
        }
        if offset + size < len(rows):
            answer["nextPageToken"] = _encode_token(offset + size)
        if unreachable and query.get("returnPartialSuccess") == "true":
            answer["unreachables"] = [f"zones/{zone}" for zone in sorted(unreachable)]
        return _ok(answer)

    def _instance_body(self, match: re.Match[str]) -> dict[str, Any]:
        key = (match["project"], match["zone"], match["name"])
        body = self._instances.get(key)
        if body is None:
            raise GoogleApiError(
                404,
                f"The resource 'projects/{key[0]}/zones/{key[1]}/instances/{key[2]}' was not found",
            )
        return body

    def _instance_get(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        with self._lock:
            return _ok(self._instance_body(match))

    def _instance_stop(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        return self._instance_transition(match, "stop", ("RUNNING", "STAGING", "PROVISIONING"))

    def _instance_start(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        return self._instance_transition(match, "start", ("TERMINATED", "SUSPENDED"))

    def _instance_transition(
        self, match: re.Match[str], kind: str, from_states: tuple[str, ...]
    ) -> _Reply:
        project, zone, name = match["project"], match["zone"], match["name"]
        target = f"projects/{project}/zones/{zone}/instances/{name}"
        with self._lock:
            body = self._instance_body(match)
            before = body["status"]
            acts = before in from_states
            passing, final = (
                ("STOPPING", "TERMINATED") if kind == "stop" else ("STAGING", "RUNNING")
            )
            if acts:
                body["status"] = passing

            def done() -> None:
                current = self._instances.get((project, zone, name))
                if current is not None and acts:
                    current["status"] = final
                    stamp_key = "lastStopTimestamp" if kind == "stop" else "lastStartTimestamp"
                    current[stamp_key] = _compute_stamp(_now())

            def failed() -> None:
                current = self._instances.get((project, zone, name))
                if current is not None and acts:
                    current["status"] = before

            def on_done() -> dict[str, Any] | None:
                done()
                return None

            op = self._new_operation(
                COMPUTE, project, zone, target, kind, body["id"], on_done, failed, polls=None
            )
            if not acts:  # nothing to do: Google answers an operation that is already done
                op.polls_left = 0
            return _ok(self._compute_operation_body(op))

    def _new_operation(
        self,
        service: str,
        project: str,
        zone: str | None,
        target: str,
        kind: str,
        target_id: str,
        on_done: Callable[[], dict[str, Any] | None],
        on_error: Callable[[], None] | None,
        *,
        polls: int | None,
        name: str | None = None,
    ) -> _Operation:
        moment = _now()
        short = f"operation-{int(moment.timestamp() * 1000)}-{uuid.uuid4().hex[:13]}"
        op = _Operation(
            name=name or short,
            service=service,
            project=project,
            zone=zone,
            target=target,
            kind=kind,
            polls_left=self._operation_polls if polls is None else polls,
            on_done=on_done,
            on_error=on_error,
            fail=self._fail_next.pop(target, None),
            target_id=target_id,
            insert_time=moment,
        )
        key = f"{project}/{zone}/{op.name}" if service == COMPUTE else op.name
        self._operations[key] = op
        return op

    def _advance(self, op: _Operation) -> None:
        """One poll: count it down; at zero the operation is done (and its effect happens)."""
        if op.done:
            return
        op.polls_left -= 1
        if op.polls_left > 0:
            return
        op.done = True
        op.end_time = _now()
        if op.fail is not None:
            if op.on_error is not None:
                op.on_error()
        else:
            op.result = op.on_done()

    def _compute_operation_body(self, op: _Operation) -> dict[str, Any]:
        base = f"{_LINK}/projects/{op.project}/zones/{op.zone}"
        body: dict[str, Any] = {
            "kind": "compute#operation",
            "id": op.op_id,
            "name": op.name,
            "zone": base,
            "operationType": op.kind,
            "targetLink": f"{_LINK}/{op.target}",
            "targetId": op.target_id,
            "status": "DONE" if op.done else "RUNNING",
            "user": "janitor@example-project.iam.gserviceaccount.com",
            "progress": 100 if op.done else 0,
            "insertTime": _compute_stamp(op.insert_time),
            "startTime": _compute_stamp(op.insert_time),
            "selfLink": f"{base}/operations/{op.name}",
        }
        if op.done and op.end_time is not None:
            body["endTime"] = _compute_stamp(op.end_time)
        if op.done and op.fail is not None:
            code, message = op.fail
            body["error"] = {"errors": [{"code": code, "message": message}]}
            body["httpErrorStatusCode"] = 503
            body["httpErrorMessage"] = "SERVICE UNAVAILABLE"
        return body

    def _zone_operation(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        key = f"{match['project']}/{match['zone']}/{match['op']}"
        with self._lock:
            op = self._operations.get(key)
            if op is None:
                raise GoogleApiError(
                    404,
                    f"The resource 'projects/{match['project']}/zones/{match['zone']}"
                    f"/operations/{match['op']}' was not found",
                )
            self._advance(op)
            return _ok(self._compute_operation_body(op))

    # -- Cloud Monitoring ----------------------------------------------------------------------

    def _time_series(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        project = match["project"]
        if "filter" not in query:
            raise GoogleApiError(400, "Field filter had an invalid value: a filter is required")
        clauses = parse_filter(query["filter"])
        if not any(t.key == "metric.type" and not t.negate for c in clauses for t in c):
            raise GoogleApiError(400, "A filter must specify a metric type.")
        if "interval.endTime" not in query:
            raise GoogleApiError(400, "Field interval.endTime had an invalid value: required")
        end = _parse_time(query["interval.endTime"])
        start = _parse_time(query.get("interval.startTime", query["interval.endTime"]))
        aligner = query.get("aggregation.perSeriesAligner", "ALIGN_NONE")
        reducer = query.get("aggregation.crossSeriesReducer", "REDUCE_NONE")
        if reducer != "REDUCE_NONE":
            raise GoogleApiError(400, f"crossSeriesReducer {reducer} is not supported here")
        period: timedelta | None = None
        if aligner != "ALIGN_NONE":
            raw_period = query.get("aggregation.alignmentPeriod", "")
            if not raw_period.endswith("s"):
                raise GoogleApiError(
                    400, "The alignment period must be set when an aligner is given."
                )
            period = timedelta(seconds=float(raw_period[:-1]))
            if aligner not in ("ALIGN_MAX", "ALIGN_MIN", "ALIGN_MEAN", "ALIGN_SUM"):
                raise GoogleApiError(400, f"perSeriesAligner {aligner} is not supported here")
        page_size = int(query.get("pageSize") or MAX_POINTS_PER_PAGE)
        if page_size <= 0 or page_size > MAX_POINTS_PER_PAGE:
            page_size = MAX_POINTS_PER_PAGE
        if self._max_points_per_page:
            page_size = min(page_size, self._max_points_per_page)
        with self._lock:
            matching = [
                s
                for s in self._series
                if s.project == project
                and all(
                    any(t.matches(_series_value(s, t.key)) for t in clause) for clause in clauses
                )
            ]
            rendered = [_render(s, start, end, aligner, period) for s in matching]
        rendered = [r for r in rendered if r["points"]]
        series_index, point_index = _decode_pair(query.get("pageToken", ""))
        out: list[dict[str, Any]] = []
        budget = page_size
        next_token = ""
        while series_index < len(rendered):
            series = rendered[series_index]
            remaining = series["points"][point_index:]
            if budget <= 0:
                next_token = _encode_pair(series_index, point_index)
                break
            taken = remaining[:budget]
            out.append(series | {"points": taken})
            budget -= len(taken)
            if len(taken) < len(remaining):
                next_token = _encode_pair(series_index, point_index + len(taken))
                break
            series_index, point_index = series_index + 1, 0
        answer: dict[str, Any] = {}
        if out:
            answer["timeSeries"] = out
            metric_type = out[0]["metric"]["type"]
            answer["unit"] = _UNITS.get(metric_type, "1")
        if next_token:
            answer["nextPageToken"] = next_token
        return _ok(answer)

    # -- Vertex AI -----------------------------------------------------------------------------

    def _locations_list(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        project = match["project"]
        with self._lock:
            locations = self._locations.get(project, list(DEFAULT_LOCATIONS))
        rows = [
            {
                "name": f"projects/{project}/locations/{loc}",
                "locationId": loc,
                "displayName": loc,
                "labels": {"cloud.googleapis.com/region": loc},
            }
            for loc in locations
        ]
        return _ok(_page(rows, "locations", query))

    def _endpoints_list(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        prefix = f"projects/{match['project']}/locations/{match['location']}/endpoints/"
        with self._lock:
            rows = [copy.deepcopy(body) for name, body in sorted(self._endpoints.items())]
        rows = [row for row in rows if row["name"].startswith(prefix)]
        return _ok(_page(rows, "endpoints", query))

    def _endpoint(self, name: str) -> dict[str, Any]:
        body = self._endpoints.get(name)
        if body is None:
            raise GoogleApiError(404, f'Endpoint "{name}" not found.')
        return body

    def _endpoint_get(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        with self._lock:
            return _ok(self._endpoint(match["name"]))

    def _endpoint_patch(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        """`endpoints.patch`, the fields of `updateMask` only (traffic split, display name,
        labels); the split must name deployed models and add up to 100."""
        fields = {f.strip() for f in query.get("updateMask", "").split(",") if f.strip()}
        if not fields:
            raise GoogleApiError(400, "updateMask is required.")
        with self._lock:
            endpoint = self._endpoint(match["name"])
            for field_name in fields:
                if field_name in ("traffic_split", "trafficSplit"):
                    split = {str(k): int(v) for k, v in (payload.get("trafficSplit") or {}).items()}
                    known = {m["id"] for m in endpoint.get("deployedModels", [])}
                    if split and (sum(split.values()) != 100 or set(split) - known):
                        raise GoogleApiError(
                            400, "The traffic split must name deployed models and add up to 100."
                        )
                    endpoint["trafficSplit"] = split
                elif field_name in ("display_name", "displayName"):
                    endpoint["displayName"] = str(payload.get("displayName", ""))
                elif field_name == "labels":
                    endpoint["labels"] = dict(payload.get("labels") or {})
                else:
                    raise GoogleApiError(400, f"Field {field_name} cannot be updated here.")
            endpoint["updateTime"] = _stamp(_now())
            return _ok(copy.deepcopy(endpoint))

    def _deployed_model(self, spec: Mapping[str, Any], moment: datetime) -> dict[str, Any]:
        model = {k: v for k, v in spec.items() if k not in ("status",)}
        model["id"] = str(model.get("id") or next(self._ids))
        model.setdefault("displayName", model["id"])
        model["createTime"] = _stamp(moment)
        replicas = int(
            (model.get("dedicatedResources") or model.get("automaticResources") or {}).get(
                "minReplicaCount", 1
            )
        )
        model["status"] = {"lastUpdateTime": _stamp(moment), "availableReplicaCount": replicas}
        return model

    def _deploy(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        name = match["name"]
        spec = payload.get("deployedModel")
        if not isinstance(spec, dict) or not spec.get("model"):
            raise GoogleApiError(400, "deployedModel.model is required.")
        if spec.get("id"):
            raise GoogleApiError(400, "DeployedModel.id must not be set; the service assigns it.")
        split = {str(k): int(v) for k, v in (payload.get("trafficSplit") or {}).items()}
        with self._lock:
            endpoint = self._endpoint(name)
            known = {m["id"] for m in endpoint.get("deployedModels", [])} | {"0"}
            if split and (sum(split.values()) != 100 or set(split) - known):
                raise GoogleApiError(
                    400, "The traffic split must name deployed models and add up to 100."
                )
            new_id = str(next(self._ids))

            def on_done() -> dict[str, Any] | None:
                current = self._endpoints.get(name)
                if current is None:
                    return None
                model = self._deployed_model(dict(spec) | {"id": new_id}, _now())
                current.setdefault("deployedModels", []).append(model)
                if split:
                    current["trafficSplit"] = {
                        (new_id if k == "0" else k): v for k, v in split.items()
                    }
                else:
                    current.setdefault("trafficSplit", {})
                current["updateTime"] = _stamp(_now())
                return {
                    "@type": "type.googleapis.com/google.cloud.aiplatform.v1.DeployModelResponse",
                    "deployedModel": {"id": new_id},
                }

            op = self._lro(AIPLATFORM, name, "deploy", on_done, "DeployModelOperationMetadata")
            return _ok(self._lro_body(op))

    def _undeploy(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        name = match["name"]
        model_id = str(payload.get("deployedModelId") or "")
        split = {str(k): int(v) for k, v in (payload.get("trafficSplit") or {}).items()}
        with self._lock:
            endpoint = self._endpoint(name)
            models = endpoint.get("deployedModels", [])
            if model_id not in {m["id"] for m in models}:
                raise GoogleApiError(
                    400, f"Deployed model {model_id} not found in endpoint {name}.", reason=None
                )
            last = len(models) == 1
            current_split = split or endpoint.get("trafficSplit", {})
            if not last and current_split.get(model_id, 0) > 0:
                raise GoogleApiError(
                    400,
                    f"Model {model_id} still has traffic; set trafficSplit to move its traffic"
                    " before undeploying it.",
                    status="FAILED_PRECONDITION",
                )

            def on_done() -> dict[str, Any] | None:
                current = self._endpoints.get(name)
                if current is None:
                    return None
                remaining = [m for m in current.get("deployedModels", []) if m["id"] != model_id]
                if remaining:
                    current["deployedModels"] = remaining
                    current["trafficSplit"] = {
                        k: v
                        for k, v in (split or current.get("trafficSplit", {})).items()
                        if k != model_id
                    }
                else:
                    current.pop("deployedModels", None)
                    current.pop("trafficSplit", None)
                current["updateTime"] = _stamp(_now())
                return {
                    "@type": "type.googleapis.com/google.cloud.aiplatform.v1.UndeployModelResponse"
                }

            op = self._lro(AIPLATFORM, name, "undeploy", on_done, "UndeployModelOperationMetadata")
            return _ok(self._lro_body(op))

    def _lro(
        self,
        service: str,
        target: str,
        verb: str,
        on_done: Callable[[], dict[str, Any] | None],
        metadata_type: str,
    ) -> _Operation:
        project = target.split("/")[1]
        op_id = str(next(self._ids))
        if service == AIPLATFORM:
            name = f"{target}/operations/{op_id}"
        else:
            location = target.split("/")[3]
            name = f"projects/{project}/locations/{location}/operations/operation-{op_id}"
        op = self._new_operation(
            service, project, None, target, verb, "", on_done, None, polls=None, name=name
        )
        op.metadata_type = metadata_type
        return op

    def _lro_body(self, op: _Operation) -> dict[str, Any]:
        if op.service == AIPLATFORM:
            metadata: dict[str, Any] = {
                "@type": f"type.googleapis.com/google.cloud.aiplatform.v1.{op.metadata_type}",
                "genericMetadata": {
                    "createTime": _stamp(op.insert_time),
                    "updateTime": _stamp(op.end_time or op.insert_time),
                },
            }
        else:
            metadata = {
                "@type": "type.googleapis.com/google.cloud.notebooks.v2.OperationMetadata",
                "createTime": _stamp(op.insert_time),
                "target": op.target,
                "verb": op.kind,
                "requestedCancellation": False,
                "apiVersion": "v2",
                "endpoint": op.kind.capitalize() + "Instance",
            }
            if op.end_time is not None:
                metadata["endTime"] = _stamp(op.end_time)
        body: dict[str, Any] = {"name": op.name, "metadata": metadata, "done": op.done}
        if not op.done:
            body.pop("done")  # the API leaves `done` out while it is false
        elif op.fail is not None:
            code, message = op.fail
            body["error"] = {"code": _GRPC_NUMBERS.get(code, 13), "message": message}
        elif op.result is not None:
            body["response"] = op.result
        return body

    def _lro_get(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        with self._lock:
            op = self._operations.get(match["name"])
            if op is None:
                raise GoogleApiError(404, f"Operation {match['name']} not found.")
            self._advance(op)
            return _ok(self._lro_body(op))

    # -- Notebooks v2 --------------------------------------------------------------------------

    def _workbench_list(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        location = match["location"]
        prefix = f"projects/{match['project']}/locations/"
        with self._lock:
            rows = [copy.deepcopy(body) for _, body in sorted(self._workbench.items())]
        rows = [
            row
            for row in rows
            if row["name"].startswith(prefix)
            and (location == "-" or row["name"].split("/")[3] == location)
        ]
        return _ok(_page(rows, "instances", query))

    def _workbench_body(self, name: str) -> dict[str, Any]:
        body = self._workbench.get(name)
        if body is None:
            raise GoogleApiError(404, f"Resource '{name}' was not found")
        return body

    def _workbench_get(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        with self._lock:
            return _ok(self._workbench_body(match["name"]))

    def _workbench_stop(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        return self._workbench_transition(match["name"], "stop", "ACTIVE", "STOPPING", "STOPPED")

    def _workbench_start(
        self, match: re.Match[str], query: dict[str, str], payload: dict[str, Any]
    ) -> _Reply:
        return self._workbench_transition(match["name"], "start", "STOPPED", "STARTING", "ACTIVE")

    def _workbench_transition(
        self, name: str, verb: str, from_state: str, passing: str, final: str
    ) -> _Reply:
        with self._lock:
            body = self._workbench_body(name)
            if body["state"] not in (from_state, final):
                raise GoogleApiError(
                    400,
                    f"Instance {name} is in state {body['state']}; cannot {verb} it.",
                    status="FAILED_PRECONDITION",
                )
            acts = body["state"] == from_state
            before = body["state"]
            if acts:
                body["state"] = passing

            def on_done() -> dict[str, Any] | None:
                current = self._workbench.get(name)
                if current is None:
                    return None
                current["state"] = final
                current["updateTime"] = _stamp(_now())
                return {"@type": "type.googleapis.com/google.cloud.notebooks.v2.Instance"} | current

            def on_error() -> None:
                current = self._workbench.get(name)
                if current is not None:
                    current["state"] = before

            op = self._lro(NOTEBOOKS, name, verb, on_done, "OperationMetadata")
            op.on_error = on_error
            return _ok(self._lro_body(op))


# -- helpers -------------------------------------------------------------------------------------


def _error_info(
    reason: str, metadata: Mapping[str, str], domain: str = "googleapis.com"
) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": domain,
        "metadata": dict(metadata),
    }


def _service_disabled(project: str, service: str) -> GoogleApiError:
    title = _SERVICE_TITLES.get(service, service)
    url = f"https://console.developers.google.com/apis/api/{service}/overview?project={project}"
    message = (
        f"{title} has not been used in project {project} before or it is disabled. Enable it by"
        f" visiting {url} then retry. If you enabled this API recently, wait a few minutes for"
        " the action to propagate to our systems and retry."
    )
    return GoogleApiError(
        403,
        message,
        reason="accessNotConfigured",
        details=[
            _error_info(
                "SERVICE_DISABLED",
                {
                    "service": service,
                    "serviceTitle": title,
                    "consumer": f"projects/{project}",
                    "containerInfo": project,
                    "activationUrl": url,
                },
            ),
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [{"description": "Google developers console API activation", "url": url}],
            },
        ],
    )


def _oauth_error(error: str, description: str) -> _Reply:
    return _Reply(400, json.dumps({"error": error, "error_description": description}).encode())


def _warning(code: str, scope: str, *, unreachable: bool = False) -> dict[str, Any]:
    message = (
        f"Scope '{scope}' is unreachable."
        if unreachable
        else f"There are no results for scope '{scope}' on this page."
    )
    return {"code": code, "message": message, "data": [{"key": "scope", "value": scope}]}


_COMPUTE_TERM = re.compile(r"^\(?\s*([\w.]+)\s*(=|!=|eq|ne)\s*\"?([^\"()]*?)\"?\s*\)?$")


def _compute_filter(text: str) -> list[tuple[str, bool, str]]:
    """Compute's list filter: `field = value` terms (optionally in parentheses) joined by AND
    or by juxtaposition. Values compare as strings."""
    if not text.strip():
        return []
    terms = re.findall(r"\(?[\w.]+\s*(?:!=|=|eq|ne)\s*\"?[^\"()\s]*\"?\)?", text)
    tests: list[tuple[str, bool, str]] = []
    for term in terms:
        match = _COMPUTE_TERM.match(term.strip())
        if match is None:
            raise GoogleApiError(400, f"Invalid value for field 'filter': '{text}'.")
        key, operator, value = match.groups()
        tests.append((key, operator in ("!=", "ne"), value))
    if not tests:
        raise GoogleApiError(400, f"Invalid value for field 'filter': '{text}'.")
    return tests


def _compute_matches(body: Mapping[str, Any], test: tuple[str, bool, str]) -> bool:
    key, negate, expected = test
    value: Any = body
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return (str(value) == expected) != negate


def _render(
    series: _Series, start: datetime, end: datetime, aligner: str, period: timedelta | None
) -> dict[str, Any]:
    raw = sorted(p for p in series.points if start < p[0] <= end or (start == end == p[0]))
    value_type = series.value_type
    out: list[dict[str, Any]] = []
    if period is None:
        for moment, value in reversed(raw):
            interval = {"startTime": _stamp(moment), "endTime": _stamp(moment)}
            out.append({"interval": interval, "value": _typed(value, value_type)})
    else:
        if aligner == "ALIGN_MEAN":
            value_type = "DOUBLE"
        buckets: dict[int, list[float]] = {}
        for moment, value in raw:
            # bucket i is (end - (i+1) * period, end - i * period]
            index = (end - moment) // period
            buckets.setdefault(index, []).append(value)
        for index in sorted(buckets):
            values = buckets[index]
            bucket_end = end - index * period
            if aligner == "ALIGN_MAX":
                result = max(values)
            elif aligner == "ALIGN_MIN":
                result = min(values)
            elif aligner == "ALIGN_SUM":
                result = sum(values)
            else:
                result = sum(values) / len(values)
            bucket_start = bucket_end - period if series.metric_kind != "GAUGE" else bucket_end
            interval = {"startTime": _stamp(bucket_start), "endTime": _stamp(bucket_end)}
            out.append({"interval": interval, "value": _typed(result, value_type)})
    return {
        "metric": {"labels": dict(series.metric_labels), "type": series.metric_type},
        "resource": {"type": series.resource_type, "labels": dict(series.resource_labels)},
        "metricKind": series.metric_kind,
        "valueType": value_type,
        "points": out,
    }


def _typed(value: float, value_type: str) -> dict[str, Any]:
    if value_type == "INT64":
        return {"int64Value": str(int(value))}
    if value_type == "BOOL":
        return {"boolValue": bool(value)}
    return {"doubleValue": value}


def _page(rows: list[dict[str, Any]], key: str, query: Mapping[str, str]) -> dict[str, Any]:
    size = int(query.get("pageSize") or 100)
    size = 100 if size <= 0 else min(size, 1000)
    offset = _decode_token(query.get("pageToken", ""))
    answer: dict[str, Any] = {}
    page = rows[offset : offset + size]
    if page:
        answer[key] = page
    if offset + size < len(rows):
        answer["nextPageToken"] = _encode_token(offset + size)
    return answer


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _decode_token(token: str) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        return int(text.removeprefix("o:"))
    except (ValueError, UnicodeDecodeError):
        raise GoogleApiError(400, "Invalid page token.") from None


def _encode_pair(first: int, second: int) -> str:
    return base64.urlsafe_b64encode(f"p:{first}:{second}".encode()).decode()


def _decode_pair(token: str) -> tuple[int, int]:
    if not token:
        return 0, 0
    try:
        _, first, second = base64.urlsafe_b64decode(token.encode()).decode().split(":")
        return int(first), int(second)
    except (ValueError, UnicodeDecodeError):
        raise GoogleApiError(400, "Invalid page token.") from None


# -- HTTP plumbing -------------------------------------------------------------------------------


def _handler_for(dev: GcpDevServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "janitor-gcp-devserver"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def _handle(self, method: str) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            body = self.rfile.read(length) if length > 0 else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = dev._dispatch(method, self.path, headers, body)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


# -- credentials for tests and the demo ----------------------------------------------------------


def write_service_account_key(
    server: GcpDevServer,
    path: str | os.PathLike[str],
    *,
    project: str,
    client_email: str | None = None,
) -> dict[str, str]:
    """Generate an RSA key, register its public half with `server`, and write a service-account
    key file (the JSON Google issues) whose `token_uri` is the server's token endpoint. Point
    `GOOGLE_APPLICATION_CREDENTIALS` at `path` and google-auth's ADC uses it. Needs
    `cryptography`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_id = secrets.token_hex(20)
    email = client_email or f"janitor@{project}.iam.gserviceaccount.com"
    key = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": key_id,
        "private_key": private_pem,
        "client_email": email,
        "client_id": str(secrets.randbits(64)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": server.token_url,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email}",
        "universe_domain": "googleapis.com",
    }
    server.register_key(key_id, public_pem)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(key, handle)
    return key
