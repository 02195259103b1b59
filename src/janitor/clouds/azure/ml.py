"""What the two Azure Machine Learning kinds share: the workspaces of a scope (Workspaces - List
By Subscription, one listing per subscription, filtered by the scope's regions), ARM times and
ids, and the price unit of an instance type."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from janitor.clouds.azure.arm import ArmApi
from janitor.clouds.azure.scope import ALL_REGIONS, AzureScope
from janitor.model import utc

NAMESPACE = "Microsoft.MachineLearningServices"
# Azure ML bills an online deployment's instances and a compute instance at the VM size's rate.
PRICE_SERVICE = "azure-ml"


def workspaces(api: ArmApi, scope: AzureScope) -> Iterator[dict[str, Any]]:
    """The scope's workspaces: every one of the subscription in the policy's regions, or those of
    the scope's own region."""
    path = f"/subscriptions/{scope.subscription}/providers/{NAMESPACE}/workspaces"
    for workspace in api.pages(path):
        location = str(workspace.get("location") or "").lower()
        if scope.region != ALL_REGIONS:
            if location == scope.region.lower():
                yield workspace
        elif scope.in_regions(location):
            yield workspace


def arm_time(text: object) -> datetime | None:
    """ARM's ISO 8601 times (offsets, 7-digit fractions, `Z`) as aware UTC datetimes."""
    if not text:
        return None
    value = str(text).strip().replace("Z", "+00:00")
    head, dot, tail = value.partition(".")
    if dot:  # Python takes at most 6 fraction digits
        digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]
        value = f"{head}.{digits[:6]}{tail[len(digits) :]}"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return None
    return utc(parsed)


def resource_group(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    return parts[lowered.index("resourcegroups") + 1]


def created_at(body: Mapping[str, Any]) -> datetime | None:
    system: Mapping[str, Any] = body.get("systemData") or {}
    return arm_time(system.get("createdAt"))


def price_unit(instance_type: str | None, count: int) -> list[dict[str, Any]]:
    """`details["units"]` for `count` instances of an Azure size (the catalog keys sizes as
    Azure writes them, `Standard_NC4as_T4_v3`; Azure ML answers some upper case)."""
    if not instance_type or count <= 0:
        return []
    return [{"service": PRICE_SERVICE, "sku": canonical_size(instance_type), "count": count}]


def canonical_size(size: str) -> str:
    """`STANDARD_NC4AS_T4_V3` -> the catalog's spelling when the catalog has the size, else as
    given (so an unknown size stays unpriced)."""
    from janitor.pricing import load_catalog

    catalog = load_catalog()
    for region in catalog.regions(PRICE_SERVICE):
        for known in catalog.instance_types(PRICE_SERVICE, region):
            if known.lower() == size.lower():
                return known
    return size
