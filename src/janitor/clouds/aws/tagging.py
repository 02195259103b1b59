"""Tags in bulk: the Resource Groups Tagging API, one paged GetResources for a whole scope.

One call per 100 resources instead of one ListTags per resource. Resources that were never
tagged are simply absent from the answer (treat them as having no tags). Errors propagate: a
scanner that cannot read tags cannot tell which resources are exempt, so it must not guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_resourcegroupstaggingapi import ResourceGroupsTaggingAPIClient

RESOURCES_PER_PAGE = 100  # the API maximum


def tags_by_arn(
    tagging: ResourceGroupsTaggingAPIClient, resource_types: Sequence[str]
) -> dict[str, dict[str, str]]:
    """{arn: {key: value}} for every tagged resource of `resource_types` ("sagemaker:endpoint").

    ARNs are returned as the API spells them. SageMaker lowercases resource names inside its
    ARNs, so compare ARNs case-insensitively (`by_lower_arn`).
    """
    if not resource_types:
        raise ValueError("at least one resource type is required")
    tags: dict[str, dict[str, str]] = {}
    kwargs: dict[str, Any] = {
        "ResourceTypeFilters": list(resource_types),
        "ResourcesPerPage": RESOURCES_PER_PAGE,
    }
    while True:
        page = tagging.get_resources(**kwargs)
        for mapping in page.get("ResourceTagMappingList", []):
            arn = mapping.get("ResourceARN")
            if not arn:
                continue
            entry = tags.setdefault(arn, {})
            for tag in mapping.get("Tags", []):
                entry[tag["Key"]] = tag["Value"]
        token = page.get("PaginationToken")
        if not token:
            return tags
        kwargs["PaginationToken"] = token


def by_lower_arn(tags: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The same map keyed by lowercased ARN, for case-insensitive lookups."""
    return {arn.lower(): value for arn, value in tags.items()}
