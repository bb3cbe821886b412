"""KubeRay v1.7.0's own validation of RayCluster, RayJob and RayCronJob objects.

The operator checks these in its controllers at every reconcile
(``ray-operator/controllers/ray/utils/validation.go``), not in the CRD schema: a
failure is never an apply error. A RayJob goes to ``ValidationFailed`` and runs
nothing, a RayCronJob emits ``InvalidRayCronJobSpec`` and creates no RayJob, a
RayCluster stays without pods; neither a schema check nor a server-side dry-run
sees it. This module ports the rules such manifests can meet, with the
operator's own messages, in the operator's order (the first error is the one
reported, as the controller reports it):

- ``ValidateRayClusterMetadata``, ``ValidateRayClusterSpec`` (containers,
  replicas, rayStartParams against ``resources`` and ``labels``, autoscaler
  settings, idle timeouts and priorities, GCS fault tolerance and Redis
  variables, token auth and ``rayVersion``, feature-gated fields) and
  ``ValidateRayClusterUpgradeOptions``;
- ``ValidateRayJobMetadata`` and ``ValidateRayJobSpec`` (suspend, TTL and
  deletion strategy, clusterSelector, submission modes, backoffLimit,
  runtimeEnvYAML, deadlines), with the embedded cluster spec;
- ``ValidateRayCronJobSpec`` (name, schedule, time zone, its job template).

Not ported (nothing here can meet them): the contents of GCS fault-tolerance
backends, TLS options, network policies and history-server collectors beyond
their feature gates, and RayService.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

Obj = dict[str, Any]

MAX_RAYCLUSTER_NAME = 53
"""63 - len("-serve-svc")."""
MAX_RAYJOB_NAME = MAX_RAYCLUSTER_NAME - 6
"""The RayJob's cluster is named <RayJob>-<5 random characters>."""
MAX_RAYCRONJOB_NAME = MAX_RAYJOB_NAME - 11
"""A RayCronJob's RayJobs are named <RayCronJob>-<minutes since the epoch>."""
CLUSTER_SELECTOR_KEY = "ray.io/cluster"
FT_ANNOTATION = "ray.io/ft-enabled"
EXTERNAL_STORAGE_ANNOTATION = "ray.io/external-storage-namespace"
AUTOSCALER_V2_ENV = "RAY_enable_autoscaler_v2"
DEFAULT_GATES = frozenset({"RayClusterStatusConditions", "RayJobDeletionPolicy"})
"""Feature gates KubeRay v1.7.0 enables by default (the rest are alpha, off)."""

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1035_MESSAGE = (
    "[a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')]"
)
NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class Invalid(ValueError):
    """What the operator says of an object it refuses."""


def dns1035_errors(name: str) -> list[str]:
    """``validation.IsDNS1035Label``'s errors (at most 63 characters, lowercase, a letter first)."""
    errors = []
    if len(name) > 63:
        errors.append("must be no more than 63 characters")
    if not DNS1035.match(name):
        errors.append(DNS1035_MESSAGE[1:-1])
    return errors


def qualified_name_errors(key: str) -> list[str]:
    """``validation.IsQualifiedName``: ``[prefix/]name``, a DNS subdomain prefix."""
    prefix, _, name = key.rpartition("/")
    errors = []
    if "/" in key and (not prefix or not DNS1123_SUBDOMAIN.match(prefix) or len(prefix) > 253):
        errors.append("prefix part must be a lowercase RFC 1123 subdomain")
    if not name or len(name) > 63:
        errors.append("name part must be non-empty and no more than 63 characters")
    elif not NAME_PART.match(name):
        errors.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character"
        )
    return errors


def label_value_errors(value: str) -> list[str]:
    if len(value) > 63:
        return ["must be no more than 63 characters"]
    if not LABEL_VALUE.match(value):
        return [
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character"
        ]
    return []


def version(text: str) -> tuple[int, ...]:
    """``version.ParseGeneric``: two or three dot-separated numbers, an optional leading v."""
    found = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+].*)?", text.strip())
    if not found:
        raise ValueError(f"could not parse {text!r} as version")
    return tuple(int(part or 0) for part in found.groups())


def env_value(container: Obj, name: str) -> str | None:
    for env in container.get("env") or []:
        if env.get("name") == name:
            return str(env.get("value") or "")
    return None


def containers_of(group: Obj) -> list[Obj]:
    return ((group.get("template") or {}).get("spec") or {}).get("containers") or []


