"""The offline price catalog and the monthly cost of a resource.

Prices come from `janitor/data/prices.json`, shipped with the package: hourly on-demand list
prices per service, region and SKU (an instance or machine type, an accelerator type...), for
any cloud. Nothing here calls a pricing API. A SKU or region that is not in the catalog has no
price (`None`); we never guess from a neighbouring region or a similar type.

A resource is priced as the sum over its priced units, each (service, sku, count) in its region:
- `details["units"]`: the generic path, for any cloud. A GCE VM with two attached GPUs is
  `[{"service": "gce", "sku": "n1-standard-8", "count": 1},
    {"service": "gce-gpu", "sku": "nvidia-tesla-t4", "count": 2}]`;
  adding its prices is then a matter of data (a `gce` and a `gce-gpu` table), not code.
- otherwise, for the AWS kinds: `details["variants"]` or the instance type x count, looked up
  in the kind's services (`_SERVICES_BY_KIND`).

A service's prices may carry their own provenance in the catalog's optional `sources` map
(`{"gce": {"source": "...", "as_of": "YYYY-MM-DD"}}`); else the catalog's `source` and `as_of`
apply.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources
from typing import Any, TypeGuard

from janitor.model import Resource

SAGEMAKER = "sagemaker"
SAGEMAKER_NOTEBOOK = "sagemaker-notebook"
EC2 = "ec2"

# The catalog's top-level keys that are not price tables.
_META_KEYS = frozenset({"source", "as_of", "currency", "hours_per_month", "note", "sources"})

# kind -> the catalog services to try, in order. A notebook uses its own table when the catalog
# has one with the type, else the hosting table (notebook and hosting list prices are close).
_SERVICES_BY_KIND: Mapping[str, tuple[str, ...]] = {
    "aws.sagemaker-endpoint": (SAGEMAKER,),
    "aws.sagemaker-notebook": (SAGEMAKER_NOTEBOOK, SAGEMAKER),
    "aws.ec2-gpu": (EC2,),
}


class CatalogError(ValueError):
    """The price catalog file is malformed."""


PriceTable = Mapping[str, Mapping[str, float]]  # region -> sku -> USD per hour


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a service's prices were taken from, and as of when."""

    source: str
    as_of: date


@dataclass(frozen=True, slots=True)
class Unit:
    """One priced part of a resource: `count` of `sku` in catalog service `service`."""

    service: str
    sku: str
    count: int


@dataclass(frozen=True, slots=True)
class PriceCatalog:
    source: str
    as_of: date
    currency: str
    hours_per_month: float
    note: str
    services: Mapping[str, PriceTable]
    # service -> its own provenance, when it differs from the catalog's `source` and `as_of`
    sources: Mapping[str, Provenance] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PriceCatalog:
        """Build a catalog from the parsed JSON document; raise CatalogError if it is malformed."""
        try:
            source = _text(data, "source")
            as_of_text = _text(data, "as_of")
            currency = _text(data, "currency")
            note = str(data.get("note", ""))
            hours = data["hours_per_month"]
        except KeyError as exc:
            raise CatalogError(f"price catalog: missing key {exc.args[0]!r}") from exc
        try:
            as_of = date.fromisoformat(as_of_text)
        except ValueError as exc:
            raise CatalogError(
                f"price catalog: as_of must be YYYY-MM-DD, got {as_of_text!r}"
            ) from exc
        if isinstance(hours, bool) or not isinstance(hours, int | float) or hours <= 0:
            raise CatalogError(f"price catalog: hours_per_month must be positive, got {hours!r}")
        services: dict[str, PriceTable] = {}
        for service, regions in data.items():
            if service in _META_KEYS:
                continue
            services[service] = _price_table(service, regions)
        sources = _sources(data.get("sources", {}), services)
        return cls(source, as_of, currency, float(hours), note, services, sources)

    def hourly(self, service: str, region: str, instance_type: str) -> float | None:
        """The on-demand price per hour of a SKU, or None when the catalog does not list it."""
        return self.services.get(service, {}).get(region, {}).get(instance_type)

    def provenance(self, service: str) -> Provenance:
        """Where `service`'s prices come from: its own entry in `sources`, else the catalog's."""
        return self.sources.get(service) or Provenance(self.source, self.as_of)

    def regions(self, service: str) -> list[str]:
        return sorted(self.services.get(service, {}))

    def instance_types(self, service: str, region: str) -> list[str]:
        return sorted(self.services.get(service, {}).get(region, {}))


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise CatalogError(f"price catalog: {key!r} must be a non-empty string, got {value!r}")
    return value


