"""council-eval's rules for a rendered overlay, beyond what the schemas say.

Each function takes the overlay's objects (as rendered, plus the RayJob
template held in a ConfigMap) and returns error lines. Together they catch
what once passed the schemas and still failed on a cluster: references that
name no object, an entrypoint KubeRay cuts at ``&&``, overrides that do not
compose, pods the namespace's Pod Security level rejects, an open network.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deploy.harness import run_guard, submitted

Obj = dict[str, Any]

EXTERNAL_SECRETS = {
    "council-auth": "NATS_TOKEN and VLLM_API_KEY (deploy/README.md, Secrets)",
    "hf-token": "a Hugging Face token, for gated models only",
    "mlflow-backend": "a database URI for MLflow, instead of SQLite on its volume",
}
"""Secrets the user creates (never in the manifests); deploy/README.md lists them."""
OPTIONAL_SECRETS = {"hf-token", "mlflow-backend"}
"""The only Secrets a pod may reference with ``optional: true``: pods work without them.
Any other missing Secret must stop the pod, not leave it running without auth."""
IMAGE = "council-eval"
NIGHTLY_COMPONENT = "nightly-benchmark"
OVERRIDES = ("council-overrides", "overrides")


def name_of(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('name') or meta.get('generateName', '?')}"


def pod_specs(obj: Obj) -> Iterator[tuple[str, Obj]]:
    """(path, pod spec) of every pod template in ``obj``, KubeRay's included."""
    spec = obj.get("spec") or {}
    kind = obj.get("kind")
    if kind == "Pod":
        yield "spec", spec
    elif kind in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
        yield "spec.template.spec", spec["template"]["spec"]
    elif kind == "CronJob":
        yield "spec.jobTemplate.spec.template.spec", spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "RayCluster":
        yield from ray_cluster_pods(spec, "spec")
    elif kind in {"RayJob", "RayCronJob"}:
        base = "spec.jobTemplate" if kind == "RayCronJob" else "spec"
        job = spec["jobTemplate"] if kind == "RayCronJob" else spec
        if "submitterPodTemplate" in job:
            yield f"{base}.submitterPodTemplate.spec", job["submitterPodTemplate"]["spec"]
        if "rayClusterSpec" in job:
            yield from ray_cluster_pods(job["rayClusterSpec"], f"{base}.rayClusterSpec")


def ray_cluster_pods(spec: Obj, path: str) -> Iterator[tuple[str, Obj]]:
    yield f"{path}.headGroupSpec.template.spec", spec["headGroupSpec"]["template"]["spec"]
    for i, group in enumerate(spec.get("workerGroupSpecs") or []):
        yield f"{path}.workerGroupSpecs.{i}.template.spec", group["template"]["spec"]


def containers(pod: Obj) -> list[Obj]:
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def references(pod: Obj) -> Iterator[tuple[str, str, str, bool]]:
    """(kind, name, where, optional) of every object a pod spec names."""
    if pod.get("serviceAccountName"):
        yield "ServiceAccount", pod["serviceAccountName"], "serviceAccountName", False
    for volume in pod.get("volumes") or []:
        where = f"volumes[{volume.get('name')}]"
        if "configMap" in volume:
            ref = volume["configMap"]
            yield "ConfigMap", ref["name"], where, bool(ref.get("optional"))
        if "secret" in volume:
            ref = volume["secret"]
            yield "Secret", ref["secretName"], where, bool(ref.get("optional"))
        if "persistentVolumeClaim" in volume:
            yield (
                "PersistentVolumeClaim",
                volume["persistentVolumeClaim"]["claimName"],
                where,
                False,
            )
    for c in containers(pod):
        for source in c.get("envFrom") or []:
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if key in source:
                    ref = source[key]
                    where = f"containers[{c['name']}].envFrom"
                    yield kind, ref["name"], where, bool(ref.get("optional"))
        for env in c.get("env") or []:
            source = env.get("valueFrom") or {}
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if key in source:
                    ref = source[key]
                    where = f"containers[{c['name']}].env[{env['name']}]"
                    yield kind, ref["name"], where, bool(ref.get("optional"))


