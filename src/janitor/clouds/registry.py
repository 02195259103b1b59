"""The explicit maps: kind name -> KindSpec, and cloud -> provider module.

Importing this module imports no cloud SDK. A cloud is one package under `janitor.clouds` plus
its lines here: its kinds in `_SPECS` and its provider in `PROVIDERS`.
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from types import ModuleType

from janitor.clouds.base import KindSpec
from janitor.model import Cloud, Confidence

_SPECS: tuple[KindSpec, ...] = (
    KindSpec(
        name="aws.sagemaker-endpoint",
        cloud=Cloud.AWS,
        title="SageMaker real-time endpoint",
        evidence=(
            "CloudWatch AWS/SageMaker Invocations, Sum per day, per EndpointName + VariantName "
            "(the exact dimension set); all variants must be idle. Heartbeat: /aws/sagemaker/"
            "Endpoints CPUUtilization, SampleCount per day; a day with a heartbeat but no "
            "Invocations datapoint has no traffic, and with no Invocations datapoint at all an "
            "unbroken, fresh heartbeat alone makes the endpoint idle (medium confidence)"
        ),
        confidence=Confidence.HIGH,
        action="delete",
        read_permissions=(
            "sagemaker:ListEndpoints",
            "sagemaker:DescribeEndpoint",
            "sagemaker:DescribeEndpointConfig",
            "tag:GetResources",
            "cloudwatch:ListMetrics",
            "cloudwatch:GetMetricData",
        ),
        action_permissions=(
            "sagemaker:DescribeEndpoint",
            "sagemaker:DescribeEndpointConfig",
            "sagemaker:DescribeModel",
            "sagemaker:ListTags",
            "application-autoscaling:DescribeScalableTargets",
            "application-autoscaling:DescribeScalingPolicies",
            "application-autoscaling:DescribeScheduledActions",
            "sagemaker:DeleteEndpoint",
            # SageMaker's delete has Application Auto Scaling deregister the variants' targets,
            # and fails without this permission; janitor also removes what is left.
            "application-autoscaling:DeregisterScalableTarget",
            "application-autoscaling:DeleteScalingPolicy",
            "application-autoscaling:DeleteScheduledAction",
            # restore
            "sagemaker:CreateModel",
            "iam:PassRole",  # the model's execution role, on CreateModel
            "sagemaker:CreateEndpoint",
            "sagemaker:CreateEndpointConfig",
            "sagemaker:AddTags",
            "sagemaker:UpdateEndpointWeightsAndCapacities",
            "application-autoscaling:RegisterScalableTarget",
            "application-autoscaling:PutScalingPolicy",
            "application-autoscaling:PutScheduledAction",
        ),
        stoppable_states=("InService",),
        thresholds={"invocations_per_day": 0.0},
        max_lookback=timedelta(days=455),
        factory="janitor.clouds.aws.sagemaker_endpoint:build",
    ),
    KindSpec(
        name="aws.sagemaker-notebook",
        cloud=Cloud.AWS,
        title="SageMaker notebook instance",
        evidence=(
            "CloudTrail CreatePresignedNotebookInstanceUrl (every console or API open) and "
            "StartNotebookInstance events, else the last start/modification time"
        ),
        confidence=Confidence.MEDIUM,
        action="stop",
        read_permissions=(
            "sagemaker:ListNotebookInstances",
            "sagemaker:DescribeNotebookInstance",
            "tag:GetResources",
            "cloudtrail:LookupEvents",
        ),
        action_permissions=(
            "sagemaker:DescribeNotebookInstance",
            "sagemaker:ListTags",
            "sagemaker:StopNotebookInstance",
            "sagemaker:StartNotebookInstance",
        ),
        stoppable_states=("InService",),
        thresholds={},
        max_lookback=timedelta(days=90),  # CloudTrail event history retention
        factory="janitor.clouds.aws.sagemaker_notebook:build",
    ),
    KindSpec(
        name="aws.ec2-gpu",
        cloud=Cloud.AWS,
        title="EC2 GPU / accelerator instance (p, g, trn, inf, dl families)",
        evidence=(
            "CWAgent nvidia_smi_utilization_gpu, Maximum per day, max across GPUs (high); "
            "else AWS/EC2 CPUUtilization Maximum + NetworkIn/NetworkOut per day (low)"
        ),
        confidence=Confidence.HIGH,
        action="stop",
        read_permissions=(
            "ec2:DescribeInstances",
            "cloudwatch:ListMetrics",
            "cloudwatch:GetMetricData",
        ),
        action_permissions=("ec2:DescribeInstances", "ec2:StopInstances", "ec2:StartInstances"),
        stoppable_states=("running",),
        thresholds={
            "gpu_utilization_percent": 5.0,
            "cpu_utilization_percent": 10.0,
            "network_mb_per_day": 100.0,
        },
        max_lookback=timedelta(days=455),
        factory="janitor.clouds.aws.ec2_gpu:build",
    ),
    KindSpec(
        name="aws.s3-checkpoint",
        cloud=Cloud.AWS,
        title="Training run of checkpoints in S3 (tagged janitor-checkpoints=true, or listed)",
        evidence=(
            "newest LastModified of any object in the run's prefix (ListObjectsV2, 1,000 keys "
            "a page); reads are not seen"
        ),
        confidence=Confidence.MEDIUM,
        action="archive",
        read_permissions=(
            "s3:ListAllMyBuckets",
            "s3:GetBucketLocation",
            "s3:GetBucketTagging",
            "s3:ListBucket",
            "s3:GetObject",
            "sagemaker:ListModels",
            "sagemaker:DescribeModel",
        ),
        action_permissions=(
            "s3:ListBucket",
            "s3:GetObject",
            "s3:GetObjectTagging",
            "s3:PutObject",
            "s3:PutObjectTagging",
            "s3:AbortMultipartUpload",
            "s3:DeleteObject",
            "sagemaker:ListModels",
            "sagemaker:DescribeModel",
        ),
        stoppable_states=("stored",),
        thresholds={},
        options=("checkpoints",),
        actions=("delete",),
        factory="janitor.clouds.aws.s3_checkpoint:build",
    ),
    KindSpec(
        name="gcp.gce-gpu",
        cloud=Cloud.GCP,
        title="Compute Engine VM with GPUs (attached, or a2/a3/a4/a4x/g2/g4 machine types)",
        evidence=(
            "Ops Agent agent.googleapis.com/gpu/utilization, daily max across GPUs (high); else "
            "compute.googleapis.com/instance/cpu/utilization daily max + network received/sent "
            "bytes per day (low); one Cloud Monitoring query per metric type per project"
        ),
        confidence=Confidence.HIGH,
        action="stop",
        read_permissions=(
            "compute.instances.list",
            "monitoring.timeSeries.list",
        ),
        action_permissions=(
            "compute.instances.get",
            "compute.instances.stop",
            "compute.instances.start",
            "compute.zoneOperations.get",
        ),
        stoppable_states=("RUNNING",),
        thresholds={
            "gpu_utilization_percent": 5.0,
            "cpu_utilization_percent": 10.0,
            "network_mb_per_day": 100.0,
        },
        max_lookback=timedelta(days=455),
        factory="janitor.clouds.gcp.gce_gpu:build",
    ),
    KindSpec(
        name="gcp.vertex-endpoint",
        cloud=Cloud.GCP,
        title="Vertex AI online prediction endpoint with deployed models",
        evidence=(
            "aiplatform.googleapis.com/prediction/online/prediction_count per day, summed across "
            "deployed models (every model must be idle); heartbeat prediction/online/replicas, "
            "else prediction/online/cpu/utilization: a heartbeat day without predictions is a "
            "zero day, no series at all unknown; one Cloud Monitoring query per metric type per "
            "project"
        ),
        confidence=Confidence.HIGH,
        action="undeploy",
        read_permissions=(
            "aiplatform.locations.list",
            "aiplatform.endpoints.list",
            "monitoring.timeSeries.list",
        ),
        action_permissions=(
            "aiplatform.endpoints.get",
            "aiplatform.endpoints.undeploy",
            "aiplatform.endpoints.deploy",
            "aiplatform.endpoints.update",
        ),
        stoppable_states=("DEPLOYED",),
        thresholds={"predictions_per_day": 0.0},
        max_lookback=timedelta(days=455),
        factory="janitor.clouds.gcp.vertex_endpoint:build",
    ),
    KindSpec(
        name="gcp.workbench",
        cloud=Cloud.GCP,
        title="Vertex AI Workbench instance (Notebooks API v2)",
        evidence=(
            "the underlying VM's compute.googleapis.com/instance/cpu/utilization daily max "
            "(VM matched by gceSetup.instanceId), one Cloud Monitoring query per project; low "
            "confidence (CPU misses reading without running code). Idle shutdown off: advice"
        ),
        confidence=Confidence.LOW,
        action="stop",
        read_permissions=(
            "notebooks.instances.list",
            "monitoring.timeSeries.list",
        ),
        action_permissions=(
            "notebooks.instances.get",
            "notebooks.instances.stop",
            "notebooks.instances.start",
            "notebooks.operations.get",
        ),
        stoppable_states=("ACTIVE",),
        thresholds={"cpu_utilization_percent": 10.0},
        max_lookback=timedelta(days=455),
        factory="janitor.clouds.gcp.workbench:build",
    ),
    KindSpec(
        name="azure.vm-gpu",
        cloud=Cloud.AZURE,
        title="Azure VM of a GPU size (NC, ND, NV, NG families), running or stopped-allocated",
        evidence=(
            "in-guest GPU metric named by the rule (gpu_metric, e.g. Telegraf nvidia_smi "
            "utilization_gpu), daily max (high); else Azure Monitor Percentage CPU daily max + "
            "Network In/Out Total per day (low: Azure has no platform GPU metric); a VM stopped "
            "but not deallocated is idle (it still bills). One Metrics - List At Subscription "
            "Scope call per subscription, region and namespace"
        ),
        confidence=Confidence.HIGH,
        action="deallocate",
        read_permissions=(
            "Microsoft.Resources/subscriptions/read",
            "Microsoft.Compute/virtualMachines/read",
            "Microsoft.Insights/metrics/read",
        ),
        action_permissions=(
            "Microsoft.Compute/virtualMachines/read",
            "Microsoft.Compute/virtualMachines/deallocate/action",
            "Microsoft.Compute/virtualMachines/start/action",
        ),
        stoppable_states=("running", "stopped"),
        thresholds={
            "gpu_utilization_percent": 5.0,
            "cpu_utilization_percent": 10.0,
            "network_mb_per_day": 100.0,
        },
        max_lookback=timedelta(days=93),  # Azure Monitor platform metrics retention
        factory="janitor.clouds.azure.vm_gpu:build",
        options=("gpu_metric",),
    ),
    KindSpec(
        name="azure.ml-endpoint",
        cloud=Cloud.AZURE,
        title="Azure Machine Learning managed online endpoint with deployments",
        evidence=(
            "Azure Monitor RequestsPerMinute (Microsoft.MachineLearningServices/workspaces/"
            "onlineEndpoints), Total per day split by deployment and summed (every deployment "
            "must be idle); heartbeat DeploymentCapacity / CpuUtilizationPercentage per "
            "deployment: a heartbeat day without requests is a zero day, no series at all "
            "unknown. One Metrics - List per endpoint: the subscription-scope query does not "
            "serve this namespace"
        ),
        confidence=Confidence.HIGH,
        action="delete-deployments",
        read_permissions=(
            "Microsoft.MachineLearningServices/workspaces/read",
            "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read",
            "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/read",
            "Microsoft.Insights/metrics/read",
        ),
        action_permissions=(
            "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read",
            "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/read",
            # traffic to zero, and back on restore (Online Endpoints - Create Or Update)
            "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write",
            "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/delete",
            # restore
            "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/write",
        ),
        stoppable_states=("Deployed",),
        thresholds={"requests_per_day": 0.0},
        max_lookback=timedelta(days=93),  # Azure Monitor platform metrics retention
        factory="janitor.clouds.azure.ml_endpoint:build",
    ),
    KindSpec(
        name="azure.ml-compute",
        cloud=Cloud.AZURE,
        title="Azure Machine Learning compute instance",
        evidence=(
            "the compute instance's lastOperation (name, time, trigger): the last create, "
            "start, restart or stop, the strongest sign of use the API offers (no kernel, "
            "terminal or utilisation data); low confidence. idleTimeBeforeShutdown not set: "
            "advice"
        ),
        confidence=Confidence.LOW,
        action="stop",
        read_permissions=(
            "Microsoft.MachineLearningServices/workspaces/read",
            "Microsoft.MachineLearningServices/workspaces/computes/read",
        ),
        action_permissions=(
            "Microsoft.MachineLearningServices/workspaces/computes/read",
            "Microsoft.MachineLearningServices/workspaces/computes/stop/action",
            "Microsoft.MachineLearningServices/workspaces/computes/start/action",
        ),
        stoppable_states=("Running",),
        thresholds={},
        max_lookback=timedelta(days=455),
        factory="janitor.clouds.azure.ml_compute:build",
    ),
)

KINDS: dict[str, KindSpec] = {spec.name: spec for spec in _SPECS}

# cloud -> its provider module, which has
#   tasks(policy) -> (list[Task], skipped lines, list[ScopeError]): every rule x scope to run;
#   restore_scope(info) -> scope: the scope a recorded stop happened in (`scope_info`).
# Imported only when a policy names the cloud (or a recorded stop of it is restored).
PROVIDERS: dict[Cloud, str] = {
    Cloud.AWS: "janitor.clouds.aws.provider",
    Cloud.GCP: "janitor.clouds.gcp.provider",
    Cloud.AZURE: "janitor.clouds.azure.provider",
}


def provider(cloud: Cloud) -> ModuleType:
    """The provider module of `cloud`, imported on first use."""
    try:
        name = PROVIDERS[cloud]
    except KeyError:
        raise KeyError(f"no provider is registered for cloud {cloud.value!r}") from None
    return importlib.import_module(name)


def get(kind: str) -> KindSpec:
    try:
        return KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise KeyError(f"unknown kind {kind!r} (known kinds: {known})") from None