def _sources(data: Any, services: Mapping[str, PriceTable]) -> dict[str, Provenance]:
    if not isinstance(data, Mapping):
        raise CatalogError("price catalog: 'sources' must map service -> {source, as_of}")
    out: dict[str, Provenance] = {}
    for service, entry in data.items():
        where = f"price catalog: sources.{service}"
        if service not in services:
            raise CatalogError(f"{where}: no such service in the catalog")
        if not isinstance(entry, Mapping):
            raise CatalogError(f"{where} must be {{source, as_of}}")
        try:
            source = _text(entry, "source")
            as_of = date.fromisoformat(_text(entry, "as_of"))
        except KeyError as exc:
            raise CatalogError(f"{where}: missing key {exc.args[0]!r}") from exc
        except ValueError as exc:
            raise CatalogError(f"{where}: {exc}") from exc
        out[str(service)] = Provenance(source, as_of)
    return out


def _price_table(service: str, regions: Any) -> PriceTable:
    if not isinstance(regions, Mapping):
        raise CatalogError(f"price catalog: {service!r} must map region -> instance type -> price")
    table: dict[str, dict[str, float]] = {}
    for region, prices in regions.items():
        if not isinstance(prices, Mapping):
            raise CatalogError(f"price catalog: {service}.{region} must map instance type -> price")
        row: dict[str, float] = {}
        for instance_type, price in prices.items():
            if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
                raise CatalogError(
                    f"price catalog: {service}.{region}.{instance_type} must be a price >= 0, "
                    f"got {price!r}"
                )
            row[str(instance_type)] = float(price)
        table[str(region)] = row
    return table


@cache
def load_catalog() -> PriceCatalog:
    """The catalog shipped in `janitor.data`, read once per process."""
    text = resources.files("janitor.data").joinpath("prices.json").read_text(encoding="utf-8")
    return PriceCatalog.from_mapping(json.loads(text))


def monthly_cost_usd(resource: Resource, catalog: PriceCatalog | None = None) -> float | None:
    """What the resource costs per month at on-demand list prices, rounded to cents.

    The sum over the resource's units, each priced in the resource's region:
    - `details["units"]` (any cloud): mappings with `service`, `sku` and `count`;
    - else, for the kinds in `_SERVICES_BY_KIND` (AWS): `details["variants"]` (each a mapping with
      `instance_type` and `count`), else `instance_type` x `instance_count`, in the kind's
      services in order.
    None when the kind, region or any unit is not priced (a partial sum would understate the
    cost), or when `details["lifecycle"]` says the resource is not billed on demand (spot).
    """
    if resource.details.get("lifecycle", "on-demand") != "on-demand":
        return None  # spot, capacity blocks...: the catalog holds on-demand prices only
    if "monthly_storage_usd" in resource.details:
        # Storage kinds (checkpoints) price themselves per GB-month and class at the scan.
        stored = resource.details["monthly_storage_usd"]
        return float(stored) if isinstance(stored, int | float) else None
    cat = catalog if catalog is not None else load_catalog()
    region = resource.ref.region
    if "units" in resource.details:
        units = priced_units(resource.details["units"])
        if units is None:
            return None
        hourly_total = 0.0
        for unit in units:
            price = cat.hourly(unit.service, region, unit.sku)
            if price is None:
                return None
            hourly_total += price * unit.count
        return round(hourly_total * cat.hours_per_month, 2)
    services = _SERVICES_BY_KIND.get(resource.ref.kind)
    if services is None:
        return None
    legacy = _units(resource)
    if legacy is None:
        return None
    hourly_total = 0.0
    for instance_type, count in legacy:
        price = _first_price(cat, services, region, instance_type)
        if price is None:
            return None
        hourly_total += price * count
    return round(hourly_total * cat.hours_per_month, 2)


def priced_units(value: object) -> list[Unit] | None:
    """`details["units"]` as Units (those counted zero left out), or None when any is
    malformed: an unknown part makes the whole resource unpriced, never a partial sum."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes) or not value:
        return None
    units: list[Unit] = []
    for item in value:
        if not isinstance(item, Mapping):
            return None
        service, sku, count = item.get("service"), item.get("sku"), item.get("count")
        if not _is_count(count):
            return None
        if not isinstance(service, str) or not service or not isinstance(sku, str) or not sku:
            return None
        if count:
            units.append(Unit(service, sku, count))
    return units


def _first_price(
    catalog: PriceCatalog, services: Sequence[str], region: str, instance_type: str
) -> float | None:
    for service in services:
        price = catalog.hourly(service, region, instance_type)
        if price is not None:
            return price
    return None


def _units(resource: Resource) -> list[tuple[str, int]] | None:
    """(instance type, count) pairs to price, or None when they cannot be known."""
    variants = resource.details.get("variants")
    if isinstance(variants, Sequence) and not isinstance(variants, str | bytes) and variants:
        units: list[tuple[str, int]] = []
        for variant in variants:
            if not isinstance(variant, Mapping):
                return None
            instance_type = variant.get("instance_type")
            count = variant.get("count")
            if not _is_count(count):
                return None
            if count == 0:
                continue  # a variant scaled to zero costs nothing, whatever its type
            if not isinstance(instance_type, str) or not instance_type:
                return None  # serverless or unknown: not priced by instance-hour
            units.append((instance_type, count))
        return units
    if not resource.instance_type or not _is_count(resource.instance_count):
        return None
    return [(resource.instance_type, resource.instance_count)]


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