def autoscaling(spec: Obj | None) -> bool:
    return bool(spec and spec.get("enableInTreeAutoscaling"))


def autoscaling_v2(spec: Obj | None) -> bool:
    return bool(spec and (spec.get("autoscalerOptions") or {}).get("version") == "v2")


def k8s_auth(options: Obj | None) -> bool:
    return bool(options and options.get("enableK8sTokenAuth"))


def validate_cluster_metadata(metadata: Obj) -> None:
    name = metadata.get("name") or ""
    if len(name) > MAX_RAYCLUSTER_NAME:
        raise Invalid(f"RayCluster name should be no more than {MAX_RAYCLUSTER_NAME} characters")
    if dns1035_errors(name):
        raise Invalid(f"RayCluster name should be a valid DNS1035 label: {DNS1035_MESSAGE}")


def validate_upgrade_options(cluster: Obj) -> None:
    kind = ((cluster.get("spec") or {}).get("upgradeStrategy") or {}).get("type")
    if kind is not None and kind not in {"Recreate", "None"}:
        raise Invalid(
            "The RayCluster spec is invalid: Spec.UpgradeStrategy.Type value "
            f"{kind} is invalid, valid options are Recreate or None"
        )
    origin = ((cluster.get("metadata") or {}).get("labels") or {}).get("ray.io/originated-from-crd")
    if kind is not None and origin in {"RayJob", "RayService"}:
        raise Invalid(f"upgradeStrategy cannot be set when RayCluster is created by {origin}")


def validate_group(name: str, group: Obj) -> None:
    """``validateRayGroupResources`` and ``validateRayGroupLabels``."""
    params = group.get("rayStartParams") or {}
    if any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")) and group.get(
        "resources"
    ):
        raise Invalid(
            "resource fields should not be set in both rayStartParams and Resources for "
            f"{name} group; please use only one"
        )
    if "labels" in params:
        raise Invalid(
            f"rayStartParams['labels'] is not supported for {name} group; please use the "
            "top-level Labels field instead"
        )
    errors = []
    for key, value in (group.get("labels") or {}).items():
        errors += [
            f"invalid label key for {name} group: '{key}', error: {e}"
            for e in qualified_name_errors(key)
        ]
        errors += [
            f"invalid label value for key '{key}' in {name} group: '{value}', error: {e}"
            for e in label_value_errors(str(value))
        ]
    if errors:
        raise Invalid("; ".join(errors))


def validate_worker_group(group: Obj, spec: Obj, autoscaled: bool) -> None:
    name = group.get("groupName", "")
    if not containers_of(group):
        raise Invalid("workerGroupSpec should have at least one container")
    low, high = group.get("minReplicas"), group.get("maxReplicas")
    if not autoscaled and (low is None or high is None):
        raise Invalid(
            f"worker group {name} must set both minReplicas and maxReplicas when autoscaling "
            "is disabled"
        )
    if low is not None and low < 0:
        raise Invalid(f"worker group {name} has negative minReplicas {low}")
    if high is not None and high < 0:
        raise Invalid(f"worker group {name} has negative maxReplicas {high}")
    if low is not None and high is not None and low > high:
        raise Invalid(f"worker group {name} has minReplicas {low} greater than maxReplicas {high}")
    validate_group(name, group)
    head = containers_of(spec["headGroupSpec"])[0]
    v2 = autoscaling_v2(spec) or env_value(head, AUTOSCALER_V2_ENV) in {"1", "true"}
    idle = group.get("idleTimeoutSeconds")
    if idle is not None:
        if idle < 0:
            raise Invalid(
                f"worker group {name}: idleTimeoutSeconds must be non-negative, got {idle}"
            )
        if not v2:
            raise Invalid(
                f"worker group {name}: idleTimeoutSeconds is set, but autoscaler v2 is not "
                "enabled. Please set .spec.autoscalerOptions.version to 'v2' (or set "
                f"{AUTOSCALER_V2_ENV} environment variable to 'true' in the head pod if using "
                "KubeRay < 1.4.0)"
            )
    priority = group.get("priority")
    if priority:
        rule = "priority is set, but"
        if not spec.get("rayVersion"):
            raise Invalid(
                f"worker group {name}: {rule} RayVersion was not specified. Ray version 2.56.0 "
                "or later is required"
            )
        if version(str(spec["rayVersion"])) < (2, 56, 0):
            raise Invalid(
                f"worker group {name}: {rule} minimum Ray version is 2.56.0, got "
                f"{spec['rayVersion']}"
            )
        if not v2:
            raise Invalid(
                f"worker group {name}: priority is set to {priority}, but autoscaler v2 is not "
                "enabled. Priority is only supported with autoscaler v2 enabled"
            )


