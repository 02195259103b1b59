"""One Azure scope: a subscription, and a region or every region, with its clients.

Clients are built on first use and cached on the scope (one task uses one scope, from one
thread); building a scope does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the SDK is imported when a client is first built, not with this module
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.monitor import MonitorManagementClient

    from janitor.clouds.azure.session import AzureCredentials

ALL_REGIONS = "global"  # a subscription-wide task: every region (the policy's filter applies)


@dataclass(frozen=True)
class AzureScope:
    subscription: str
    region: str  # an Azure region ("eastus"), or ALL_REGIONS for a subscription-wide task
    credentials: AzureCredentials = field(repr=False, compare=False)
    # The policy's region filter for subscription-wide listings; empty means every region.
    regions: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.subscription

    def in_regions(self, region: str) -> bool:
        """`region` (an ARM location, any case) passes the scope's region filter."""
        return not self.regions or region.lower() in {r.lower() for r in self.regions}

    @cached_property
    def compute(self) -> ComputeManagementClient:
        from janitor.clouds.azure.session import compute_client

        return compute_client(self.credentials, self.subscription)

    @cached_property
    def monitor(self) -> MonitorManagementClient:
        from janitor.clouds.azure.session import monitor_client

        return monitor_client(self.credentials, self.subscription)
