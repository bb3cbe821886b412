"""deploy/kuberay.py against the cases of KubeRay v1.7.0's own ``validation_test.go``,
then one mutation of the rendered manifests per ported rule."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from deploy.check import DEPLOY, GATES, render
from deploy.kuberay import (
    MAX_RAYCLUSTER_NAME,
    MAX_RAYCRONJOB_NAME,
    MAX_RAYJOB_NAME,
    Invalid,
    operator_errors,
    validate_cluster_metadata,
    validate_cluster_spec,
    validate_cron_job,
    validate_job_metadata,
    validate_job_spec,
)

Obj = dict[str, Any]


def pod(restart: str | None = None, env: list[Obj] | None = None) -> Obj:
    """validation_test.go's podTemplateSpec: one container."""
    spec: Obj = {"containers": [{"env": env or []}]}
    if restart:
        spec["restartPolicy"] = restart
    return {"spec": spec}


def basic() -> Obj:
    """validation_test.go's createBasicRayClusterSpec."""
    return {"headGroupSpec": {"template": pod()}}


def worker(**fields: Any) -> Obj:
    return {"groupName": "worker-group", "template": pod(), **fields}


def check(validate: Callable[[], None], error: str | None) -> None:
    if error is None:
        validate()
    else:
        with pytest.raises(Invalid) as e:
            validate()
        assert error in str(e.value)


SELECTOR = {"ray.io/cluster": "ray-cluster"}

# TestValidateRayJobSpec: (case name, spec, error the operator gives or None).
JOB_SPECS = [
    ("one of RayClusterSpec or ClusterSelector must be set", {}, "one of RayClusterSpec"),
    (
        "shutdownAfterJobFinishes false is not allowed to be suspended",
        {"suspend": True, "shutdownAfterJobFinishes": False},
        "is not allowed to be suspended",
    ),
    (
        "valid RayJob",
        {"suspend": True, "shutdownAfterJobFinishes": True, "rayClusterSpec": basic()},
        None,
    ),
    (
        "the ClusterSelector mode doesn't support the suspend operation",
        {"suspend": True, "shutdownAfterJobFinishes": True, "clusterSelector": {"key": "value"}},
        "doesn't support the suspend operation",
    ),
    (
        "failed to unmarshal RuntimeEnvYAML",
        {"runtimeEnvYAML": "invalid_yaml_str", "rayClusterSpec": basic()},
        "failed to unmarshal RuntimeEnvYAML",
    ),
    (
        "backoffLimit must be a positive integer",
        {"backoffLimit": -1, "rayClusterSpec": basic()},
        "backoffLimit must be a positive integer",
    ),
    (
        "BackoffLimit is incompatible with InteractiveMode",
        {"backoffLimit": 1, "submissionMode": "InteractiveMode", "rayClusterSpec": basic()},
        "BackoffLimit is incompatible with InteractiveMode",
    ),
    (
        "BackoffLimit is 0 and SubmissionMode is InteractiveMode",
        {"backoffLimit": 0, "submissionMode": "InteractiveMode", "rayClusterSpec": basic()},
        None,
    ),
    (
        "BackoffLimit is nil and SubmissionMode is InteractiveMode",
        {"submissionMode": "InteractiveMode", "rayClusterSpec": basic()},
        None,
    ),
    (
        "ShutdownAfterJobFinishes is false and TTLSecondsAfterFinished is not zero",
        {
            "shutdownAfterJobFinishes": False,
            "ttlSecondsAfterFinished": 5,
            "rayClusterSpec": basic(),
        },
        "cannot have TTLSecondsAfterFinished",
    ),
    (
        "ShutdownAfterJobFinishes is true and TTLSecondsAfterFinished is not zero",
        {"shutdownAfterJobFinishes": True, "ttlSecondsAfterFinished": 5, "rayClusterSpec": basic()},
        None,
    ),
    (
        "ShutdownAfterJobFinishes is true and TTLSecondsAfterFinished is negative",
        {
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": -5,
            "rayClusterSpec": basic(),
        },
        "TTLSecondsAfterFinished must be a non-negative integer",
    ),
    ("SidecarMode", {"submissionMode": "SidecarMode", "rayClusterSpec": basic()}, None),
    (
        "SidecarMode doesn't support SubmitterPodTemplate",
        {"submissionMode": "SidecarMode", "submitterPodTemplate": {"spec": {}}},
        "",
    ),
    (
        "SidecarMode doesn't support SubmitterConfig",
        {"submissionMode": "SidecarMode", "submitterConfig": {"backoffLimit": 1}},
        "",
    ),
    (
        "SidecarMode RayCluster head pod should only be Never or unset",
        {
            "submissionMode": "SidecarMode",
            "rayClusterSpec": {"headGroupSpec": {"template": pod("Always")}},
        },
        "restartPolicy for head Pod should be Never or unset when using SidecarMode",
    ),
    (
        "SidecarMode doesn't support ClusterSelector",
        {"submissionMode": "SidecarMode", "clusterSelector": SELECTOR},
        "ClusterSelector is not supported in SidecarMode",
    ),
    (
        "failed to get cluster name in ClusterSelector map",
        {"clusterSelector": {}},
        "one of RayClusterSpec or ClusterSelector must be set",
    ),
    (
        "cluster name in ClusterSelector is empty",
        {"clusterSelector": {"ray.io/cluster": ""}},
        "cluster name in ClusterSelector should not be empty",
    ),
    ("cluster name in ClusterSelector is not empty", {"clusterSelector": SELECTOR}, None),
    (
        "BackoffLimit > 0 is incompatible with ClusterSelector mode",
        {"clusterSelector": SELECTOR, "backoffLimit": 1},
        "BackoffLimit is incompatible with ClusterSelector mode",
    ),
    (
        "RayJob does not support K8s token auth mode",
        {"rayClusterSpec": {"authOptions": {"mode": "token", "enableK8sTokenAuth": True}}},
        "K8s token auth mode is currently not supported for RayJob",
    ),
]