def validate_cluster_spec(
    spec: Obj, annotations: Obj | None = None, gates: frozenset[str] = DEFAULT_GATES
) -> None:
    """``ValidateRayClusterSpec``: raises :class:`Invalid` with the operator's message."""
    annotations = annotations or {}
    head_group = spec.get("headGroupSpec") or {}
    if not containers_of(head_group):
        raise Invalid("headGroupSpec should have at least one container")
    validate_group("Head", head_group)
    autoscaled = autoscaling(spec)
    workers = spec.get("workerGroupSpecs") or []
    for group in workers:
        validate_worker_group(group, spec, autoscaled)
    head = containers_of(head_group)[0]
    head_env = {e.get("name") for e in head.get("env") or []}
    ft_options = spec.get("gcsFaultToleranceOptions")
    if annotations.get(FT_ANNOTATION) and ft_options is not None:
        raise Invalid(
            f"{FT_ANNOTATION} annotation and GcsFaultToleranceOptions are both set. Please use "
            "only GcsFaultToleranceOptions to configure GCS fault tolerance"
        )
    ft = str(annotations.get(FT_ANNOTATION, "")).lower() == "true" or ft_options is not None
    if not ft and "RAY_REDIS_ADDRESS" in head_env:
        raise Invalid(
            "RAY_REDIS_ADDRESS is set which implicitly enables GCS fault tolerance, but "
            "GcsFaultToleranceOptions is not set. Please set GcsFaultToleranceOptions to enable "
            "GCS fault tolerance"
        )
    params = head_group.get("rayStartParams") or {}
    if ft_options is not None:
        use = "is enabled - use GcsFaultToleranceOptions"
        if params.get("redis-password"):
            raise Invalid(
                "cannot set `redis-password` in rayStartParams when GcsFaultToleranceOptions "
                f"{use}.RedisPassword instead"
            )
        if "REDIS_PASSWORD" in head_env:
            raise Invalid(
                "cannot set `REDIS_PASSWORD` env var in head Pod when GcsFaultToleranceOptions "
                f"{use}.RedisPassword instead"
            )
        if "RAY_REDIS_ADDRESS" in head_env:
            raise Invalid(
                "cannot set `RAY_REDIS_ADDRESS` env var in head Pod when "
                f"GcsFaultToleranceOptions {use}.RedisAddress instead"
            )
        if annotations.get(EXTERNAL_STORAGE_ANNOTATION):
            raise Invalid(
                f"cannot set `{EXTERNAL_STORAGE_ANNOTATION}` annotation when "
                f"GcsFaultToleranceOptions {use}.ExternalStorageNamespace instead"
            )
    if params.get("redis-username") or "REDIS_USERNAME" in head_env:
        raise Invalid(
            "cannot set redis username in rayStartParams or environment variables - use "
            "GcsFaultToleranceOptions.RedisUsername instead"
        )
    suspended = [g.get("groupName", "") for g in workers if g.get("suspend")]
    if suspended and "RayJobDeletionPolicy" not in gates:
        raise Invalid(
            f"worker group {suspended[0]} can be suspended only when the RayJobDeletionPolicy "
            "feature gate is enabled"
        )
    v2_env = env_value(head, AUTOSCALER_V2_ENV)
    options = spec.get("autoscalerOptions") or {}
    if not autoscaled and v2_env in {"1", "true"}:
        raise Invalid(
            f"environment variable {AUTOSCALER_V2_ENV} cannot be set to '{v2_env}' when "
            "enableInTreeAutoscaling is false. Please set enableInTreeAutoscaling: true to use "
            "autoscaler v2"
        )
    if autoscaled:
        if suspended:
            raise Invalid(
                f"worker group {suspended[0]} cannot be suspended with Autoscaler enabled"
            )
        if options.get("version") is not None and v2_env is not None:
            raise Invalid(
                "both .spec.autoscalerOptions.version and head Pod env var "
                f"{AUTOSCALER_V2_ENV} are set, please only use the former"
            )
        if autoscaling_v2(spec):
            restart = (head_group.get("template") or {}).get("spec", {}).get("restartPolicy")
            if restart not in (None, "", "Never"):
                raise Invalid(
                    "restartPolicy for head Pod should be Never or unset when using autoscaler V2"
                )
            for group in workers:
                if group["template"]["spec"].get("restartPolicy") not in (None, "", "Never"):
                    raise Invalid(
                        f"restartPolicy for worker group {group.get('groupName', '')} should be "
                        "Never or unset when using autoscaler V2"
                    )
    idle = options.get("idleTimeoutSeconds")
    if idle is not None and idle < 0:
        raise Invalid(f"autoscalerOptions.idleTimeoutSeconds must be non-negative, got {idle}")
    if any(e.get("name") == "KUBERAY_GEN_AUTOSCALER_START_CMD" for e in options.get("env") or []):
        raise Invalid(
            "autoscalerOptions.env must not contain KUBERAY_GEN_AUTOSCALER_START_CMD: it is "
            "managed by KubeRay and injected automatically into the autoscaler container"
        )
    if spec.get("historyServerOptions") is not None and "RayClusterHistoryServer" not in gates:
        raise Invalid("RayClusterHistoryServer feature gate is not enabled")
    validate_auth(spec)
    if spec.get("networkPolicy") is not None and "RayClusterNetworkPolicy" not in gates:
        raise Invalid(
            "spec.networkPolicy requires the RayClusterNetworkPolicy feature gate to be enabled"
        )
    if spec.get("tlsOptions") is not None and "RayClusterMTLS" not in gates:
        raise Invalid("spec.tlsOptions requires the RayClusterMTLS feature gate to be enabled")


