"""One GCP scope: a project, and a region or "global", with the credentials and its clients.

Clients are built on first use and cached on the scope (one task uses one scope, from one
thread); building a scope does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the SDK is imported when a client is first built, not with this module
    from google.auth.transport.requests import AuthorizedSession
    from google.cloud import compute_v1

    from janitor.clouds.gcp.session import GcpCredentials

GLOBAL = "global"


@dataclass(frozen=True)
class GcpScope:
    project: str
    region: str  # a region ("us-central1"), or GLOBAL for a project-wide task
    credentials: GcpCredentials = field(repr=False, compare=False)
    # The policy's region filter for project-wide listings (GCE: the zones of these regions);
    # empty means every region.
    regions: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.project

    def in_regions(self, region: str) -> bool:
        """`region` passes the scope's region filter."""
        return not self.regions or region in self.regions

    def zone_wanted(self, zone: str) -> bool:
        """`zone` (e.g. "us-central1-a") lies in one of the scope's regions."""
        return self.in_regions(zone_region(zone))

    @cached_property
    def instances(self) -> compute_v1.InstancesClient:
        from janitor.clouds.gcp.session import instances_client

        return instances_client(self.credentials)

    @cached_property
    def zone_operations(self) -> compute_v1.ZoneOperationsClient:
        from janitor.clouds.gcp.session import zone_operations_client

        return zone_operations_client(self.credentials)

    @cached_property
    def session(self) -> AuthorizedSession:
        """google-auth's session for the REST APIs (Monitoring, Vertex AI, Notebooks)."""
        from janitor.clouds.gcp.session import authorized_session

        return authorized_session(self.credentials)


def zone_region(zone: str) -> str:
    """The region of a zone: "us-central1-a" -> "us-central1"."""
    return zone.rsplit("-", 1)[0]
