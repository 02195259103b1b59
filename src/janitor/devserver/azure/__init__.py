"""A local Azure Resource Manager for tests and the demo, reached by the real Azure SDK clients.

No emulator exists for ARM or Azure Monitor, so `AzureDevServer` answers the paths janitor
uses on 127.0.0.1, over HTTPS (the SDK's bearer-token policy refuses plain http) with a
certificate from a test CA it generates (`TestCa`; trust `ca_file` through `REQUESTS_CA_BUNDLE`
and `SSL_CERT_FILE`). `env()` is the whole environment a test or the demo sets.

* `GET /msi/token`: the App Service managed-identity endpoint (`IDENTITY_ENDPOINT`,
  `IDENTITY_HEADER`) that the real `DefaultAzureCredential` chain calls: `api-version=2019-08-01`,
  `resource`, header `X-IDENTITY-HEADER`; answers `access_token`, `expires_on` (epoch seconds, a
  string), `resource`, `token_type`, `client_id`.
* Every other request needs `Authorization: Bearer` with a token issued there (401 otherwise).
* Subscriptions - List / Get (`add_subscription`).
* Compute (`compute`, `ComputeService`): virtual machines list all (`statusOnly=true` adds each
  VM's instance-view statuses; pages with `nextLink`), get (`$expand=instanceView`), instance
  view, and deallocate / start / powerOff as long-running operations.
* Monitor (`monitor`, `MonitorService`): Metrics - List At Subscription Scope and Metrics - List,
  with the real `top` semantics (10 series by default); the subscription scope serves VMs only
  until `monitor.enable_cross_resource(resource_type)` (Azure does not document which types it
  serves: a test says which it assumes).

Long-running operations (`ArmDevServer.start_operation`) answer 202 with
`Azure-AsyncOperation`, `Location` and `Retry-After: 1`; `InProgress` on the first poll,
`Succeeded` (or `Failed`) on a later one, and a final Location GET.

Every request is counted per REST operation id (`calls`, e.g. `VirtualMachines_ListAll`,
`Metrics_ListAtSubscriptionScope`, `AsyncOperation_Get`). Faults: `deny_subscription`
(403 `AuthorizationFailed`), `rate_limit` (429 + `Retry-After`), `outage` (503), and per VM
`compute.delete_vm`, `compute.fail_next_operation`, `compute.hide_power_state`.

Adding a service (e.g. `devserver/azure/ml.py` for Azure ML) without touching these files:

    class MachineLearningService:
        def __init__(self, server: ArmDevServer) -> None:
            self._server = server
            server.route("GET", r"/subscriptions/(?P<subscription>[^/]+)/providers/"
                         r"Microsoft\\.MachineLearningServices/workspaces",
                         "Workspaces_ListBySubscription", self._workspaces)
        def _workspaces(self, request: Request) -> Reply:
            return ok(page(self._server, request, rows, 100))

    ml = server.mount(MachineLearningService)   # the instance, also at server.services[...]

`route(method, pattern, operation_id, handler)`: `pattern` is a regex over the unquoted path
(matched whole, case-insensitively); its named groups are `request.params`; a group named
`subscription` makes the route obey `deny_subscription`; the request is counted, authenticated
and put through the faults before `handler(request) -> Reply` runs. Raise `ArmError(status,
code, message)` for an ARM error. `start_operation(subscription, namespace, location, on_done,
on_failed=..., error=...)` returns the 202 of an asynchronous operation. `monitor.add_daily(...,
namespace=..., dimensions={"deployment": ...})` and `monitor.register_metric` serve any
namespace's metrics. `server.lock` guards shared state; `page()` pages a list like ARM.
"""

from __future__ import annotations

from typing import Any, TypeVar

from janitor.devserver.azure.compute import ComputeService
from janitor.devserver.azure.core import (
    ArmDevServer,
    ArmError,
    Reply,
    Request,
    TestCa,
    ok,
    page,
)
from janitor.devserver.azure.monitor import MonitorService

__all__ = [
    "ArmDevServer",
    "ArmError",
    "AzureDevServer",
    "ComputeService",
    "MonitorService",
    "Reply",
    "Request",
    "TestCa",
    "ok",
    "page",
]

S = TypeVar("S")


class AzureDevServer(ArmDevServer):
    """ARM with Compute and Monitor mounted; more services with `mount`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services: dict[type[Any], Any] = {}
        self.compute = self.mount(ComputeService)
        self.monitor = self.mount(MonitorService)

    def mount(self, service: type[S]) -> S:
        """Build `service(self)` (it adds its routes) once, and return it."""
        if service not in self.services:
            self.services[service] = service(self)  # type: ignore[call-arg]
        instance: S = self.services[service]
        return instance