def validate_auth(spec: Obj) -> None:
    options = spec.get("authOptions")
    if not (options and options.get("mode") == "token"):
        if k8s_auth(options):
            raise Invalid(
                "authOptions.enableK8sTokenAuth is enabled but authOptions.mode not set to 'token'"
            )
        return
    given = str(spec.get("rayVersion") or "")
    if not given:
        raise Invalid(
            "authOptions.mode is 'token' but RayVersion was not specified. Ray version 2.52.0 "
            "or later is required"
        )
    try:
        found = version(given)
    except ValueError as e:
        raise Invalid(
            f"authOptions.mode is 'token' but RayVersion format is invalid: {given}, {e}"
        ) from None
    if found < (2, 52, 0):
        raise Invalid(f"authOptions.mode is 'token' but minimum Ray version is 2.52.0, got {given}")
    if k8s_auth(options):
        if found < (2, 55, 0):
            raise Invalid(
                "authOptions.enableK8sTokenAuth is enabled but minimum Ray version is 2.55.0, "
                f"got {given}"
            )
        if options.get("secretName"):
            raise Invalid(
                "authOptions.enableK8sTokenAuth is enabled and authOptions.secretName is also set"
            )


def validate_job_metadata(metadata: Obj) -> None:
    name = metadata.get("name") or ""
    if len(name) > MAX_RAYJOB_NAME:
        raise Invalid(
            "The RayJob metadata is invalid: RayJob name should be no more than "
            f"{MAX_RAYJOB_NAME} characters"
        )
    if dns1035_errors(name):
        raise Invalid(
            "The RayJob metadata is invalid: RayJob name should be a valid DNS1035 label: "
            + DNS1035_MESSAGE
        )