@pytest.mark.parametrize(
    ("spec", "error"), [c[1:] for c in JOB_SPECS], ids=[c[0] for c in JOB_SPECS]
)
def test_rayjob_spec_as_kuberay_validates_it(spec: Obj, error: str | None) -> None:
    check(lambda: validate_job_spec(spec), error)


def test_names_as_kuberay_validates_them() -> None:
    """TestValidateRayJobMetadata and TestValidateRayClusterSpecNames."""
    too_long = f"no more than {MAX_RAYJOB_NAME} characters"
    check(lambda: validate_job_metadata({"name": "j" * (MAX_RAYJOB_NAME + 1)}), too_long)
    check(lambda: validate_job_metadata({"name": "1" * MAX_RAYJOB_NAME}), "DNS1035 label")
    check(lambda: validate_job_metadata({"name": "j" * MAX_RAYJOB_NAME}), None)
    check(
        lambda: validate_cluster_metadata({"name": "a" * (MAX_RAYCLUSTER_NAME + 1)}),
        f"RayCluster name should be no more than {MAX_RAYCLUSTER_NAME} characters",
    )
    check(lambda: validate_cluster_metadata({"name": "a" * MAX_RAYCLUSTER_NAME}), None)
    with pytest.raises(Invalid) as e:
        validate_cluster_metadata({"name": "1" * MAX_RAYCLUSTER_NAME})
    # The operator's message, word for word (validation_test.go asserts it whole).
    assert str(e.value) == (
        "RayCluster name should be a valid DNS1035 label: [a DNS-1035 label must consist of lower "
        "case alphanumeric characters or '-', start with an alphabetic character, and end with an "
        "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
        "'[a-z]([-a-z0-9]*[a-z0-9])?')]"
    )