def reference_errors(objects: list[Obj]) -> list[str]:
    """Every reference in every pod template names a rendered object (or a user Secret)."""
    present = {(o.get("kind"), (o.get("metadata") or {}).get("name")) for o in objects}
    for o in objects:  # a StatefulSet's claims are <template>-<pod>: made by the controller
        for claim in (o.get("spec") or {}).get("volumeClaimTemplates") or []:
            present.add(("PersistentVolumeClaim", claim["metadata"]["name"]))
    errors = []
    for obj in objects:
        for path, pod in pod_specs(obj):
            for kind, name, where, optional in references(pod):
                if kind == "Secret" and name in EXTERNAL_SECRETS:
                    if optional and name not in OPTIONAL_SECRETS:
                        errors.append(
                            f"{name_of(obj)}: {path}.{where}: Secret {name} is optional, so a "
                            "pod without it starts silently without auth; make it required"
                        )
                    continue
                if (kind, name) not in present:
                    errors.append(
                        f"{name_of(obj)}: {path}.{where}: {kind} {name!r} is not in the overlay "
                        "(a generated name kustomize did not rewrite? see kustomizeconfig.yaml)"
                    )
    return errors


def restricted_errors(obj: Obj) -> list[str]:
    """Pod Security "restricted" (the namespace enforces it): seccomp and capabilities."""
    errors = []
    for path, pod in pod_specs(obj):
        pod_seccomp = ((pod.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
        for c in containers(pod):
            where = f"{path}.containers[{c.get('name')}].securityContext"
            context = c.get("securityContext") or {}
            seccomp = (context.get("seccompProfile") or {}).get("type") or pod_seccomp
            if seccomp not in {"RuntimeDefault", "Localhost"}:
                errors.append(f"{name_of(obj)}: {where}.seccompProfile: RuntimeDefault required")
            if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
                errors.append(f"{name_of(obj)}: {where}.capabilities.drop: must include ALL")
    return errors


def image_errors(objects: list[Obj]) -> list[str]:
    """Every council-eval container runs one image (set by one `kustomize edit set image`)."""
    images: dict[str, list[str]] = {}
    for obj in objects:
        for path, pod in pod_specs(obj):
            for c in containers(pod):
                repo = c.get("image", "").split("@")[0].rsplit(":", 1)[0]
                if repo.rsplit("/", 1)[-1] == IMAGE:
                    images.setdefault(c["image"], []).append(f"{name_of(obj)}: {path}")
    if len(images) > 1:
        listed = "; ".join(f"{image} ({', '.join(where)})" for image, where in images.items())
        return [f"council-eval images differ, so one override cannot move them all: {listed}"]
    return []


def peers(policy: Obj) -> list[Obj]:
    """The ``from`` peers of a NetworkPolicy's ingress rules ({} for a rule open to all)."""
    return [p for rule in policy["spec"].get("ingress") or [] for p in rule.get("from") or [{}]]


def security_errors(objects: list[Obj]) -> list[str]:
    """The network, namespace and Ray baseline of the stack."""
    errors = []
    kinds = {o.get("kind") for o in objects}
    catch_all = [
        o
        for o in objects
        if o.get("kind") == "NetworkPolicy"
        and not (o["spec"].get("podSelector") or {})
        and "Ingress" in (o["spec"].get("policyTypes") or [])
        and all(
            set(peer) == {"podSelector"}
            for r in o["spec"].get("ingress") or []
            for peer in r.get("from") or [{}]
        )
    ]
    if not catch_all:
        errors.append(
            "no NetworkPolicy admits only same-namespace traffic to every pod: any pod in the "
            "cluster reaches the Ray job API, vLLM, NATS and MLflow"
        )
    for ns in (o for o in objects if o.get("kind") == "Namespace"):
        labels = (ns.get("metadata") or {}).get("labels") or {}
        if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
            errors.append(f"{name_of(ns)}: label pod-security.kubernetes.io/enforce: restricted")
    if "Namespace" not in kinds:
        errors.append("no Namespace object: its Pod Security label cannot be set")
    for rc in (o for o in objects if o.get("kind") == "RayCluster"):
        if ((rc["spec"].get("authOptions") or {}).get("mode")) != "token":
            errors.append(f"{name_of(rc)}: spec.authOptions.mode: token (Ray token auth)")
    return errors


def server_errors(objects: list[Obj]) -> list[str]:
    """vLLM asks for a key, NATS for a token, MLflow has drivers and reachable host names."""
    errors = []
    for obj in objects:
        for path, pod in pod_specs(obj):
            for c in pod.get("containers") or []:
                env = {e["name"]: e for e in c.get("env") or []}
                image = c.get("image", "")
                where = f"{name_of(obj)}: {path}.containers[{c['name']}]"
                if "vllm-openai" in image or "vllm-cpu" in image:
                    key = (env.get("VLLM_API_KEY") or {}).get("valueFrom", {}).get("secretKeyRef")
                    if not key:
                        errors.append(f"{where}: VLLM_API_KEY from a Secret (vllm serve's key)")
                if "/nats:" in image:
                    token = (env.get("NATS_TOKEN") or {}).get("valueFrom", {}).get("secretKeyRef")
                    if not token:
                        errors.append(f"{where}: NATS_TOKEN from a Secret (nats.conf's token)")
                if "/mlflow:" in image:
                    errors += mlflow_errors(where, image, env)
    return errors


def mlflow_errors(where: str, image: str, env: dict[str, Obj]) -> list[str]:
    from mlflow.server.security_utils import is_allowed_host_header

    errors = []
    backend = (env.get("MLFLOW_BACKEND_STORE_URI") or {}).get("valueFrom")
    if backend and not image.endswith("-full"):
        errors.append(f"{where}.image: {image} has no database drivers; use the -full image")
    allowed = (env.get("MLFLOW_SERVER_ALLOWED_HOSTS") or {}).get("value")
    if allowed:
        hosts = [h.strip().replace("$(POD_NAMESPACE)", "council") for h in allowed.split(",")]
        for host in ("mlflow:5000", "mlflow.council.svc.cluster.local:5000", "127.0.0.1:5000"):
            if not is_allowed_host_header(hosts, host):
                errors.append(f"{where}: MLFLOW_SERVER_ALLOWED_HOSTS refuses Host {host}")
    return errors


def config_file(objects: list[Obj], configmap: str, key: str) -> str | None:
    for o in objects:
        is_it = o.get("kind") == "ConfigMap" and o["metadata"]["name"].startswith(configmap)
        if is_it and key in (o.get("data") or {}):
            return o["data"][key]
    return None


@functools.cache
def planned_engines(text: str) -> frozenset[str] | str:
    """The engines of the nightly runs an overrides file plans, or why it plans none."""
    from pipelines import UserError
    from pipelines.driver.night import plan

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / OVERRIDES[1]
        path.write_text(text)
        try:
            return frozenset(cfg.engine.name for _, cfg in plan(path))
        except UserError as e:
            return str(e).replace(str(path), OVERRIDES[1])


def overrides_errors(objects: list[Obj]) -> list[str]:
    """The nightly's overrides compose (no engine), and the overlay serves their engine."""
    text = config_file(objects, *OVERRIDES)
    if text is None:
        return [f"no ConfigMap {OVERRIDES[0]} with file {OVERRIDES[1]}: the nightly has no runs"]
    engines = planned_engines(text)
    if isinstance(engines, str):
        return [f"ConfigMap {OVERRIDES[0]}: {engines}"]
    errors = []
    server = any(o.get("kind") == "Deployment" and o["metadata"]["name"] == "vllm" for o in objects)
    if "openai" in engines and not server:
        errors.append("overrides use engine=openai but the overlay has no vLLM server")
    if server and "openai" not in engines:
        errors.append(f"a vLLM server runs but no nightly run uses it (engines: {sorted(engines)})")
    gpu_workers = [
        path
        for o in objects
        if o.get("kind") == "RayCluster"
        for path, pod in pod_specs(o)
        if "workerGroupSpecs" in path
        for c in pod.get("containers") or []
        if "nvidia.com/gpu" in ((c.get("resources") or {}).get("limits") or {})
    ]
    if gpu_workers and "vllm" not in engines:
        errors.append(
            f"Ray workers request GPUs ({', '.join(gpu_workers)}) but no nightly run loads "
            "vLLM in-process (engine=vllm): they would sit idle"
        )
    return errors


def nightly_jobs(objects: list[Obj]) -> list[tuple[str, Obj]]:
    """(where, RayJob spec) of each RayJob, held in a ConfigMap or not, and RayCronJob."""
    jobs = []
    for o in objects:
        if o.get("kind") == "RayJob":
            jobs.append((name_of(o), o["spec"]))
        elif o.get("kind") == "RayCronJob":
            jobs.append((name_of(o), o["spec"]["jobTemplate"]))
    return jobs


def guard(objects: list[Obj]) -> tuple[list[str], dict[str, dict[str, str]]] | None:
    """The scheduling CronJob's command and the ConfigMap files mounted in its pod."""
    configmaps = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "ConfigMap"}
    for o in objects:
        if o.get("kind") != "CronJob":
            continue
        pod = o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        volumes = {
            v["name"]: v["configMap"]["name"] for v in pod.get("volumes") or [] if "configMap" in v
        }
        container = pod["containers"][0]
        files = {
            m["mountPath"]: configmaps[volumes[m["name"]]].get("data") or {}
            for m in container.get("volumeMounts") or []
            if volumes.get(m["name"]) in configmaps
        }
        return [*container.get("command", []), *container.get("args", [])], files
    return None


def entrypoint_errors(objects: list[Obj]) -> list[str]:
    """Each scheduled RayJob's entrypoint reaches `ray job submit` whole."""
    errors = []
    for where, job in nightly_jobs(objects):
        if job.get("submissionMode") == "HTTPMode":
            continue  # the operator posts the entrypoint whole to the job API
        got = submitted(job)
        if got.to_ray != job["entrypoint"].split() or got.in_submitter:
            errors.append(
                f"{where}: entrypoint {job['entrypoint']!r} reaches Ray as {got.to_ray} and runs "
                f"{got.in_submitter} in the submitter pod (KubeRay pastes it unquoted into "
                "bash -c: no shell operators, or submissionMode: HTTPMode)"
            )
    return errors


def guard_errors(objects: list[Obj]) -> list[str]:
    """The CronJob skips a night only while a benchmark is active, and stops overdue ones."""
    found = guard(objects)
    if found is None:
        return []
    command, files = found
    name, errors = "council-nightly-2", []
    finished = "a  Complete  <none>  SUCCEEDED\nb  Failed  AppFailed  FAILED\n"
    finished += "c  ValidationFailed  ValidationFailed  <none>\nd  Suspended  <none>  <none>\n"
    run = run_guard(command, files, finished, name)
    if run.exit_code != 0 or len(run.created) != 1:
        errors.append(f"CronJob: finished RayJobs blocked the night: {run.output.strip()}")
    else:
        created = run.created[0]
        if created["metadata"].get("name") == name:
            errors.append(
                f"CronJob: the RayJob is named {name}, as its Job: KubeRay names its submitter "
                "Job after the RayJob and would take this Job for it"
            )
        if name not in created["spec"].get("entrypoint", "").split():
            errors.append(
                f"CronJob: the RayJob's entrypoint does not name the night ({name}): "
                "a re-created night starts over instead of resuming"
            )
    for state in ("<none>", "Initializing", "Running", "Retrying", "Waiting", "Suspending"):
        run = run_guard(command, files, f"e  {state}  <none>  RUNNING\n", name)
        if run.created:
            errors.append(f"CronJob: created a RayJob while one was {state}")
    run = run_guard(command, files, "f  Failed  DeadlineExceeded  RUNNING\n", name)
    if run.deleted != ["f"]:
        errors.append(f"CronJob: left RayJob f running past its deadline: {run.output.strip()}")
    return errors


STOP_WAIT_MIN_S = 30
"""Shortest SIGTERM-to-SIGKILL wait that lets a driver stop cleanly: abandon its
batches, stop its engines, close the sink."""


def stop_errors(objects: list[Obj]) -> list[str]:
    """A stopped night stops cleanly and its retry resumes it.

    Each nightly RayJob retries (``backoffLimit``; its ``--name``, or the date,
    brings back the same run folders). The head that runs the driver sends it
    SIGTERM before it goes (preStop ``pipelines.stopping``), waits longer than
    that hook, and lets ``ray job stop`` wait too (``RAY_JOB_STOP_WAIT_TIME_S``).
    """
    errors = []
    for where, job in nightly_jobs(objects):
        if int(job.get("backoffLimit") or 0) < 1:
            errors.append(
                f"{where}: backoffLimit {job.get('backoffLimit', 0)}: a failed or stopped "
                "night is never retried (a retry resumes its run folders)"
            )
    for o in objects:
        if o.get("kind") != "RayCluster":
            continue
        pod = o["spec"]["headGroupSpec"]["template"]["spec"]
        head = pod["containers"][0]
        hook = ((head.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}
        command = [str(c) for c in hook.get("command") or []]
        if "pipelines.stopping" not in command:
            errors.append(
                f"{name_of(o)}: head container: no preStop `python -m pipelines.stopping`: an "
                "evicted head kills the driver without a clean stop"
            )
        wait = float(command[command.index("--timeout") + 1]) if "--timeout" in command else 60
        grace = float(pod.get("terminationGracePeriodSeconds", 30))
        if grace <= wait:
            errors.append(
                f"{name_of(o)}: head terminationGracePeriodSeconds {grace:g} <= the preStop "
                f"wait {wait:g} s: the kubelet kills the driver before it has stopped"
            )
        env = {e["name"]: e.get("value") for e in head.get("env") or []}
        stop_wait = float(env.get("RAY_JOB_STOP_WAIT_TIME_S") or 3)
        if stop_wait < STOP_WAIT_MIN_S:
            errors.append(
                f"{name_of(o)}: head RAY_JOB_STOP_WAIT_TIME_S {stop_wait:g} < "
                f"{STOP_WAIT_MIN_S}: `ray job stop` SIGKILLs the driver before it has stopped"
            )
    return errors
