"""Microsoft.Compute virtual machines on the local ARM: list all (with `statusOnly=true`), get
(with `$expand=instanceView`), instance view, and the deallocate, start and powerOff
long-running operations. Shapes: tests/fixtures/azure/compute/."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
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

NAMESPACE = "Microsoft.Compute"
PAGE_SIZE = 50  # list_all's page size here (ARM chooses its own; the SDK follows nextLink)

POWER_STATES = (
    "running",
    "starting",
    "stopping",
    "stopped",
    "deallocating",
    "deallocated",
)
_DISPLAY = {
    "running": "VM running",
    "starting": "VM starting",
    "stopping": "VM stopping",
    "stopped": "VM stopped",
    "deallocating": "VM deallocating",
    "deallocated": "VM deallocated",
}


@dataclass
class _Vm:
    body: dict[str, Any]  # the VirtualMachine resource, without instanceView
    power_state: str
    provisioned_at: datetime  # the ProvisioningState status time
    fail_next: tuple[str, str] | None = None
    hide_power_state: int = 0  # list_all answers without PowerState this many times
    history: list[str] = field(default_factory=list)  # operations accepted, in order


def _vm_path(subscription: str, group: str, name: str) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{group}/providers/"
        f"Microsoft.Compute/virtualMachines/{name}"
    )


class ComputeService:
    """The virtual machines of every subscription; mounted by `AzureDevServer`."""

    def __init__(self, server: ArmDevServer, *, page_size: int = PAGE_SIZE) -> None:
        self._server = server
        self.page_size = page_size
        self._vms: dict[str, _Vm] = {}  # lower-cased id -> VM
        sub = r"/subscriptions/(?P<subscription>[^/]+)"
        vm = (
            rf"{sub}/resourceGroups/(?P<group>[^/]+)/providers/Microsoft\.Compute/"
            r"virtualMachines/(?P<name>[^/]+)"
        )
        server.route(
            "GET", rf"{sub}/providers/Microsoft\.Compute/virtualMachines",
            "VirtualMachines_ListAll", self._list_all,
        )  # fmt: skip
        server.route("GET", vm, "VirtualMachines_Get", self._get)
        server.route(
            "GET", rf"{vm}/instanceView", "VirtualMachines_InstanceView", self._instance_view
        )
        server.route("POST", rf"{vm}/deallocate", "VirtualMachines_Deallocate", self._deallocate)
        server.route("POST", rf"{vm}/start", "VirtualMachines_Start", self._start)
        server.route("POST", rf"{vm}/powerOff", "VirtualMachines_PowerOff", self._power_off)

    # -- seeding -------------------------------------------------------------------------------

    def add_vm(
        self,
        subscription: str,
        name: str,
        *,
        size: str = "Standard_NC6s_v3",
        location: str = "eastus",
        resource_group: str = "ml-rg",
        power_state: str = "running",
        spot: bool = False,
        ephemeral_os_disk: bool = False,
        tags: Mapping[str, str] | None = None,
        time_created: datetime | None = None,
        provisioned_at: datetime | None = None,
    ) -> dict[str, Any]:
        """A VM in `power_state` (see POWER_STATES). `time_created` is `timeCreated`;
        `provisioned_at` the time of its `ProvisioningState/succeeded` status (default: the
        creation time). Returns the resource body."""
        if power_state not in POWER_STATES:
            raise ValueError(f"unknown power state {power_state!r}")
        if not self._server.has_subscription(subscription):
            self._server.add_subscription(subscription)
        created = time_created or now()
        vm_id = _vm_path(subscription, resource_group, name)
        os_disk_name = f"{name}_OsDisk_1_{uuid.uuid4().hex}"
        os_disk: dict[str, Any] = {
            "osType": "Linux",
            "name": os_disk_name,
            "createOption": "FromImage",
            "caching": "ReadOnly" if ephemeral_os_disk else "ReadWrite",
            "managedDisk": {
                "storageAccountType": "Standard_LRS" if ephemeral_os_disk else "Premium_LRS",
                "id": (
                    f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
                    f"Microsoft.Compute/disks/{os_disk_name}"
                ),
            },
            "diskSizeGB": 128,
        }
        if ephemeral_os_disk:
            os_disk["diffDiskSettings"] = {"option": "Local", "placement": "ResourceDisk"}
        properties: dict[str, Any] = {
            "vmId": str(uuid.uuid4()),
            "hardwareProfile": {"vmSize": size},
            "storageProfile": {
                "imageReference": {
                    "publisher": "microsoft-dsvm",
                    "offer": "ubuntu-hpc",
                    "sku": "2204",
                    "version": "latest",
                    "exactVersion": "22.04.2024102301",
                },
                "osDisk": os_disk,
                "dataDisks": [],
            },
            "osProfile": {
                "computerName": name[:15],
                "adminUsername": "azureuser",
                "linuxConfiguration": {
                    "disablePasswordAuthentication": True,
                    "patchSettings": {"patchMode": "ImageDefault"},
                },
                "secrets": [],
            },
            "networkProfile": {
                "networkInterfaces": [
                    {
                        "id": (
                            f"/subscriptions/{subscription}/resourceGroups/{resource_group}/"
                            f"providers/Microsoft.Network/networkInterfaces/{name}-nic"
                        )
                    }
                ]
            },
            "diagnosticsProfile": {
                "bootDiagnostics": {
                    "enabled": True,
                    "storageUri": "https://examplediagstorage.blob.core.windows.net/",
                }
            },
            "provisioningState": "Succeeded",
            "timeCreated": stamp(created),
        }
        if spot:
            properties["priority"] = "Spot"
            properties["evictionPolicy"] = "Deallocate"
            properties["billingProfile"] = {"maxPrice": -1}
        body: dict[str, Any] = {
            "name": name,
            "id": vm_id,
            "type": "Microsoft.Compute/virtualMachines",
            "location": location,
            "tags": dict(tags or {}),
            "properties": properties,
            "resources": [],
        }
        with self._server.lock:
            self._vms[vm_id.lower()] = _Vm(body, power_state, provisioned_at or created)
        return copy.deepcopy(body)

    def vm(self, subscription: str, resource_group: str, name: str) -> dict[str, Any] | None:
        """The VM's body with its instance view, or None when it does not exist."""
        with self._server.lock:
            vm = self._vms.get(_vm_path(subscription, resource_group, name).lower())
            return None if vm is None else self._with_view(vm, full=True)

    def power_state(self, subscription: str, resource_group: str, name: str) -> str | None:
        with self._server.lock:
            vm = self._vms.get(_vm_path(subscription, resource_group, name).lower())
            return None if vm is None else vm.power_state

    def history(self, subscription: str, resource_group: str, name: str) -> list[str]:
        """The operations accepted on the VM, in order ("deallocate", "start", "powerOff")."""
        with self._server.lock:
            vm = self._vms.get(_vm_path(subscription, resource_group, name).lower())
            return [] if vm is None else list(vm.history)

    def set_power_state(
        self, subscription: str, resource_group: str, name: str, state: str
    ) -> None:
        if state not in POWER_STATES:
            raise ValueError(f"unknown power state {state!r}")
        with self._server.lock:
            self._find(subscription, resource_group, name).power_state = state

    def delete_vm(self, subscription: str, resource_group: str, name: str) -> None:
        with self._server.lock:
            self._vms.pop(_vm_path(subscription, resource_group, name).lower(), None)

    # -- faults --------------------------------------------------------------------------------

    def fail_next_operation(
        self,
        subscription: str,
        resource_group: str,
        name: str,
        *,
        code: str = "AllocationFailed",
        message: str = "Allocation failed. We do not have sufficient capacity for the "
        "requested VM size in this region.",
    ) -> None:
        """The next operation on the VM ends `Failed` with this error (its state unchanged)."""
        with self._server.lock:
            self._find(subscription, resource_group, name).fail_next = (code, message)

    def hide_power_state(
        self, subscription: str, resource_group: str, name: str, *, times: int = 1
    ) -> None:
        """The next `times` list_all answers leave the VM's PowerState status out (as ARM does
        for a VM whose state is being updated)."""
        with self._server.lock:
            self._find(subscription, resource_group, name).hide_power_state = times

    # -- handlers ------------------------------------------------------------------------------

    def _find(self, subscription: str, group: str, name: str) -> _Vm:
        vm = self._vms.get(_vm_path(subscription, group, name).lower())
        if vm is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group "
                f"'{group}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            )
        return vm

    def _statuses(self, vm: _Vm, *, power: bool = True) -> list[dict[str, Any]]:
        statuses: list[dict[str, Any]] = [
            {
                "code": "ProvisioningState/succeeded",
                "level": "Info",
                "displayStatus": "Provisioning succeeded",
                "time": stamp(vm.provisioned_at),
            }
        ]
        if power:
            statuses.append(
                {
                    "code": f"PowerState/{vm.power_state}",
                    "level": "Info",
                    "displayStatus": _DISPLAY[vm.power_state],
                }
            )
        return statuses

    def _with_view(self, vm: _Vm, *, full: bool, power: bool = True) -> dict[str, Any]:
        body = copy.deepcopy(vm.body)
        view: dict[str, Any] = {"statuses": self._statuses(vm, power=power)}
        if full:
            view = {
                "computerName": body["properties"]["osProfile"]["computerName"],
                "osName": "ubuntu",
                "osVersion": "22.04",
                "hyperVGeneration": "V2",
                **view,
            }
        body["properties"]["instanceView"] = view
        return body

    def _list_all(self, request: Request) -> Reply:
        subscription = request.params["subscription"].lower()
        status_only = (request.arg("statusOnly") or "").lower() == "true"
        rows: list[dict[str, Any]] = []
        with self._server.lock:
            for key in sorted(self._vms):
                if not key.startswith(f"/subscriptions/{subscription}/"):
                    continue
                vm = self._vms[key]
                if not status_only:
                    rows.append(copy.deepcopy(vm.body))
                    continue
                power = vm.hide_power_state <= 0
                if not power:
                    vm.hide_power_state -= 1
                rows.append(self._with_view(vm, full=False, power=power))
        return ok(page(self._server, request, rows, self.page_size))

    def _get(self, request: Request) -> Reply:
        p = request.params
        with self._server.lock:
            vm = self._find(p["subscription"], p["group"], p["name"])
            if (request.arg("$expand") or "").lower() == "instanceview":
                return ok(self._with_view(vm, full=True))
            return ok(copy.deepcopy(vm.body))

    def _instance_view(self, request: Request) -> Reply:
        p = request.params
        with self._server.lock:
            vm = self._find(p["subscription"], p["group"], p["name"])
            return ok(self._with_view(vm, full=True)["properties"]["instanceView"])

    def _transition(
        self, request: Request, verb: str, during: str, after: str, allowed: tuple[str, ...]
    ) -> Reply:
        p = request.params
        with self._server.lock:
            vm = self._find(p["subscription"], p["group"], p["name"])
            if vm.power_state not in allowed:
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"Operation '{verb}' is not allowed on VM '{p['name']}' since the VM is "
                    f"{vm.power_state}.",
                )
            before = vm.power_state
            error, vm.fail_next = vm.fail_next, None
            vm.history.append(verb)
            vm.power_state = during
            vm_id = vm.body["id"].lower()

        # As ARM does, the ProvisioningState status time moves to the operation's end.
        def done() -> None:
            current = self._vms.get(vm_id)
            if current is not None:
                current.power_state = after
                current.provisioned_at = now()

        def failed() -> None:
            current = self._vms.get(vm_id)
            if current is not None:
                current.power_state = before
                current.provisioned_at = now()

        location = str(vm.body["location"])
        return self._server.start_operation(
            p["subscription"], NAMESPACE, location, done, on_failed=failed, error=error
        )

    def _deallocate(self, request: Request) -> Reply:
        return self._transition(
            request, "deallocate", "deallocating", "deallocated",
            ("running", "stopped", "starting", "stopping", "deallocated"),
        )  # fmt: skip

    def _start(self, request: Request) -> Reply:
        return self._transition(
            request, "start", "starting", "running",
            ("running", "stopped", "deallocated", "starting"),
        )  # fmt: skip

    def _power_off(self, request: Request) -> Reply:
        return self._transition(
            request, "powerOff", "stopping", "stopped", ("running", "stopped", "starting")
        )