# TestValidateRayClusterSpec{EmptyContainers,_WorkerGroupReplicaValidation,_Resources,
# _Labels,RayVersionForAuth,_Auth,Autoscaler}: (case, spec, error or None).
CLUSTER_SPECS = [
    (
        "headGroupSpec has no containers",
        {"headGroupSpec": {"template": {"spec": {"containers": []}}}},
        "headGroupSpec should have at least one container",
    ),
    (
        "workerGroupSpec has no containers",
        {
            **basic(),
            "workerGroupSpecs": [
                {"template": {"spec": {"containers": []}}, "minReplicas": 0, "maxReplicas": 5}
            ],
        },
        "workerGroupSpec should have at least one container",
    ),
    (
        "valid cluster with containers in both head and worker groups",
        {**basic(), "workerGroupSpecs": [worker(minReplicas=0, maxReplicas=5)]},
        None,
    ),
    (
        "minReplicas greater than maxReplicas",
        {**basic(), "workerGroupSpecs": [worker(minReplicas=5, maxReplicas=3)]},
        "worker group worker-group has minReplicas 5 greater than maxReplicas 3",
    ),
    (
        "replicas smaller than minReplicas when autoscaling disabled",
        {**basic(), "workerGroupSpecs": [worker(replicas=1, minReplicas=2, maxReplicas=5)]},
        None,
    ),
    (
        "minReplicas are nil when autoscaling disabled",
        {**basic(), "workerGroupSpecs": [worker(maxReplicas=5)]},
        "must set both minReplicas and maxReplicas when autoscaling is disabled",
    ),
    (
        "maxReplicas are nil when autoscaling disabled",
        {**basic(), "workerGroupSpecs": [worker(minReplicas=1)]},
        "must set both minReplicas and maxReplicas when autoscaling is disabled",
    ),
    (
        "minReplicas is negative",
        {**basic(), "enableInTreeAutoscaling": True, "workerGroupSpecs": [worker(minReplicas=-1)]},
        "has negative minReplicas -1",
    ),
    (
        "maxReplicas is negative",
        {**basic(), "enableInTreeAutoscaling": True, "workerGroupSpecs": [worker(maxReplicas=-1)]},
        "has negative maxReplicas -1",
    ),
    (
        "valid when autoscaling enabled",
        {**basic(), "enableInTreeAutoscaling": True, "workerGroupSpecs": [worker()]},
        None,
    ),
    (
        "Head group has resources in both rayStartParams and top-level Resources",
        {
            "headGroupSpec": {
                "template": pod(),
                "rayStartParams": {"num-cpus": "1"},
                "resources": {"CPU": "1"},
            }
        },
        "resource fields should not be set in both rayStartParams and Resources for Head group",
    ),
    (
        "Worker group has resources in both rayStartParams and .Resources",
        {
            **basic(),
            "workerGroupSpecs": [
                worker(
                    minReplicas=0,
                    maxReplicas=1,
                    rayStartParams={"num-gpus": "1"},
                    resources={"GPU": "1"},
                )
            ],
        },
        "resource fields should not be set in both rayStartParams and Resources for "
        "worker-group group; please use only one",
    ),
    (
        "Head group has 'labels' in rayStartParams",
        {"headGroupSpec": {"template": pod(), "rayStartParams": {"labels": "a=b"}}},
        "rayStartParams['labels'] is not supported for Head group",
    ),
    (
        "Label key does not follow Kubernetes syntax",
        {
            **basic(),
            "workerGroupSpecs": [
                worker(minReplicas=0, maxReplicas=1, labels={"invalid_key!": "value"})
            ],
        },
        "invalid label key for worker-group group: 'invalid_key!', error: name part must consist "
        "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
        "alphanumeric character",
    ),
    (
        "Label value does not follow Kubernetes syntax",
        {"headGroupSpec": {"template": pod(), "labels": {"valid-key": "invalid/value"}}},
        "invalid label value for key 'valid-key' in Head group: 'invalid/value', error: a valid "
        "label must be an empty string or consist of alphanumeric characters",
    ),
    (
        "token auth without RayVersion",
        {**basic(), "authOptions": {"mode": "token"}},
        "RayVersion was not specified. Ray version 2.52.0 or later is required",
    ),
    (
        "token auth with Ray 2.51",
        {**basic(), "authOptions": {"mode": "token"}, "rayVersion": "2.51.0"},
        "minimum Ray version is 2.52.0, got 2.51.0",
    ),
    (
        "token auth with Ray 2.52",
        {**basic(), "authOptions": {"mode": "token"}, "rayVersion": "2.52.0"},
        None,
    ),
    (
        "enableK8sTokenAuth=true and secretName set",
        {
            **basic(),
            "rayVersion": "2.55.0",
            "authOptions": {"mode": "token", "enableK8sTokenAuth": True, "secretName": "s"},
        },
        "authOptions.enableK8sTokenAuth is enabled and authOptions.secretName is also set",
    ),
    (
        "autoscaler v2 env without the autoscaler",
        {
            "headGroupSpec": {
                "template": pod(env=[{"name": "RAY_enable_autoscaler_v2", "value": "1"}])
            }
        },
        "cannot be set to '1' when enableInTreeAutoscaling is false",
    ),
    (
        "autoscaler enabled and a worker group suspended",
        {**basic(), "enableInTreeAutoscaling": True, "workerGroupSpecs": [worker(suspend=True)]},
        "cannot be suspended with Autoscaler enabled",
    ),
    (
        "autoscaler v2 and a head restartPolicy Always",
        {
            "headGroupSpec": {"template": pod("Always")},
            "enableInTreeAutoscaling": True,
            "autoscalerOptions": {"version": "v2"},
        },
        "restartPolicy for head Pod should be Never or unset when using autoscaler V2",
    ),
    (
        "idleTimeoutSeconds without autoscaler v2",
        {
            **basic(),
            "workerGroupSpecs": [worker(minReplicas=0, maxReplicas=1, idleTimeoutSeconds=60)],
        },
        "idleTimeoutSeconds is set, but autoscaler v2 is not enabled",
    ),
]