def validate_job_spec(
    spec: Obj, annotations: Obj | None = None, gates: frozenset[str] = DEFAULT_GATES
) -> None:
    """``ValidateRayJobSpec``: raises :class:`Invalid` with the operator's message."""
    invalid = "The RayJob spec is invalid: "
    shutdown = bool(spec.get("shutdownAfterJobFinishes"))
    suspend = bool(spec.get("suspend"))
    if suspend and not shutdown:
        raise Invalid(
            invalid + "a RayJob with shutdownAfterJobFinishes set to false is not allowed to be "
            "suspended"
        )
    if (spec.get("ttlSecondsAfterFinished") or 0) < 0:
        raise Invalid(invalid + "TTLSecondsAfterFinished must be a non-negative integer")
    validate_deletion(spec, gates)
    selector = spec.get("clusterSelector") or {}
    mode = spec.get("submissionMode") or "K8sJobMode"
    backoff = spec.get("backoffLimit")
    cluster = spec.get("rayClusterSpec")
    if suspend and selector:
        raise Invalid(invalid + "the ClusterSelector mode doesn't support the suspend operation")
    if cluster is None and not selector:
        raise Invalid(invalid + "one of RayClusterSpec or ClusterSelector must be set")
    if selector:
        if not selector.get(CLUSTER_SELECTOR_KEY):
            raise Invalid("cluster name in ClusterSelector should not be empty")
        if mode == "SidecarMode":
            raise Invalid("ClusterSelector is not supported in SidecarMode")
        if backoff is not None and backoff > 0:
            raise Invalid(invalid + "BackoffLimit is incompatible with ClusterSelector mode")
    if mode == "InteractiveMode" and backoff is not None and backoff > 0:
        raise Invalid(invalid + "BackoffLimit is incompatible with InteractiveMode")
    if mode == "SidecarMode":
        if spec.get("submitterPodTemplate") is not None:
            raise Invalid("Currently, SidecarMode doesn't support SubmitterPodTemplate")
        if spec.get("submitterConfig") is not None:
            raise Invalid("Currently, SidecarMode doesn't support SubmitterConfig")
        head = ((cluster or {}).get("headGroupSpec") or {}).get("template") or {}
        if (head.get("spec") or {}).get("restartPolicy") not in (None, "", "Never"):
            raise Invalid(
                "restartPolicy for head Pod should be Never or unset when using SidecarMode"
            )
    if cluster is not None:
        if k8s_auth(cluster.get("authOptions")):
            raise Invalid(invalid + "K8s token auth mode is currently not supported for RayJob")
        try:
            validate_cluster_spec(cluster, annotations, gates)
        except Invalid as e:
            raise Invalid(invalid + str(e)) from None
    runtime_env = spec.get("runtimeEnvYAML") or ""
    try:
        loaded = yaml.safe_load(runtime_env) if runtime_env else {}
    except yaml.YAMLError as e:
        raise Invalid(f"failed to unmarshal RuntimeEnvYAML: {e}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise Invalid(f"failed to unmarshal RuntimeEnvYAML: {runtime_env!r} is not a mapping")
    for field, what in (("activeDeadlineSeconds", ""), ("preRunningDeadlineSeconds", "")):
        if spec.get(field) is not None and spec[field] <= 0:
            raise Invalid(invalid + f"{field} must be a positive integer{what}")
    if backoff is not None and backoff < 0:
        raise Invalid(invalid + "backoffLimit must be a positive integer")


def validate_deletion(spec: Obj, gates: frozenset[str]) -> None:
    """``validateDeletionConfiguration``; of the rules' contents, each rule's condition, TTL
    and policy (not their TTL order nor duplicates)."""
    invalid = "The RayJob spec is invalid: "
    shutdown = bool(spec.get("shutdownAfterJobFinishes"))
    if not shutdown and (spec.get("ttlSecondsAfterFinished") or 0) > 0:
        raise Invalid(
            invalid + "a RayJob with shutdownAfterJobFinishes set to false cannot have "
            "TTLSecondsAfterFinished"
        )
    strategy = spec.get("deletionStrategy")
    if strategy is None:
        return
    if "RayJobDeletionPolicy" not in gates:
        raise Invalid("RayJobDeletionPolicy feature gate must be enabled to use DeletionStrategy")
    legacy = strategy.get("onSuccess") is not None or strategy.get("onFailure") is not None
    rules = strategy.get("deletionRules") or []
    if rules and shutdown:
        raise Invalid(
            invalid + "spec.shutdownAfterJobFinishes and spec.deletionStrategy.deletionRules are "
            "mutually exclusive"
        )
    if rules and legacy:
        raise Invalid(
            invalid + "Cannot use both legacy onSuccess/onFailure fields and deletionRules "
            "simultaneously"
        )
    selector = bool(spec.get("clusterSelector"))
    if legacy:
        on = {k: (strategy.get(k) or {}).get("policy") for k in ("onSuccess", "onFailure")}
        if strategy.get("onSuccess") is None or strategy.get("onFailure") is None:
            raise Invalid(
                "both DeletionStrategy.OnSuccess and DeletionStrategy.OnFailure must be set when "
                "using the legacy deletion policy fields of DeletionStrategy"
            )
        for key, policy in on.items():
            if policy is None:
                raise Invalid(
                    f"the DeletionPolicyType field of DeletionStrategy.{key[0].upper()}{key[1:]} "
                    "cannot be unset when DeletionStrategy is enabled"
                )
            if selector and policy in {"DeleteCluster", "DeleteWorkers"}:
                when = "success" if key == "onSuccess" else "failure"
                raise Invalid(
                    f"the ClusterSelector mode doesn't support DeletionStrategy={policy} on {when}"
                )
        if shutdown and "DeleteNone" in on.values():
            raise Invalid(
                invalid + "shutdownAfterJobFinshes is set to 'true' while deletion policy is "
                "'DeleteNone'"
            )
        return
    if not rules:
        raise Invalid(
            invalid + "DeletionStrategy requires either BOTH onSuccess and onFailure, OR the "
            "deletionRules field (cannot be empty)"
        )
    errors = []
    for i, rule in enumerate(rules):
        condition = rule.get("condition") or {}
        statuses = [k for k in ("jobStatus", "jobDeploymentStatus") if condition.get(k)]
        if len(statuses) != 1:
            errors.append(
                f"deletionRules[{i}]: exactly one of JobStatus and JobDeploymentStatus must be set"
            )
        elif (condition.get("ttlSeconds") or 0) < 0:
            errors.append(f"deletionRules[{i}]: TTLSeconds must be non-negative")
        elif selector and rule.get("policy") in {"DeleteCluster", "DeleteWorkers"}:
            errors.append(
                f"deletionRules[{i}]: DeletionPolicyType '{rule.get('policy')}' not supported "
                "when ClusterSelector is set"
            )
    if errors:
        raise Invalid("\n".join(errors))


MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
CRON_FIELDS = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, {m: i + 1 for i, m in enumerate(MONTHS)}),
    (0, 6, {d: i for i, d in enumerate(DAYS)}),
)
EVERY = re.compile(r"@every \d+(\.\d+)?(ns|us|ms|s|m|h)+.*")
CRON_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def cron_errors(schedule: str) -> list[str]:
    """What robfig/cron's ``ParseStandard`` refuses in a five-field schedule."""
    schedule = schedule.strip()
    if schedule in CRON_DESCRIPTORS or EVERY.fullmatch(schedule):
        return []
    fields = schedule.split()
    if len(fields) != 5:
        return [f"expected exactly 5 fields, found {len(fields)}: {schedule!r}"]
    errors = []
    for text, (low, high, names) in zip(fields, CRON_FIELDS, strict=True):
        for part in text.split(","):
            span, _, step = part.partition("/")
            if step and not step.isdigit():
                errors.append(f"failed to parse int from {step}")
                continue
            if span in {"*", "?"}:
                continue
            ends = [names.get(end.lower(), end) for end in span.split("-", 1)]
            if not all(isinstance(e, int) or str(e).isdigit() for e in ends):
                errors.append(f"failed to parse int from {span}")
                continue
            first, last = int(ends[0]), int(ends[-1])
            if first < low or last > high or first > last:
                errors.append(f"end of range ({last}) above maximum ({high}): {part}")
    return errors


