from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from janitor.model import Cloud, Resource, ResourceRef
from janitor.pricing import _SERVICES_BY_KIND as AWS_SERVICES_BY_KIND
from janitor.pricing import CatalogError, PriceCatalog, load_catalog, monthly_cost_usd

REGIONS = ("us-east-1", "us-west-2", "eu-west-1")

REQUIRED_SAGEMAKER = (
    *(f"ml.{f}.{s}" for f in ("t2", "t3") for s in ("medium", "large", "xlarge")),
    *(f"ml.m5.{s}" for s in ("large", "xlarge", "2xlarge", "4xlarge")),
    *(f"ml.c5.{s}" for s in ("large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "18xlarge")),
    *(f"ml.g4dn.{s}" for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge")),
    *(f"ml.g5.{s}" for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "48xlarge")),
    *(f"ml.g6.{s}" for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge")),
    "ml.p3.2xlarge",
    "ml.p3.8xlarge",
    "ml.p3.16xlarge",
    "ml.p4d.24xlarge",
    "ml.p5.48xlarge",
    *(f"ml.inf2.{s}" for s in ("xlarge", "8xlarge", "24xlarge", "48xlarge")),
    "ml.trn1.2xlarge",
    "ml.trn1.32xlarge",
)

_GPU_SIZES = ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")
REQUIRED_EC2 = (
    "p3.2xlarge",
    "p3.8xlarge",
    "p3.16xlarge",
    "p4d.24xlarge",
    "p5.48xlarge",
    *(f"g4dn.{s}" for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    *(f"g5.{s}" for s in (*_GPU_SIZES, "48xlarge")),
    *(f"g6.{s}" for s in (*_GPU_SIZES, "48xlarge")),
    "trn1.2xlarge",
    "trn1.32xlarge",
    *(f"inf2.{s}" for s in ("xlarge", "8xlarge", "24xlarge", "48xlarge")),
    "dl1.24xlarge",
)

CREATED = datetime(2024, 1, 1, tzinfo=UTC)


def resource(
    kind: str,
    *,
    region: str = "us-east-1",
    instance_type: str | None = None,
    count: int = 1,
    details: Mapping[str, Any] | None = None,
) -> Resource:
    ref = ResourceRef(Cloud.AWS, kind, "123456789012", region, "r-1")
    return Resource(
        ref=ref,
        name="r-1",
        state="InService",
        created_at=CREATED,
        instance_type=instance_type,
        instance_count=count,
        details=details or {},
    )


def small_catalog(**extra: Any) -> PriceCatalog:
    doc: dict[str, Any] = {
        "source": "test",
        "as_of": "2024-06-01",
        "currency": "USD",
        "hours_per_month": 730,
        "note": "",
        "sagemaker": {
            "us-east-1": {"ml.g5.xlarge": 1.5, "ml.t3.medium": 0.05},
            "eu-west-1": {"ml.g5.xlarge": 1.65},
        },
        "ec2": {"us-east-1": {"g5.xlarge": 1.0}},
    }
    doc.update(extra)
    return PriceCatalog.from_mapping(doc)


# --- the shipped catalog ---------------------------------------------------------------------


def test_catalog_is_loaded_once_and_describes_its_provenance() -> None:
    catalog = load_catalog()
    assert load_catalog() is catalog
    assert catalog.source
    assert "Price List API" in catalog.source  # honest about not being fetched
    assert isinstance(catalog.as_of, date)
    assert catalog.currency == "USD"
    assert catalog.hours_per_month == 730


@pytest.mark.parametrize(
    ("service", "required"), [("sagemaker", REQUIRED_SAGEMAKER), ("ec2", REQUIRED_EC2)]
)
def test_every_instance_type_is_listed_in_all_three_regions(
    service: str, required: tuple[str, ...]
) -> None:
    catalog = load_catalog()
    assert set(REGIONS) <= set(catalog.regions(service))
    types = {region: set(catalog.instance_types(service, region)) for region in REGIONS}
    assert types["us-east-1"] == types["us-west-2"] == types["eu-west-1"]
    missing = set(required) - types["us-east-1"]
    assert not missing, f"{service}: missing {sorted(missing)}"


def aws_services(catalog: PriceCatalog) -> list[str]:
    """The catalog's AWS tables (those the AWS kinds read): other clouds' have other regions."""
    return sorted(set(catalog.services) & {s for ss in AWS_SERVICES_BY_KIND.values() for s in ss})


def test_every_service_lists_the_same_types_in_each_of_its_regions() -> None:
    catalog = load_catalog()
    assert aws_services(catalog) == ["ec2", "sagemaker"]
    for service in aws_services(catalog):
        regions = catalog.regions(service)
        assert set(REGIONS) <= set(regions), service
        first = set(catalog.instance_types(service, regions[0]))
        for region in regions:
            assert set(catalog.instance_types(service, region)) == first, (service, region)


def test_every_price_of_every_service_is_positive() -> None:
    catalog = load_catalog()
    for service, table in catalog.services.items():
        assert table, service
        for region, row in table.items():
            assert row, (service, region)
            assert all(price > 0 for price in row.values()), (service, region)


def test_prices_are_positive_and_ireland_is_never_cheaper_than_virginia() -> None:
    catalog = load_catalog()
    for service in aws_services(catalog):
        for instance_type in catalog.instance_types(service, "us-east-1"):
            us = catalog.hourly(service, "us-east-1", instance_type)
            eu = catalog.hourly(service, "eu-west-1", instance_type)
            assert us is not None
            assert eu is not None
            assert us > 0
            assert us <= eu <= us * 1.25, (service, instance_type)


def test_sagemaker_types_carry_the_ml_prefix_and_ec2_types_do_not() -> None:
    catalog = load_catalog()
    assert all(t.startswith("ml.") for t in catalog.instance_types("sagemaker", "us-east-1"))
    assert not any(t.startswith("ml.") for t in catalog.instance_types("ec2", "us-east-1"))


def test_sagemaker_hosting_costs_more_than_the_same_ec2_instance() -> None:
    catalog = load_catalog()
    for ml_type in catalog.instance_types("sagemaker", "us-east-1"):
        ec2 = catalog.hourly("ec2", "us-east-1", ml_type.removeprefix("ml."))
        hosting = catalog.hourly("sagemaker", "us-east-1", ml_type)
        if ec2 is not None and hosting is not None:
            assert hosting > ec2, ml_type


AZURE_REGIONS = ("eastus", "westus2", "westeurope")


def test_azure_vm_lists_gpu_sizes_in_its_three_regions_only() -> None:
    catalog = load_catalog()
    assert catalog.regions("azure-vm") == sorted(AZURE_REGIONS)
    for region in AZURE_REGIONS:
        sizes = catalog.instance_types("azure-vm", region)
        assert sizes, region
        assert all(size.startswith("Standard_N") for size in sizes), region


def test_azure_vm_westeurope_is_checked_not_an_eastus_uplift() -> None:
    # The old westeurope table was every eastus price x 1.10; the Retail Prices API figures
    # are about 1.25 x (1.30 for ND96asr_v4), so no westeurope price is that estimate any more.
    catalog = load_catalog()
    for size in catalog.instance_types("azure-vm", "westeurope"):
        eu = catalog.hourly("azure-vm", "westeurope", size)
        us = catalog.hourly("azure-vm", "eastus", size)
        assert eu is not None
        assert us is not None, size  # westeurope prices only sizes eastus prices too
        assert eu != pytest.approx(us * 1.10, abs=0.001), size
        assert us < eu <= us * 1.35, size


@pytest.mark.parametrize(
    ("region", "size"),
    [
        # Not in the westeurope Retail Prices snapshot checked: no price rather than a guess.
        ("westeurope", "Standard_NC24ads_A100_v4"),
        ("westeurope", "Standard_ND40rs_v2"),
        ("westeurope", "Standard_NV36ads_A10_v5"),
        ("westeurope", "Standard_NV12s_v3"),
        # No westus2 row in the public catalog checked.
        ("westus2", "Standard_NC40ads_H100_v5"),
        ("westus2", "Standard_ND96isr_H100_v5"),
        ("westus2", "Standard_ND96amsr_A100_v4"),
    ],
)
def test_azure_vm_sizes_without_a_checked_price_get_none(region: str, size: str) -> None:
    catalog = load_catalog()
    assert catalog.hourly("azure-vm", "eastus", size) is not None  # a known size ...
    assert catalog.hourly("azure-vm", region, size) is None  # ... unpriced in that region


def test_azure_vm_carries_its_own_checked_source_and_date() -> None:
    provenance = load_catalog().provenance("azure-vm")
    assert "Retail Prices API" in provenance.source
    assert "skypilot-catalog" in provenance.source
    assert "undated" in provenance.source  # the eastus/westus2 copy says no date of its own
    assert provenance.as_of == date(2026, 8, 20)


# --- hourly ----------------------------------------------------------------------------------


def test_hourly_reads_the_catalog() -> None:
    catalog = small_catalog()
    assert catalog.hourly("sagemaker", "us-east-1", "ml.g5.xlarge") == 1.5
    assert catalog.hourly("ec2", "us-east-1", "g5.xlarge") == 1.0


@pytest.mark.parametrize(
    ("service", "region", "instance_type"),
    [
        ("ec2", "us-east-1", "g99.xlarge"),  # unknown type
        ("ec2", "eu-west-1", "g5.xlarge"),  # known type, region not listed: no fallback
        ("sagemaker", "ap-south-1", "ml.g5.xlarge"),
        ("lambda", "us-east-1", "g5.xlarge"),  # unknown service
    ],
)
def test_hourly_is_none_when_not_listed(service: str, region: str, instance_type: str) -> None:
    assert small_catalog().hourly(service, region, instance_type) is None


# --- monthly_cost_usd ------------------------------------------------------------------------


def test_single_instance_cost_uses_catalog_price_times_count_times_hours() -> None:
    catalog = load_catalog()
    hourly = catalog.hourly("ec2", "us-east-1", "g5.12xlarge")
    assert hourly is not None
    r = resource("aws.ec2-gpu", instance_type="g5.12xlarge")
    assert monthly_cost_usd(r) == round(hourly * 730, 2)
    r2 = resource("aws.ec2-gpu", instance_type="g5.12xlarge", count=2)
    assert monthly_cost_usd(r2, catalog) == round(hourly * 2 * 730, 2)


def test_cost_is_rounded_to_cents() -> None:
    r = resource("aws.sagemaker-endpoint", instance_type="ml.t3.medium", count=3)
    assert monthly_cost_usd(r, small_catalog()) == 109.5  # 0.05 * 3 * 730
    catalog = load_catalog()
    for instance_type in catalog.instance_types("ec2", "eu-west-1"):
        cost = monthly_cost_usd(
            resource("aws.ec2-gpu", region="eu-west-1", instance_type=instance_type), catalog
        )
        assert cost is not None
        assert cost == round(cost, 2)


def test_multi_variant_endpoint_sums_every_variant() -> None:
    details = {
        "variants": [
            {"name": "a", "instance_type": "ml.g5.xlarge", "count": 2},
            {"name": "b", "instance_type": "ml.t3.medium", "count": 1},
        ]
    }
    # instance_type/count on the resource are ignored when variants are known
    r = resource("aws.sagemaker-endpoint", instance_type="ml.t3.medium", count=9, details=details)
    assert monthly_cost_usd(r, small_catalog()) == round((1.5 * 2 + 0.05) * 730, 2)


def test_multi_variant_endpoint_with_the_real_catalog() -> None:
    catalog = load_catalog()
    g5 = catalog.hourly("sagemaker", "eu-west-1", "ml.g5.2xlarge")
    m5 = catalog.hourly("sagemaker", "eu-west-1", "ml.m5.xlarge")
    assert g5 is not None
    assert m5 is not None
    details = {
        "variants": (
            {"instance_type": "ml.g5.2xlarge", "count": 1},
            {"instance_type": "ml.m5.xlarge", "count": 3},
        )
    }
    r = resource("aws.sagemaker-endpoint", region="eu-west-1", details=details)
    assert monthly_cost_usd(r, catalog) == round((g5 + 3 * m5) * 730, 2)


def test_a_variant_scaled_to_zero_costs_nothing() -> None:
    details = {
        "variants": [
            {"instance_type": "ml.g5.xlarge", "count": 1},
            {"instance_type": "ml.g5.xlarge", "count": 0},
        ]
    }
    r = resource("aws.sagemaker-endpoint", details=details)
    assert monthly_cost_usd(r, small_catalog()) == round(1.5 * 730, 2)


@pytest.mark.parametrize(
    "variants",
    [
        # one unpriced variant makes the whole endpoint unpriced: no partial sums
        [
            {"instance_type": "ml.g5.xlarge", "count": 1},
            {"instance_type": "ml.x9.huge", "count": 1},
        ],
        [{"instance_type": None, "count": 1}],  # serverless variant
        [{"instance_type": "ml.g5.xlarge"}],  # count missing
        [{"instance_type": "ml.g5.xlarge", "count": -1}],
        [{"instance_type": "ml.g5.xlarge", "count": True}],
        ["ml.g5.xlarge"],
    ],
)
def test_unpriceable_variants_give_none(variants: list[Any]) -> None:
    r = resource("aws.sagemaker-endpoint", details={"variants": variants})
    assert monthly_cost_usd(r, small_catalog()) is None


@pytest.mark.parametrize(
    ("kind", "region", "instance_type"),
    [
        ("aws.ec2-gpu", "us-east-1", "g99.xlarge"),  # unknown type
        ("aws.ec2-gpu", "us-east-1", None),  # type not described
        ("aws.ec2-gpu", "eu-west-1", "g5.xlarge"),  # region missing: no silent fallback
        ("aws.ec2-gpu", "us-east-1", "ml.g5.xlarge"),  # SageMaker type on EC2
        ("aws.sagemaker-endpoint", "us-east-1", "g5.xlarge"),  # EC2 type on SageMaker
        ("gcp.gce-gpu", "us-east-1", "g5.xlarge"),  # kind not priced
        ("aws.s3-checkpoint", "us-east-1", "g5.xlarge"),
    ],
)
def test_cost_is_none_rather_than_a_guess(
    kind: str, region: str, instance_type: str | None
) -> None:
    r = resource(kind, region=region, instance_type=instance_type)
    assert monthly_cost_usd(r, small_catalog()) is None


@pytest.mark.parametrize(("lifecycle", "priced"), [("on-demand", True), ("spot", False)])
def test_only_on_demand_instances_are_priced(lifecycle: str, priced: bool) -> None:
    r = resource("aws.ec2-gpu", instance_type="g5.xlarge", details={"lifecycle": lifecycle})
    assert (monthly_cost_usd(r, small_catalog()) is not None) is priced


def test_real_catalog_does_not_fall_back_to_another_region() -> None:
    r = resource("aws.ec2-gpu", region="ap-southeast-2", instance_type="g5.xlarge")
    assert load_catalog().hourly("ec2", "us-east-1", "g5.xlarge") is not None
    assert monthly_cost_usd(r) is None


def test_notebook_is_priced_from_the_hosting_table_without_a_notebook_section() -> None:
    r = resource("aws.sagemaker-notebook", instance_type="ml.t3.medium")
    assert monthly_cost_usd(r, small_catalog()) == 36.5


def test_notebook_prefers_a_notebook_section_when_present() -> None:
    catalog = small_catalog(**{"sagemaker-notebook": {"us-east-1": {"ml.t3.medium": 0.04}}})
    notebook = resource("aws.sagemaker-notebook", instance_type="ml.t3.medium")
    assert monthly_cost_usd(notebook, catalog) == 29.2
    # types the notebook table lacks still come from hosting
    big = resource("aws.sagemaker-notebook", instance_type="ml.g5.xlarge")
    assert monthly_cost_usd(big, catalog) == 1095.0
    # endpoints never read the notebook table
    endpoint = resource("aws.sagemaker-endpoint", instance_type="ml.t3.medium")
    assert monthly_cost_usd(endpoint, catalog) == 36.5


@pytest.mark.parametrize(
    "broken",
    [
        {"hours_per_month": 0},
        {"hours_per_month": "730"},
        {"as_of": "June 2024"},
        {"source": ""},
        {"ec2": ["g5.xlarge"]},
        {"ec2": {"us-east-1": ["g5.xlarge"]}},
        {"ec2": {"us-east-1": {"g5.xlarge": "1.0"}}},
        {"ec2": {"us-east-1": {"g5.xlarge": -1}}},
    ],
)
def test_a_malformed_catalog_is_rejected(broken: dict[str, Any]) -> None:
    with pytest.raises(CatalogError):
        small_catalog(**broken)


def test_a_catalog_without_a_required_key_is_rejected() -> None:
    with pytest.raises(CatalogError, match="currency"):
        PriceCatalog.from_mapping({"source": "x", "as_of": "2024-01-01", "hours_per_month": 1})


# --- the generic path: details["units"], for any cloud -----------------------------------------


def gcp_catalog() -> PriceCatalog:
    """A tiny catalog with GCP-shaped services, added as data only."""
    return small_catalog(
        gce={"us-central1": {"n1-standard-8": 0.38, "a2-highgpu-1g": 3.67}},
        **{
            "gce-gpu": {"us-central1": {"nvidia-tesla-t4": 0.35, "nvidia-l4": 0.56}},
            "vertex-prediction": {"us-central1": {"n1-standard-4": 0.22}},
        },
        sources={"gce": {"source": "GCE pricing page", "as_of": "2026-11-01"}},
    )


def gcp_vm(units: Any, *, region: str = "us-central1", **details: Any) -> Resource:
    ref = ResourceRef(Cloud.GCP, "gcp.gce-gpu", "ml-research-42", region, "us-central1-a/vm-1")
    return Resource(
        ref=ref,
        name="vm-1",
        state="RUNNING",
        created_at=CREATED,
        details={"units": units, **details},
    )


T4_VM = [
    {"service": "gce", "sku": "n1-standard-8", "count": 1},
    {"service": "gce-gpu", "sku": "nvidia-tesla-t4", "count": 2},
]


def test_a_gcp_vm_with_two_attached_gpus_is_priced_through_its_units() -> None:
    # machine type + 2 x T4, for a kind `_SERVICES_BY_KIND` does not know
    assert monthly_cost_usd(gcp_vm(T4_VM), gcp_catalog()) == round((0.38 + 2 * 0.35) * 730, 2)


def test_units_price_any_service_of_the_catalog() -> None:
    endpoint = replace(
        gcp_vm([{"service": "vertex-prediction", "sku": "n1-standard-4", "count": 3}]),
        ref=ResourceRef(Cloud.GCP, "gcp.vertex-endpoint", "p", "us-central1", "e-1"),
    )
    assert monthly_cost_usd(endpoint, gcp_catalog()) == round(3 * 0.22 * 730, 2)


def test_units_take_precedence_over_the_instance_type() -> None:
    r = resource(
        "aws.ec2-gpu",
        instance_type="g5.xlarge",
        details={"units": [{"service": "sagemaker", "sku": "ml.t3.medium", "count": 2}]},
    )
    assert monthly_cost_usd(r, small_catalog()) == round(2 * 0.05 * 730, 2)


@pytest.mark.parametrize(
    "units",
    [
        # one unpriced unit makes the whole resource unpriced: no partial sums
        [*T4_VM, {"service": "gce-gpu", "sku": "nvidia-h100-80gb", "count": 1}],
        [{"service": "tpu", "sku": "v5e", "count": 1}],  # service not in the catalog
        [{"service": "gce", "sku": "n1-standard-8"}],  # count missing
        [{"service": "gce", "sku": "n1-standard-8", "count": -1}],
        [{"service": "gce", "sku": "n1-standard-8", "count": True}],
        [{"service": "gce", "sku": None, "count": 1}],
        [{"sku": "n1-standard-8", "count": 1}],
        ["n1-standard-8"],
        [],
        "n1-standard-8",
    ],
)
def test_unpriceable_units_give_none(units: Any) -> None:
    assert monthly_cost_usd(gcp_vm(units), gcp_catalog()) is None


def test_units_are_priced_in_the_resource_region_only() -> None:
    assert monthly_cost_usd(gcp_vm(T4_VM, region="europe-west4"), gcp_catalog()) is None


def test_a_unit_counted_zero_costs_nothing() -> None:
    units = [*T4_VM, {"service": "gce-gpu", "sku": "nvidia-h100-80gb", "count": 0}]
    assert monthly_cost_usd(gcp_vm(units), gcp_catalog()) == round((0.38 + 0.7) * 730, 2)


def test_spot_units_are_not_priced() -> None:
    assert monthly_cost_usd(gcp_vm(T4_VM, lifecycle="spot"), gcp_catalog()) is None


def test_a_service_may_carry_its_own_source_and_date() -> None:
    catalog = gcp_catalog()
    assert catalog.provenance("gce").source == "GCE pricing page"
    assert catalog.provenance("gce").as_of == date(2026, 11, 1)
    assert catalog.provenance("gce-gpu").source == "test"  # the catalog's own
    assert catalog.provenance("gce-gpu").as_of == date(2024, 6, 1)


@pytest.mark.parametrize(
    "sources",
    [
        ["gce"],
        {"gce": "GCE pricing page"},
        {"gce": {"source": "x"}},
        {"gce": {"source": "x", "as_of": "Nov 2026"}},
        {"gce": {"source": "", "as_of": "2026-11-01"}},
        {"tpu": {"source": "x", "as_of": "2026-11-01"}},  # no such service
    ],
)
def test_malformed_sources_are_rejected(sources: Any) -> None:
    with pytest.raises(CatalogError):
        small_catalog(gce={"us-central1": {"n1-standard-8": 0.38}}, sources=sources)
