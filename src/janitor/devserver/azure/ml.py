"""Azure Machine Learning (Microsoft.MachineLearningServices) on the local ARM: workspaces,
managed online endpoints and their deployments, and computes. Shapes: tests/fixtures/azure/ml/.

Mounted on demand: `ml = server.mount(MachineLearningService)`.

Operations (REST operation ids; the `api-version` is not checked):

* `Workspaces_ListBySubscription` (GET `/subscriptions/{s}/providers/Microsoft.
  MachineLearningServices/workspaces`, paged with `nextLink`).
* `OnlineEndpoints_List` / `_Get`; `OnlineEndpoints_CreateOrUpdate` (PUT, the whole endpoint:
  the only way to change `traffic` and `mirrorTraffic`) answers 200 with the endpoint in
  `Updating` and an `Azure-AsyncOperation` to poll; `OnlineEndpoints_Update` (PATCH) takes only
  `tags` and `identity` (the REST reference's `PartialMinimalTrackedResourceWithIdentity`):
  anything else is a 400, so a client that tries to move traffic with it is caught.
  Traffic is checked as the service checks it: every key an existing deployment, the values
  summing to 0 or 100; a mirrored deployment gets at most 50% and no live traffic.
* `OnlineDeployments_List` / `_Get`; `OnlineDeployments_CreateOrUpdate` (PUT, 201 `Creating`
  plus an `Azure-AsyncOperation`; `Succeeded` after the poll); `OnlineDeployments_Delete`
  (202, long-running; 204 when it does not exist; 400 while the endpoint still routes live or
  mirrored traffic to it, as the service refuses).
* `Compute_List` / `_Get`; `Compute_Stop` / `Compute_Start` (POST, 202 long-running) on a
  ComputeInstance: `Running` -> `Stopping` -> `Stopped`, `Stopped` -> `Starting` -> `Running`,
  each recorded in `lastOperation` (name, time, status, trigger `User`). A compute instance's
  `idleTimeBeforeShutdown` is answered only when it is set, as ARM does.

Faults besides the shared ones (`deny_subscription`, `rate_limit`, `outage`):
`recreate_deployment` (someone deleted and created a deployment of the same name: a new
`systemData.createdAt`), `recreate_deployment_after_lists` (the same, right after janitor's
scan listed the deployments), `fail_next_operation` on a compute.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from janitor.devserver.azure.core import (
    ArmDevServer,
    ArmError,
    Reply,
    Request,
    now,
    ok,
    page,
    stamp,
)

NAMESPACE = "Microsoft.MachineLearningServices"
PAGE_SIZE = 50
CREATOR = "owner@example.com"

_SUB = r"/subscriptions/(?P<subscription>[^/]+)"
_WS = (
    _SUB + r"/resourceGroups/(?P<group>[^/]+)/providers/Microsoft\.MachineLearningServices/"
    r"workspaces/(?P<workspace>[^/]+)"
)
_EP = _WS + r"/onlineEndpoints/(?P<endpoint>[^/]+)"
_DEP = _EP + r"/deployments/(?P<deployment>[^/]+)"
_COMPUTE = _WS + r"/computes/(?P<compute>[^/]+)"

# What a PATCH of an online endpoint may carry (PartialMinimalTrackedResourceWithIdentity).
_PATCHABLE = frozenset({"tags", "identity"})
# Read-only fields of a deployment's properties (ignored when sent back in a PUT).
_READ_ONLY = frozenset({"provisioningState"})


def workspace_id(subscription: str, resource_group: str, workspace: str) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
        f"{NAMESPACE}/workspaces/{workspace}"
    )


def _system_data(at: datetime) -> dict[str, Any]:
    return {
        "createdAt": stamp(at),
        "createdBy": CREATOR,
        "createdByType": "User",
        "lastModifiedAt": stamp(at),
        "lastModifiedBy": CREATOR,
        "lastModifiedByType": "User",
    }


@dataclass
class _Endpoint:
    body: dict[str, Any]
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)  # lower name -> body
    # (deployment name, lists left): recreate it once that many deployment lists were answered
    recreate_after: tuple[str, int] | None = None


@dataclass
class _Compute:
    body: dict[str, Any]
    fail_next: tuple[str, str] | None = None
    history: list[str] = field(default_factory=list)


class MachineLearningService:
    """Workspaces, online endpoints, deployments and computes of every subscription."""

    def __init__(self, server: ArmDevServer, *, page_size: int = PAGE_SIZE) -> None:
        self._server = server
        self.page_size = page_size
        self._workspaces: dict[str, dict[str, Any]] = {}  # lower id -> body
        self._endpoints: dict[str, _Endpoint] = {}  # lower id -> endpoint
        self._computes: dict[str, _Compute] = {}  # lower id -> compute
        route = server.route
        route("GET", _SUB + r"/providers/Microsoft\.MachineLearningServices/workspaces",
              "Workspaces_ListBySubscription", self._workspaces_list)  # fmt: skip
        route("GET", _WS + "/onlineEndpoints", "OnlineEndpoints_List", self._endpoints_list)
        route("GET", _EP, "OnlineEndpoints_Get", self._endpoint_get)
        route("PUT", _EP, "OnlineEndpoints_CreateOrUpdate", self._endpoint_put)
        route("PATCH", _EP, "OnlineEndpoints_Update", self._endpoint_patch)
        route("GET", _EP + "/deployments", "OnlineDeployments_List", self._deployments_list)
        route("GET", _DEP, "OnlineDeployments_Get", self._deployment_get)
        route("PUT", _DEP, "OnlineDeployments_CreateOrUpdate", self._deployment_put)
        route("DELETE", _DEP, "OnlineDeployments_Delete", self._deployment_delete)
        route("GET", _WS + "/computes", "Compute_List", self._computes_list)
        route("GET", _COMPUTE, "Compute_Get", self._compute_get)
        route("POST", _COMPUTE + "/stop", "Compute_Stop", self._compute_stop)
        route("POST", _COMPUTE + "/start", "Compute_Start", self._compute_start)

    # -- seeding -------------------------------------------------------------------------------

    def add_workspace(
        self,
        subscription: str,
        name: str,
        *,
        resource_group: str = "ml-rg",
        location: str = "eastus",
        tags: Mapping[str, str] | None = None,
        created_at: datetime | None = None,
    ) -> str:
        """A workspace; returns its ARM id (what the other seeding helpers take)."""
        if not self._server.has_subscription(subscription):
            self._server.add_subscription(subscription)
        created = created_at or now()
        ws_id = workspace_id(subscription, resource_group, name)
        guid = str(uuid.uuid4())
        base = f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers"
        body = {
            "id": ws_id,
            "name": name,
            "type": f"{NAMESPACE}/workspaces",
            "location": location,
            "tags": dict(tags or {}),
            "etag": None,
            "properties": {
                "friendlyName": name,
                "description": "",
                "storageAccount": f"{base}/Microsoft.Storage/storageAccounts/{name}storage",
                "keyVault": f"{base}/Microsoft.Keyvault/vaults/{name}vault",
                "applicationInsights": f"{base}/Microsoft.insights/components/{name}insights",
                "hbiWorkspace": False,
                "tenantId": self._server.tenant_id,
                "imageBuildCompute": None,
                "provisioningState": "Succeeded",
                "containerRegistry": None,
                "creationTime": stamp(created),
                "notebookInfo": {
                    "resourceId": uuid.uuid4().hex,
                    "fqdn": f"ml-{name}-{location}-{guid}.{location}.notebooks.azure.net",
                    "isPrivateLinkEnabled": False,
                    "notebookPreparationError": None,
                },
                "storageHnsEnabled": False,
                "workspaceId": guid,
                "linkedModelInventoryArmId": None,
                "privateLinkCount": 0,
                "allowPublicAccessWhenBehindVnet": True,
                "discoveryUrl": f"https://{location}.api.azureml.ms/discovery",
                "mlFlowTrackingUri": f"azureml://{location}.api.azureml.ms/mlflow/v1.0{ws_id}",
                "sdkTelemetryAppInsightsKey": str(uuid.uuid4()),
            },
            "identity": {
                "type": "SystemAssigned",
                "principalId": str(uuid.uuid4()),
                "tenantId": self._server.tenant_id,
            },
            "sku": {"name": "Basic", "tier": "Basic"},
            "systemData": _system_data(created),
        }
        with self._server.lock:
            self._workspaces[ws_id.lower()] = body
        return ws_id

    def _workspace(self, ws_id: str) -> dict[str, Any]:
        found = self._workspaces.get(ws_id.lower())
        if found is None:
            raise KeyError(f"no workspace {ws_id}")
        return found

    def add_endpoint(
        self,
        ws_id: str,
        name: str,
        *,
        deployments: Sequence[Mapping[str, Any]] = (),
        traffic: Mapping[str, int] | None = None,
        mirror_traffic: Mapping[str, int] | None = None,
        tags: Mapping[str, str] | None = None,
        auth_mode: str = "Key",
        created_at: datetime | None = None,
    ) -> str:
        """A managed online endpoint with `deployments` (each `deployment_body` keywords, e.g.
        {"name": "blue", "instance_type": "Standard_NC4as_T4_v3", "capacity": 2}). Traffic
        defaults to all on the first deployment. Returns the endpoint's id."""
        with self._server.lock:
            ws = self._workspace(ws_id)
        created = created_at or now()
        ep_id = f"{ws['id']}/onlineEndpoints/{name}"
        location = str(ws["location"])
        names = [str(d["name"]) for d in deployments]
        if traffic is None:
            traffic = {names[0]: 100} if names else {}
        body: dict[str, Any] = {
            "id": ep_id,
            "name": name,
            "type": f"{NAMESPACE}/workspaces/onlineEndpoints",
            "location": location,
            "tags": dict(tags or {}),
            "kind": "Managed",
            "identity": {
                "type": "SystemAssigned",
                "principalId": str(uuid.uuid4()),
                "tenantId": self._server.tenant_id,
            },
            "properties": {
                "authMode": auth_mode,
                "description": None,
                "provisioningState": "Succeeded",
                "scoringUri": f"https://{name}.{location}.inference.ml.azure.com/score",
                "swaggerUri": f"https://{name}.{location}.inference.ml.azure.com/swagger.json",
                "traffic": dict(traffic),
                "mirrorTraffic": dict(mirror_traffic or {}),
            },
            "systemData": _system_data(created),
        }
        endpoint = _Endpoint(body)
        for spec in deployments:
            dep = self.deployment_body(ep_id, location, created_at=created, **dict(spec))
            endpoint.deployments[str(dep["name"]).lower()] = dep
        with self._server.lock:
            self._endpoints[ep_id.lower()] = endpoint
        return ep_id

    @staticmethod
    def deployment_body(
        endpoint_id: str,
        location: str,
        *,
        name: str,
        instance_type: str = "Standard_NC4as_T4_v3",
        capacity: int = 1,
        model: str | None = None,
        environment_variables: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """A ManagedOnlineDeployment as ARM answers it."""
        ws_id = endpoint_id.split("/onlineEndpoints/")[0]
        created = created_at or now()
        return {
            "id": f"{endpoint_id}/deployments/{name}",
            "name": name,
            "type": f"{NAMESPACE}/workspaces/onlineEndpoints/deployments",
            "location": location,
            "tags": dict(tags or {}),
            "kind": "Managed",
            "sku": {"name": "Default", "tier": "Standard", "capacity": capacity},
            "properties": {
                "endpointComputeType": "Managed",
                "instanceType": instance_type,
                "model": model or f"{ws_id}/models/{name}-model/versions/1",
                "codeConfiguration": {
                    "codeId": f"{ws_id}/codes/{uuid.uuid4()}/versions/1",
                    "scoringScript": "score.py",
                },
                "environmentId": f"{ws_id}/environments/{name}-env/versions/3",
                "environmentVariables": dict(environment_variables or {}),
                "scaleSettings": {"scaleType": "Default"},
                "requestSettings": {
                    "requestTimeout": "PT5S",
                    "maxConcurrentRequestsPerInstance": 1,
                    "maxQueueWait": "PT0.5S",
                },
                "livenessProbe": {
                    "initialDelay": "PT10M",
                    "period": "PT10S",
                    "timeout": "PT2S",
                    "successThreshold": 1,
                    "failureThreshold": 30,
                },
                "readinessProbe": {
                    "initialDelay": "PT10S",
                    "period": "PT10S",
                    "timeout": "PT2S",
                    "successThreshold": 1,
                    "failureThreshold": 30,
                },
                "appInsightsEnabled": False,
                "egressPublicNetworkAccess": "Enabled",
                "description": None,
                "properties": {},
                "provisioningState": "Succeeded",
            },
            "systemData": _system_data(created),
        }

    def add_compute_instance(
        self,
        ws_id: str,
        name: str,
        *,
        vm_size: str = "STANDARD_NC4AS_T4_V3",
        state: str = "Running",
        idle_time_before_shutdown: str | None = None,
        last_operation: tuple[str, datetime, str] | None = None,
        tags: Mapping[str, str] | None = None,
        created_at: datetime | None = None,
    ) -> str:
        """A ComputeInstance in `state`; `last_operation` is (name, time, trigger), default
        (Create, created_at, User). Returns its id."""
        with self._server.lock:
            ws = self._workspace(ws_id)
        created = created_at or now()
        op_name, op_time, trigger = last_operation or ("Create", created, "User")
        location = str(ws["location"])
        inner: dict[str, Any] = {
            "vmSize": vm_size,
            "subnet": None,
            "sshSettings": {
                "sshPublicAccess": "Disabled",
                "adminUserName": "azureuser",
                "sshPort": 4001,
                "adminPublicKey": None,
            },
            "errors": [],
            "connectivityEndpoints": {
                "publicIpAddress": "203.0.113.20",
                "privateIpAddress": "10.0.0.5",
            },
            "applications": [
                {
                    "displayName": "Jupyter",
                    "endpointUri": f"https://{name}.{location}.instances.azureml.ms/tree/",
                },
                {
                    "displayName": "Jupyter Lab",
                    "endpointUri": f"https://{name}.{location}.instances.azureml.ms/lab",
                },
            ],
            "state": state,
            "lastOperation": {
                "operationName": op_name,
                "operationTime": stamp(op_time),
                "operationStatus": "Succeeded",
                "operationTrigger": trigger,
            },
            "createdBy": {"userOrgId": str(uuid.uuid4()), "userId": str(uuid.uuid4())},
            "applicationSharingPolicy": "Personal",
            "computeInstanceAuthorizationType": None,
            "personalComputeInstanceSettings": None,
            "setupScripts": None,
            "schedules": {"computeStartStop": []},
            "dataMounts": None,
            "dataDisks": None,
            "containers": None,
            "updateStatus": None,
            "versions": {"runtime": "3.0.01915.0001"},
        }
        if idle_time_before_shutdown is not None:
            inner["idleTimeBeforeShutdown"] = idle_time_before_shutdown
        return self._add_compute(ws, name, "ComputeInstance", inner, tags, created)

    def add_cluster(
        self, ws_id: str, name: str, *, vm_size: str = "STANDARD_D1_V2", nodes: int = 0
    ) -> str:
        """An AmlCompute cluster (never a finding: it scales to its minimum by itself)."""
        with self._server.lock:
            ws = self._workspace(ws_id)
        created = now()
        inner = {
            "vmSize": vm_size,
            "vmPriority": "LowPriority",
            "scaleSettings": {
                "maxNodeCount": max(nodes, 2),
                "minNodeCount": 0,
                "nodeIdleTimeBeforeScaleDown": "PT2M",
            },
            "subnet": None,
            "currentNodeCount": nodes,
            "targetNodeCount": nodes,
            "nodeStateCounts": {
                "preparingNodeCount": 0,
                "runningNodeCount": nodes,
                "idleNodeCount": 0,
                "unusableNodeCount": 0,
                "leavingNodeCount": 0,
                "preemptedNodeCount": 0,
            },
            "allocationState": "Steady",
            "allocationStateTransitionTime": stamp(created),
            "errors": None,
            "remoteLoginPortPublicAccess": "Enabled",
            "osType": "Linux",
            "virtualMachineImage": None,
            "isolatedNetwork": False,
            "enableNodePublicIp": True,
            "idleTimeBeforeShutdown": "PT120M",
        }
        return self._add_compute(ws, name, "AmlCompute", inner, None, created)

    def _add_compute(
        self,
        ws: Mapping[str, Any],
        name: str,
        compute_type: str,
        inner: dict[str, Any],
        tags: Mapping[str, str] | None,
        created: datetime,
    ) -> str:
        compute_id = f"{ws['id']}/computes/{name}"
        body = {
            "id": compute_id,
            "name": name,
            "type": f"{NAMESPACE}/workspaces/computes",
            "location": ws["location"],
            "tags": dict(tags or {}),
            "properties": {
                "createdOn": stamp(created),
                "modifiedOn": stamp(created),
                "disableLocalAuth": True,
                "description": None,
                "resourceId": None,
                "computeType": compute_type,
                "computeLocation": ws["location"],
                "provisioningState": "Succeeded",
                "provisioningErrors": None,
                "isAttachedCompute": False,
                "properties": inner,
            },
        }
        with self._server.lock:
            self._computes[compute_id.lower()] = _Compute(body)
        return compute_id

    # -- inspection and faults -----------------------------------------------------------------

    def endpoint(self, endpoint_id: str) -> dict[str, Any] | None:
        with self._server.lock:
            found = self._endpoints.get(endpoint_id.lower())
            return None if found is None else copy.deepcopy(found.body)

    def deployments(self, endpoint_id: str) -> dict[str, dict[str, Any]]:
        """The endpoint's deployments by name (empty when the endpoint does not exist)."""
        with self._server.lock:
            found = self._endpoints.get(endpoint_id.lower())
            if found is None:
                return {}
            return {str(d["name"]): copy.deepcopy(d) for d in found.deployments.values()}

    def recreate_deployment(self, endpoint_id: str, name: str) -> dict[str, Any]:
        """Someone deleted the deployment and created a new one of the same name (same spec, a
        new creation time); returns the new body."""
        with self._server.lock:
            endpoint = self._endpoints[endpoint_id.lower()]
            old = endpoint.deployments[name.lower()]
            new = copy.deepcopy(old)
            created = max(now(), _parse(old["systemData"]["createdAt"]) + timedelta(seconds=1))
            new["systemData"] = _system_data(created)
            endpoint.deployments[name.lower()] = new
            return copy.deepcopy(new)

    def recreate_deployment_after_lists(self, endpoint_id: str, name: str, lists: int = 1) -> None:
        """Someone recreates the deployment right after the next `lists` Online Deployments -
        List answers for the endpoint (e.g. between janitor's scan and its stop)."""
        with self._server.lock:
            self._endpoints[endpoint_id.lower()].recreate_after = (name, lists)

    def compute(self, compute_id: str) -> dict[str, Any] | None:
        with self._server.lock:
            found = self._computes.get(compute_id.lower())
            return None if found is None else copy.deepcopy(found.body)

    def compute_history(self, compute_id: str) -> list[str]:
        """The operations accepted on the compute ("stop", "start"), in order."""
        with self._server.lock:
            found = self._computes.get(compute_id.lower())
            return [] if found is None else list(found.history)

    def set_compute_state(self, compute_id: str, state: str) -> None:
        with self._server.lock:
            self._computes[compute_id.lower()].body["properties"]["properties"]["state"] = state

    def clear_last_operation(self, compute_id: str) -> None:
        """The compute's answers carry no `lastOperation` (as for an instance never operated
        on through the API)."""
        with self._server.lock:
            self._computes[compute_id.lower()].body["properties"]["properties"].pop(
                "lastOperation", None
            )

    def delete_compute(self, compute_id: str) -> None:
        with self._server.lock:
            self._computes.pop(compute_id.lower(), None)

    def fail_next_operation(
        self,
        compute_id: str,
        *,
        code: str = "InternalServerError",
        message: str = "Compute instance operation failed.",
    ) -> None:
        """The next stop or start of the compute ends `Failed` (its state back as it was)."""
        with self._server.lock:
            self._computes[compute_id.lower()].fail_next = (code, message)

    # -- handlers: workspaces and endpoints ----------------------------------------------------

    def _workspaces_list(self, request: Request) -> Reply:
        prefix = f"/subscriptions/{request.params['subscription'].lower()}/"
        with self._server.lock:
            rows = [
                copy.deepcopy(body)
                for key, body in sorted(self._workspaces.items())
                if key.startswith(prefix)
            ]
        return ok(page(self._server, request, rows, self.page_size))

    def _ws_path(self, request: Request) -> str:
        p = request.params
        ws_id = workspace_id(p["subscription"], p["group"], p["workspace"])
        if ws_id.lower() not in self._workspaces:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{NAMESPACE}/workspaces/{p['workspace']}' under resource group "
                f"'{p['group']}' was not found.",
            )
        return ws_id

    def _find_endpoint(self, request: Request) -> _Endpoint:
        ws_id = self._ws_path(request)
        name = request.params["endpoint"]
        found = self._endpoints.get(f"{ws_id}/onlineEndpoints/{name}".lower())
        if found is None:
            raise ArmError(
                404,
                "UserError",
                f"Could not find online endpoint '{name}' in workspace "
                f"'{request.params['workspace']}'.",
            )
        return found

    def _endpoints_list(self, request: Request) -> Reply:
        with self._server.lock:
            prefix = f"{self._ws_path(request)}/onlineEndpoints/".lower()
            rows = [
                copy.deepcopy(ep.body)
                for key, ep in sorted(self._endpoints.items())
                if key.startswith(prefix)
            ]
        return ok(page(self._server, request, rows, self.page_size))

    def _endpoint_get(self, request: Request) -> Reply:
        with self._server.lock:
            return ok(copy.deepcopy(self._find_endpoint(request).body))

    def _check_traffic(self, endpoint: _Endpoint, properties: Mapping[str, Any]) -> None:
        names = {d["name"].lower(): d["name"] for d in endpoint.deployments.values()}
        traffic: Mapping[str, Any] = properties.get("traffic") or {}
        mirror: Mapping[str, Any] = properties.get("mirrorTraffic") or {}
        for key in [*traffic, *mirror]:
            if key.lower() not in names:
                raise ArmError(
                    400,
                    "BadArgument",
                    f"Traffic refers to deployment '{key}', which does not exist in the endpoint.",
                )
        total = sum(int(v) for v in traffic.values())
        if total not in (0, 100):
            raise ArmError(
                400, "BadArgument", f"Traffic must add up to 0 or 100 percent, not {total}."
            )
        for key, value in mirror.items():
            if int(value) > 50:
                raise ArmError(400, "BadArgument", "Mirror traffic can be at most 50 percent.")
            if int(value) and int(traffic.get(key, 0)):
                raise ArmError(
                    400,
                    "BadArgument",
                    f"Deployment '{key}' cannot receive live and mirrored traffic at once.",
                )

    def _endpoint_put(self, request: Request) -> Reply:
        p = request.params
        body: Mapping[str, Any] = request.body
        properties: Mapping[str, Any] = body.get("properties") or {}
        if not body.get("location") or not properties.get("authMode"):
            raise ArmError(400, "BadArgument", "location and properties.authMode are required.")
        with self._server.lock:
            ws_id = self._ws_path(request)
            ep_id = f"{ws_id}/onlineEndpoints/{p['endpoint']}"
            endpoint = self._endpoints.get(ep_id.lower())
            created = endpoint is None
            if endpoint is None:
                endpoint = _Endpoint(
                    {
                        "id": ep_id,
                        "name": p["endpoint"],
                        "type": f"{NAMESPACE}/workspaces/onlineEndpoints",
                        "systemData": _system_data(now()),
                    }
                )
                self._endpoints[ep_id.lower()] = endpoint
            self._check_traffic(endpoint, properties)
            current = endpoint.body
            location = str(body["location"])
            for key in ("location", "tags", "kind", "identity", "sku"):
                if key in body:
                    current[key] = copy.deepcopy(body[key])
            kept = {
                k: v
                for k, v in (current.get("properties") or {}).items()
                if k in ("scoringUri", "swaggerUri")
            }
            current["properties"] = {
                "description": None,
                "traffic": {},
                "mirrorTraffic": {},
                **kept,
                **{k: copy.deepcopy(v) for k, v in properties.items() if k not in _READ_ONLY},
                "provisioningState": "Updating" if not created else "Creating",
            }
            current["systemData"]["lastModifiedAt"] = stamp(now())
            answer = copy.deepcopy(current)

        def done() -> None:
            current["properties"]["provisioningState"] = "Succeeded"

        accepted = self._server.start_operation(p["subscription"], NAMESPACE, location, done)
        headers = tuple(h for h in accepted.headers if h[0] != "Location")
        return Reply(201 if created else 200, ok(answer).body, headers)

    def _endpoint_patch(self, request: Request) -> Reply:
        body: Mapping[str, Any] = request.body
        extra = sorted(set(body) - _PATCHABLE)
        if extra:
            raise ArmError(
                400,
                "BadArgument",
                f"Online endpoint update (PATCH) takes only tags and identity, not "
                f"{', '.join(extra)}; change traffic with a create-or-update (PUT).",
            )
        with self._server.lock:
            endpoint = self._find_endpoint(request)
            for key in _PATCHABLE & set(body):
                endpoint.body[key] = copy.deepcopy(body[key])
            location = str(endpoint.body["location"])
        return self._server.start_operation(
            request.params["subscription"], NAMESPACE, location, lambda: None
        )

    # -- handlers: deployments -----------------------------------------------------------------

    def _deployments_list(self, request: Request) -> Reply:
        with self._server.lock:
            endpoint = self._find_endpoint(request)
            rows = [copy.deepcopy(d) for _, d in sorted(endpoint.deployments.items())]
            if endpoint.recreate_after is not None:
                name, left = endpoint.recreate_after
                endpoint.recreate_after = (name, left - 1) if left > 1 else None
                if left <= 1:
                    self.recreate_deployment(str(endpoint.body["id"]), name)
        return ok(page(self._server, request, rows, self.page_size))

    def _find_deployment(self, endpoint: _Endpoint, name: str) -> dict[str, Any]:
        found = endpoint.deployments.get(name.lower())
        if found is None:
            raise ArmError(404, "UserError", f"Could not find online deployment '{name}'.")
        return found

    def _deployment_get(self, request: Request) -> Reply:
        with self._server.lock:
            endpoint = self._find_endpoint(request)
            return ok(copy.deepcopy(self._find_deployment(endpoint, request.params["deployment"])))

    def _deployment_put(self, request: Request) -> Reply:
        p = request.params
        body: Mapping[str, Any] = request.body
        properties: Mapping[str, Any] = body.get("properties") or {}
        if not body.get("location") or not properties.get("endpointComputeType"):
            raise ArmError(
                400, "BadArgument", "location and properties.endpointComputeType are required."
            )
        with self._server.lock:
            endpoint = self._find_endpoint(request)
            name = p["deployment"]
            old = endpoint.deployments.get(name.lower())
            created = old is None
            at = now()
            deployment: dict[str, Any] = {
                "id": f"{endpoint.body['id']}/deployments/{name}",
                "name": name,
                "type": f"{NAMESPACE}/workspaces/onlineEndpoints/deployments",
                "location": body["location"],
                "tags": copy.deepcopy(body.get("tags") or {}),
                "kind": body.get("kind", "Managed"),
                "sku": copy.deepcopy(body.get("sku") or {"name": "Default", "capacity": 1}),
                "properties": {
                    **{k: copy.deepcopy(v) for k, v in properties.items() if k not in _READ_ONLY},
                    "provisioningState": "Creating" if created else "Updating",
                },
                "systemData": _system_data(at) if old is None else copy.deepcopy(old["systemData"]),
            }
            if "identity" in body:
                deployment["identity"] = copy.deepcopy(body["identity"])
            endpoint.deployments[name.lower()] = deployment
            answer = copy.deepcopy(deployment)

        def done() -> None:
            deployment["properties"]["provisioningState"] = "Succeeded"

        accepted = self._server.start_operation(
            p["subscription"], NAMESPACE, str(body["location"]), done
        )
        headers = tuple(h for h in accepted.headers if h[0] != "Location")
        return Reply(201 if created else 200, ok(answer).body, headers)

    def _deployment_delete(self, request: Request) -> Reply:
        p = request.params
        with self._server.lock:
            endpoint = self._find_endpoint(request)
            key = p["deployment"].lower()
            if key not in endpoint.deployments:
                return Reply(204)
            props = endpoint.body["properties"]
            for what, shares in (("traffic", props.get("traffic")),
                                 ("mirrored traffic", props.get("mirrorTraffic"))):  # fmt: skip
                share = {k.lower(): int(v) for k, v in (shares or {}).items()}.get(key, 0)
                if share:
                    raise ArmError(
                        400,
                        "BadArgument",
                        f"Deployment '{p['deployment']}' has {share}% {what}: set it to 0 "
                        "before deleting the deployment.",
                    )
            endpoint.deployments[key]["properties"]["provisioningState"] = "Deleting"
            location = str(endpoint.body["location"])

        def done() -> None:
            endpoint.deployments.pop(key, None)

        return self._server.start_operation(p["subscription"], NAMESPACE, location, done)

    # -- handlers: computes --------------------------------------------------------------------

    def _computes_list(self, request: Request) -> Reply:
        with self._server.lock:
            prefix = f"{self._ws_path(request)}/computes/".lower()
            rows = [
                copy.deepcopy(c.body)
                for key, c in sorted(self._computes.items())
                if key.startswith(prefix)
            ]
        return ok(page(self._server, request, rows, self.page_size))

    def _find_compute(self, request: Request) -> _Compute:
        ws_id = self._ws_path(request)
        name = request.params["compute"]
        found = self._computes.get(f"{ws_id}/computes/{name}".lower())
        if found is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{NAMESPACE}/workspaces/{request.params['workspace']}/computes/"
                f"{name}' under resource group '{request.params['group']}' was not found.",
            )
        return found

    def _compute_get(self, request: Request) -> Reply:
        with self._server.lock:
            return ok(copy.deepcopy(self._find_compute(request).body))

    def _transition(
        self, request: Request, verb: str, allowed: str, during: str, after: str
    ) -> Reply:
        with self._server.lock:
            compute = self._find_compute(request)
            props = compute.body["properties"]
            if props["computeType"] != "ComputeInstance":
                raise ArmError(400, "BadArgument", f"{verb} applies to compute instances only.")
            inner = props["properties"]
            before = str(inner["state"])
            if before != allowed:
                raise ArmError(
                    409,
                    "Conflict",
                    f"Compute instance '{request.params['compute']}' is {before}: it cannot "
                    f"{verb} now.",
                )
            error, compute.fail_next = compute.fail_next, None
            compute.history.append(verb)
            inner["state"] = during
            operation = {
                "operationName": verb.capitalize(),
                "operationTime": stamp(now()),
                "operationStatus": "InProgress",
                "operationTrigger": "User",
            }
            inner["lastOperation"] = operation
            location = str(compute.body["location"])

        def done() -> None:
            inner["state"] = after
            operation["operationStatus"] = "Succeeded"

        def failed() -> None:
            inner["state"] = before
            operation["operationStatus"] = "Failed"

        return self._server.start_operation(
            request.params["subscription"], NAMESPACE, location, done, on_failed=failed,
            error=error,
        )  # fmt: skip

    def _compute_stop(self, request: Request) -> Reply:
        return self._transition(request, "stop", "Running", "Stopping", "Stopped")

    def _compute_start(self, request: Request) -> Reply:
        return self._transition(request, "start", "Stopped", "Starting", "Running")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