def validate_cron_job(cron: Obj, gates: frozenset[str] = DEFAULT_GATES) -> None:
    """``ValidateRayCronJobSpec``: raises :class:`Invalid` with the operator's message."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = (cron.get("metadata") or {}).get("name") or ""
    spec = cron.get("spec") or {}
    if len(name) > MAX_RAYCRONJOB_NAME:
        raise Invalid(f"RayCronJob name should be no more than {MAX_RAYCRONJOB_NAME} characters")
    schedule = str(spec.get("schedule") or "")
    if "TZ" in schedule:
        raise Invalid("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if problems := cron_errors(schedule):
        raise Invalid(f"invalid cron schedule: {problems[0]}")
    zone = spec.get("timeZone")
    if zone is not None:
        if zone == "":
            raise Invalid(
                "timeZone must not be empty string, omit the field to use the local time zone "
                "of the KubeRay operator"
            )
        try:
            if zone not in {"UTC", "Local"}:
                ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise Invalid(f"invalid time zone: unknown time zone {zone} ({e})") from None
    try:
        validate_job_spec(spec.get("jobTemplate") or {}, None, gates)
    except Invalid as e:
        raise Invalid(f"invalid RayJob template: {e}") from None


def operator_errors(obj: Obj, gates: frozenset[str] = DEFAULT_GATES) -> list[str]:
    """What the operator says of ``obj`` at its first reconcile ([] when it accepts it)."""
    kind = obj.get("kind")
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    annotations = metadata.get("annotations") or {}
    try:
        if kind == "RayCluster":
            validate_cluster_metadata(metadata)
            validate_cluster_spec(spec, annotations, gates)
            validate_upgrade_options(obj)
        elif kind == "RayJob":
            validate_job_metadata(metadata)
            validate_job_spec(spec, annotations, gates)
        elif kind == "RayCronJob":
            if "RayCronJob" not in gates:
                return ["KubeRay v1.7.0 runs no RayCronJob controller without its gate RayCronJob"]
            validate_cron_job(obj, gates)
    except Invalid as e:
        return [f"KubeRay v1.7.0 refuses it: {e}"]
    return []
