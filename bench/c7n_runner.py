"""Cloud Custodian's `custodian` command, with a CloudWatch metrics filter on sagemaker-endpoint.

Cloud Custodian ships no `metrics` filter for `sagemaker-endpoint` (its resource type names no
CloudWatch dimension). This registers one, the way a Custodian user would in a plugin: the
stock `MetricsFilter` (one GetMetricStatistics per resource) with the dimensions SageMaker
publishes `Invocations` under, EndpointName + VariantName. The variant comes from the endpoint
description Custodian already fetched (`ProductionVariants`, DescribeEndpoint per endpoint).
Only the first variant is read: the stock filter makes one call per resource, and every endpoint
of the benchmark has one variant.

Usage (the arguments are `custodian`'s own):

    python bench/c7n_runner.py run -s OUTPUT_DIR --region us-east-1 policy.yml
"""

from __future__ import annotations

import sys
from typing import Any

NAMESPACE = "AWS/SageMaker"


def register_endpoint_metrics() -> None:
    from c7n.filters.metrics import MetricsFilter
    from c7n.resources import load_resources

    load_resources(("aws.sagemaker-endpoint",))
    from c7n.resources.sagemaker import SagemakerEndpoint

    class EndpointMetrics(MetricsFilter):  # type: ignore[misc]
        """`metrics` on sagemaker-endpoint: per EndpointName + VariantName."""

        def process(self, resources: list[dict[str, Any]], event: Any = None) -> Any:
            self.data.setdefault("namespace", NAMESPACE)
            return super().process(resources, event)

        def get_dimensions(self, resource: dict[str, Any]) -> list[dict[str, str]]:
            variants = resource.get("ProductionVariants") or [{}]
            return [
                {"Name": "EndpointName", "Value": resource["EndpointName"]},
                {"Name": "VariantName", "Value": variants[0].get("VariantName", "AllTraffic")},
            ]

    SagemakerEndpoint.filter_registry.register("metrics", EndpointMetrics)


def main() -> int:
    register_endpoint_metrics()
    from c7n.cli import main as custodian

    custodian()
    return 0


if __name__ == "__main__":
    sys.exit(main())