@pytest.mark.parametrize(
    ("spec", "error"), [c[1:] for c in CLUSTER_SPECS], ids=[c[0] for c in CLUSTER_SPECS]
)
def test_raycluster_spec_as_kuberay_validates_it(spec: Obj, error: str | None) -> None:
    check(lambda: validate_cluster_spec(spec), error)


def cron(name: str = "test-cronjob", **spec: Any) -> Obj:
    """TestValidateRayCronJobSpec's RayCronJob: a schedule and a RayJob template."""
    job = {"entrypoint": "python test.py", "rayClusterSpec": basic()}
    return {
        "metadata": {"name": name},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": job, **spec},
    }


CRON_JOBS = [
    ("Valid cron schedule and RayJob spec", cron(), None),
    ("Invalid cron schedule", cron(schedule="invalid cron"), "invalid cron schedule"),
    ("Empty JobTemplate", cron(jobTemplate={}), "one of RayClusterSpec or ClusterSelector"),
    (
        "Invalid RayJob spec - no containers",
        cron(jobTemplate={"rayClusterSpec": {"headGroupSpec": {"template": {"spec": {}}}}}),
        "invalid RayJob template",
    ),
    (
        "Valid schedule with valid timezone",
        cron(schedule="0 9 * * *", timeZone="Asia/Taipei"),
        None,
    ),
    ("Valid schedule with UTC timezone", cron(schedule="0 0 * * *", timeZone="UTC"), None),
    ("Invalid timezone", cron(timeZone="Invalid/Zone"), "invalid time zone"),
    ("Schedule with TZ= prefix is rejected", cron(schedule="TZ=UTC */5 * * * *"), "cannot use TZ"),
    (
        "Schedule with CRON_TZ= prefix is rejected",
        cron(schedule="CRON_TZ=UTC */5 * * * *"),
        "cannot use TZ or CRON_TZ in schedule",
    ),
    ("RayCronJob name too long", cron("a" * (MAX_RAYCRONJOB_NAME + 1)), "no more than 36"),
    ("A minute out of range", cron(schedule="61 2 * * *"), "invalid cron schedule"),
    ("Named months and days", cron(schedule="0 2 * JAN-MAR MON-FRI"), None),
]


@pytest.mark.parametrize(
    ("obj", "error"), [c[1:] for c in CRON_JOBS], ids=[c[0] for c in CRON_JOBS]
)
def test_raycronjob_as_kuberay_validates_it(obj: Obj, error: str | None) -> None:
    check(lambda: validate_cron_job(obj), error)


@pytest.fixture(scope="module")
def rendered() -> dict[str, Obj]:
    """The gpu-raycronjob overlay's RayCluster and RayCronJob, and the CronJob's RayJob."""
    from deploy.check import embedded

    objects = render(DEPLOY / "k8s" / "overlays" / "gpu-raycronjob")
    objects += [d for o in render(DEPLOY / "k8s" / "overlays" / "gpu") for _, d in embedded(o)]
    return {o["kind"]: o for o in objects if o["kind"] in {"RayCluster", "RayJob", "RayCronJob"}}


def set_in(path: str, value: Any) -> Callable[[Obj], None]:
    """A mutation: set the dotted ``path`` (list indexes as numbers) to ``value``."""

    def mutate(obj: Obj) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        for p in parents:
            obj = obj[p]
        obj[last] = value  # type: ignore[index]

    return mutate


HEAD = "spec.headGroupSpec"
WORKERS = "spec.workerGroupSpecs.0"
MUTATIONS = [
    ("RayJob", set_in("spec.backoffLimit", 1), "BackoffLimit is incompatible with ClusterSelector"),
    (
        "RayJob",
        set_in("spec.backoffLimit", -1),
        "backoffLimit must be a positive integer",
    ),
    ("RayJob", set_in("spec.suspend", True), "is not allowed to be suspended"),
    ("RayJob", set_in("spec.ttlSecondsAfterFinished", 60), "cannot have TTLSecondsAfterFinished"),
    ("RayJob", set_in("spec.submissionMode", "SidecarMode"), "not supported in SidecarMode"),
    ("RayJob", set_in("spec.clusterSelector", {"ray.io/cluster": ""}), "should not be empty"),
    ("RayJob", set_in("spec.clusterSelector", {}), "one of RayClusterSpec or ClusterSelector"),
    ("RayJob", set_in("spec.activeDeadlineSeconds", 0), "activeDeadlineSeconds must be a positive"),
    ("RayJob", set_in("spec.preRunningDeadlineSeconds", 0), "preRunningDeadlineSeconds must be"),
    ("RayJob", set_in("spec.runtimeEnvYAML", "pip"), "failed to unmarshal RuntimeEnvYAML"),
    ("RayJob", set_in("spec.deletionStrategy", {}), "DeletionStrategy requires either BOTH"),
    ("RayJob", set_in("metadata.name", "n" * 48), "RayJob name should be no more than 47"),
    ("RayJob", set_in("metadata.name", "1-night-ray"), "RayJob name should be a valid DNS1035"),
    ("RayCluster", set_in("metadata.name", "Council"), "RayCluster name should be a valid DNS"),
    ("RayCluster", set_in(f"{HEAD}.template.spec.containers", []), "at least one container"),
    ("RayCluster", set_in(f"{WORKERS}.minReplicas", 9), "minReplicas 9 greater than maxReplicas"),
    ("RayCluster", set_in(f"{HEAD}.resources", {"CPU": "0"}), "both rayStartParams and"),
    ("RayCluster", set_in(f"{WORKERS}.labels", {"a": "b/c"}), "invalid label value for key 'a'"),
    ("RayCluster", set_in("spec.rayVersion", "2.51.0"), "minimum Ray version is 2.52.0"),
    ("RayCluster", set_in("spec.upgradeStrategy", {"type": "Rolling"}), "Rolling is invalid"),
    ("RayCluster", set_in(f"{WORKERS}.idleTimeoutSeconds", 60), "autoscaler v2 is not enabled"),
    ("RayCluster", set_in(f"{WORKERS}.suspend", True), None),  # RayJobDeletionPolicy is on
    ("RayCluster", set_in("spec.networkPolicy", {}), "requires the RayClusterNetworkPolicy"),
    (
        "RayCluster",
        set_in(f"{HEAD}.template.spec.containers.0.env", [{"name": "RAY_REDIS_ADDRESS"}]),
        "RAY_REDIS_ADDRESS is set which implicitly enables GCS fault tolerance",
    ),
    ("RayCronJob", set_in("metadata.name", "c" * 37), "RayCronJob name should be no more than 36"),
    ("RayCronJob", set_in("spec.schedule", "0 25 * * *"), "invalid cron schedule"),
    ("RayCronJob", set_in("spec.timeZone", "Mars/Olympus"), "invalid time zone"),
    (
        "RayCronJob",
        set_in("spec.jobTemplate.backoffLimit", 2),
        "invalid RayJob template: The RayJob spec is invalid: BackoffLimit is incompatible",
    ),
]


def test_the_rendered_manifests_pass_the_operator(rendered: dict[str, Obj]) -> None:
    assert set(rendered) == {"RayCluster", "RayJob", "RayCronJob"}
    for obj in rendered.values():
        assert operator_errors(obj, GATES) == [], obj["kind"]


@pytest.mark.parametrize(
    ("kind", "mutate", "error"),
    MUTATIONS,
    ids=[f"{k}-{e or 'accepted'}"[:60] for k, _, e in MUTATIONS],
)
def test_each_operator_rule_catches_its_mutation(
    rendered: dict[str, Obj], kind: str, mutate: Callable[[Obj], None], error: str | None
) -> None:
    obj = copy.deepcopy(rendered[kind])
    mutate(obj)
    found = operator_errors(obj, GATES)
    if error is None:
        assert found == []
    else:
        (message,) = found
        assert message.startswith("KubeRay v1.7.0 refuses it: ") and error in message, found


def test_a_raycronjob_needs_its_feature_gate(rendered: dict[str, Obj]) -> None:
    from deploy.kuberay import DEFAULT_GATES

    (message,) = operator_errors(rendered["RayCronJob"], DEFAULT_GATES)
    assert "without its gate RayCronJob" in message
