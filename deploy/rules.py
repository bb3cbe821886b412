"""council-eval's rules for a rendered overlay, beyond what the schemas say.

Each function takes the overlay's objects (as rendered, plus the RayJob
template held in a ConfigMap) and returns error lines. Together they catch
what once passed the schemas and still failed on a cluster: references that
name no object, an entrypoint KubeRay cuts at ``&&``, overrides that do not
compose, pods the namespace's Pod Security level rejects, an open network.
"""

from __future__ import annotations

import functools
import re
import shlex
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deploy.harness import GuardRun, run_guard, submitted
from deploy.podspec import quantity

Obj = dict[str, Any]

EXTERNAL_SECRETS = {
    "council-auth": "the pipeline's credentials (deploy/README.md, Secrets)",
    "council-readers": "NATS_READER_PASSWORD, the NATS user of readers",
    "mlflow-server": "flask_secret_key, the MLflow server's CSRF key",
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
                    if not {"USER", "LOGNAME"} & set(env) or "HOME" not in env:
                        errors.append(
                            f"{where}: USER (or LOGNAME) and HOME: the image has no user for "
                            "its uid, and torch's getpass.getuser() fails at import without them"
                        )
                if "/nats:" in image:
                    errors += nats_errors(objects, where, env)
                if "/mlflow:" in image:
                    errors += mlflow_errors(where, image, env)
                    errors += mlflow_auth_errors(objects, where, c, env)
    return errors


def nats_errors(objects: list[Obj], where: str, env: dict[str, Obj]) -> list[str]:
    """Each variable of nats.conf (a password) comes from a Secret, and the pipeline's
    NATS_USER (council-env) is one of its users."""
    conf = config_file(objects, "nats-config", "nats.conf")
    if conf is None or "authorization" not in conf:
        return [f"{where}: no nats.conf with users (ConfigMap nats-config): anyone may publish"]
    errors = [
        f"{where}: {name} from a Secret (nats.conf's ${name})"
        for name in sorted(set(re.findall(r"[:=]\s*\$([A-Za-z_][A-Za-z0-9_]*)", conf)))
        if not (env.get(name) or {}).get("valueFrom", {}).get("secretKeyRef")
    ]
    users = set(re.findall(r"^\s*user:\s*(\S+)", conf, re.MULTILINE))
    user = (config_literals(objects, "council-env").get("NATS_USER") or "").split("#")[0].strip()
    if user not in users:
        errors.append(
            f"ConfigMap council-env: NATS_USER {user or '(unset)'!r} is none of nats.conf's "
            f"users {sorted(users)}: the pipeline cannot publish"
        )
    return errors


def mlflow_auth_errors(objects: list[Obj], where: str, c: Obj, env: dict[str, Obj]) -> list[str]:
    """MLflow runs its basic-auth app with its secrets from Secrets, and the pipeline
    has a user to sign in with."""
    errors = []
    if "--app-name basic-auth" not in " ".join([*c.get("command", []), *c.get("args", [])]):
        errors.append(
            f"{where}: mlflow server --app-name basic-auth: anyone in the namespace "
            "could read and delete every run"
        )
    for name in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        if not (env.get(name) or {}).get("valueFrom", {}).get("secretKeyRef"):
            errors.append(f"{where}: {name} from a Secret")
    if "MLFLOW_TRACKING_USERNAME" not in config_literals(objects, "council-env"):
        errors.append("ConfigMap council-env: MLFLOW_TRACKING_USERNAME: the pipeline's MLflow user")
    return errors


def config_literals(objects: list[Obj], configmap: str) -> dict[str, str]:
    """The data of the ConfigMap whose name starts with ``configmap`` (a hash follows)."""
    for o in objects:
        if o.get("kind") == "ConfigMap" and o["metadata"]["name"].startswith(configmap):
            return dict(o.get("data") or {})
    return {}


def mlflow_errors(where: str, image: str, env: dict[str, Obj]) -> list[str]:
    from mlflow.server.security_utils import is_allowed_host_header

    errors = []
    backend = (env.get("MLFLOW_BACKEND_STORE_URI") or {}).get("valueFrom")
    if backend and not image.split("@")[0].endswith("-full"):
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
def planned_engines(text: str) -> frozenset[tuple[str, float | None]] | str:
    """The (engine, engine.num_gpus) of the nightly runs an overrides file plans, or why
    it plans none."""
    from pipelines import UserError
    from pipelines.driver.night import plan

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / OVERRIDES[1]
        path.write_text(text)
        try:
            return frozenset((cfg.engine.name, cfg.engine.num_gpus) for _, cfg in plan(path))
        except UserError as e:
            return str(e).replace(str(path), OVERRIDES[1])


def overrides_errors(objects: list[Obj]) -> list[str]:
    """The nightly's overrides compose (no engine), and the overlay serves their engine."""
    text = config_file(objects, *OVERRIDES)
    if text is None:
        return [f"no ConfigMap {OVERRIDES[0]} with file {OVERRIDES[1]}: the nightly has no runs"]
    planned = planned_engines(text)
    if isinstance(planned, str):
        return [f"ConfigMap {OVERRIDES[0]}: {planned}"]
    engines = {engine for engine, _ in planned}
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
    from_zero = any(
        o.get("kind") == "RayCluster" and o["spec"].get("enableInTreeAutoscaling") for o in objects
    )
    if gpu_workers and from_zero and ("vllm", None) in planned:
        errors.append(
            "the GPU workers scale from zero, but an engine=vllm run leaves engine.num_gpus "
            "unset: it counts the cluster's GPUs at its start (none) and asks for none"
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


@dataclass
class Guard:
    """The scheduling CronJob: its Job spec, command, mounted ConfigMap files, plain env."""

    job: Obj
    command: list[str]
    files: dict[str, dict[str, str]]
    env: dict[str, str]

    def run(self, rows: str, name: str, states: str = "", **env: str) -> GuardRun:
        files = tuple((mount, tuple(sorted(f.items()))) for mount, f in self.files.items())
        merged = tuple(sorted({**self.env, **env}.items()))
        return cached_run(tuple(self.command), files, rows, name, states, merged)


@functools.lru_cache(maxsize=512)
def cached_run(
    command: tuple[str, ...],
    files: tuple[tuple[str, tuple[tuple[str, str], ...]], ...],
    rows: str,
    name: str,
    states: str,
    env: tuple[tuple[str, str], ...],
) -> GuardRun:
    """One guard run per distinct script, files and fixture (the same script is
    checked over and over by tests that break other manifests)."""
    given = {mount: dict(f) for mount, f in files}
    return run_guard(list(command), given, rows, name, states, dict(env))


def guard(objects: list[Obj]) -> Guard | None:
    """The scheduling CronJob's guard, as its pod would run it."""
    configmaps = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "ConfigMap"}
    for o in objects:
        if o.get("kind") != "CronJob":
            continue
        job = o["spec"]["jobTemplate"]["spec"]
        pod = job["template"]["spec"]
        volumes = {
            v["name"]: v["configMap"]["name"] for v in pod.get("volumes") or [] if "configMap" in v
        }
        container = pod["containers"][0]
        files = {
            m["mountPath"]: configmaps[volumes[m["name"]]].get("data") or {}
            for m in container.get("volumeMounts") or []
            if volumes.get(m["name"]) in configmaps
        }
        env = {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e}
        command = [*container.get("command", []), *container.get("args", [])]
        return Guard(job, command, files, env)
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


SAMPLE_NIGHT = "council-nightly-29412120"
"""A night's name as the CronJob gives it (the Job's name: council-nightly-<minute>)."""
FINISHED = "a  Complete  <none>  SUCCEEDED\nb  Failed  AppFailed  FAILED\n"
FINISHED += "c  ValidationFailed  ValidationFailed  <none>\nd  Suspended  <none>  <none>\n"
RUNNING = "Running  <none>  RUNNING"
FOLLOWED = f"<none>  <none>  <none>\nInitializing  <none>  <none>\n{RUNNING}\n"
"""The created RayJob's states up to Running, one per poll."""
GUARD_EXITS = {2: "a name KubeRay refuses", 65: "a refused RayJob", 75: "a skipped night"}
"""The guard's exit statuses that no retry can change: the Job must fail on them."""


def guard_errors(objects: list[Obj]) -> list[str]:
    """The CronJob's Job is the night's outcome: it creates the night's RayJob, follows
    it, and succeeds only when it is Complete; it skips only for an active night."""
    found = guard(objects)
    if found is None:
        return []
    errors = []

    def check(what: str, run: GuardRun, code: int | None, created: int | None = 1) -> None:
        ok = run.exit_code == code if code is not None else run.exit_code != 0
        if not ok or (created is not None and len(run.created) != created):
            want = f"exit {code}" if code is not None else "a failure"
            errors.append(
                f"CronJob: {what}: exit {run.exit_code}, {len(run.created)} RayJob(s) created; "
                f"wanted {want}: {run.output.strip()}"
            )

    run = found.run(FINISHED, SAMPLE_NIGHT, FOLLOWED + "Complete  <none>  SUCCEEDED")
    check("finished RayJobs blocked the night, or a Complete night was not a success", run, 0)
    if run.created:
        created = run.created[0]
        if created["metadata"].get("name") == SAMPLE_NIGHT:
            errors.append(
                f"CronJob: the RayJob is named {SAMPLE_NIGHT}, as its Job: KubeRay names what it "
                "makes after the RayJob, and would take this Job for it"
            )
        if SAMPLE_NIGHT not in created["spec"].get("entrypoint", "").split():
            errors.append(
                f"CronJob: the RayJob's entrypoint does not name the night ({SAMPLE_NIGHT}): "
                "a re-created night starts over instead of resuming"
            )
    for state, reason in (("ValidationFailed", "ValidationFailed"), ("Failed", "AppFailed")):
        run = found.run("", SAMPLE_NIGHT, f"{FOLLOWED}{state}  {reason}  FAILED")
        check(f"a night whose RayJob is {state} was reported as a success", run, None)
    run = found.run("", SAMPLE_NIGHT, "Initializing  <none>  <none>")
    check("a RayJob that never left Initializing", run, None)
    if run.polls > 200:
        errors.append(f"CronJob: waited {run.polls} polls for a RayJob stuck in Initializing")
    for state in ("<none>", "Initializing", "Running", "Retrying", "Waiting", "Suspending"):
        run = found.run(f"e  {state}  <none>  RUNNING\n", SAMPLE_NIGHT)
        check(
            f"another night's RayJob was {state}: not skipped, or skipped as a success", run, 75, 0
        )
    run = found.run("f  Failed  DeadlineExceeded  RUNNING\n", SAMPLE_NIGHT, FOLLOWED + "Complete")
    if run.deleted[:1] != ["f"]:
        errors.append(f"CronJob: left RayJob f running past its deadline: {run.output.strip()}")
    run = found.run(f"{SAMPLE_NIGHT}-ray  Failed  AppFailed  FAILED\n", SAMPLE_NIGHT, FOLLOWED)
    if run.deleted != [f"{SAMPLE_NIGHT}-ray"] or len(run.created) != 1:
        errors.append(
            "CronJob: a retry of a failed night did not re-create its RayJob under the same "
            f"name (deleted {run.deleted}, created {len(run.created)})"
        )
    errors += name_errors(found)
    errors += prune_errors(found)
    errors += rbac_errors(objects, found)
    errors += job_errors(objects, found)
    return errors


def name_errors(found: Guard) -> list[str]:
    """The guard refuses the names KubeRay would refuse, and only those."""
    from deploy.kuberay import MAX_RAYJOB_NAME, operator_errors

    errors = []
    longest = "n" * (MAX_RAYJOB_NAME - len("-ray"))
    for name in ("9-night", "night-", "night_1", longest + "n"):
        run = found.run("", name, FOLLOWED)
        if run.exit_code != 2 or run.created:
            errors.append(f"CronJob: accepted night {name!r}, which KubeRay refuses as a RayJob")
    run = found.run("", longest, FOLLOWED + "Complete")
    for job in run.created:
        if isinstance(job, dict):
            errors += [f"CronJob: night {longest!r}: {e}" for e in operator_errors(job)]
    if not run.created:
        errors.append(f"CronJob: refused night {longest!r}: {run.output.strip()}")
    return errors


def prune_errors(found: Guard) -> list[str]:
    """Finished nights' RayJobs beyond the newest KEEP_NIGHTS are deleted, oldest first."""
    keep = int(found.env.get("KEEP_NIGHTS") or 0)
    if keep < 1:
        return ["CronJob: no KEEP_NIGHTS: finished RayJobs pile up (365 a year)"]
    rows = "".join(f"old-{i}  Complete  <none>  SUCCEEDED\n" for i in range(keep + 3))
    run = found.run(rows, SAMPLE_NIGHT, FOLLOWED + "Complete")
    if run.deleted != ["old-0", "old-1", "old-2"]:
        return [
            f"CronJob: with {keep + 3} finished nights and KEEP_NIGHTS={keep}, deleted "
            f"{run.deleted}, not the 3 oldest"
        ]
    return []


def rbac_errors(objects: list[Obj], found: Guard) -> list[str]:
    """The guard's Role grants every verb its kubectl calls need (watch for --wait)."""
    sa = found.job["template"]["spec"].get("serviceAccountName")
    roles = {
        b["roleRef"]["name"]
        for b in objects
        if b.get("kind") == "RoleBinding"
        and any(s.get("name") == sa for s in b.get("subjects") or [])
    }
    granted = {
        verb
        for r in objects
        if r.get("kind") == "Role" and r["metadata"]["name"] in roles
        for rule in r.get("rules") or []
        if "rayjobs" in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }
    needed = set()
    rows = f"f  Failed  DeadlineExceeded  RUNNING\n{SAMPLE_NIGHT}-ray  Failed  AppFailed  FAILED\n"
    for args in found.run(rows, SAMPLE_NIGHT, FOLLOWED + "Complete").kubectl:
        verb = args[0]
        if verb == "get":
            needed.add("list" if args[1] == "rayjobs" else "get")
        elif verb in {"create", "delete"}:
            needed.add(verb)
        if "--wait=true" in args or verb == "wait":
            needed.add("watch")
    if missing := sorted(needed - granted):
        return [
            f"CronJob: its Role does not grant {missing} on rayjobs, which the guard uses "
            "(without watch, `kubectl delete --wait` stops following the deletion)"
        ]
    return []


def job_errors(objects: list[Obj], found: Guard) -> list[str]:
    """The Job fails at once on a status no retry changes, and outlives its retries."""
    errors = []
    rules = (found.job.get("podFailurePolicy") or {}).get("rules") or []
    failing = {
        code
        for r in rules
        if r.get("action") == "FailJob" and (r.get("onExitCodes") or {}).get("operator") == "In"
        for code in r["onExitCodes"].get("values") or []
    }
    for code, what in GUARD_EXITS.items():
        if code not in failing:
            errors.append(
                f"CronJob: podFailurePolicy does not fail the Job on exit {code} ({what}): "
                "the Job retries what a retry cannot change"
            )
    template = config_file(objects, "council-nightly", "rayjob.yaml")
    if template:
        spec = yaml.safe_load(template)["spec"]
        one_try = spec.get("preRunningDeadlineSeconds", 0) + 120
        one_try += spec.get("activeDeadlineSeconds", 0) + 300
        tries = found.job.get("backoffLimit", 6) + 1
        deadline = found.job.get("activeDeadlineSeconds")
        if deadline is not None and deadline < tries * one_try:
            errors.append(
                f"CronJob: the Job's activeDeadlineSeconds {deadline} < {tries} tries x "
                f"{one_try} s: Kubernetes stops the guard while the night it follows runs"
            )
    return errors


def head_stop_wait(objects: list[Obj]) -> float:
    """RAY_JOB_STOP_WAIT_TIME_S of the RayCluster's head: how long `ray job stop` waits."""
    for o in objects:
        if o.get("kind") == "RayCluster":
            head = o["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
            env = {e["name"]: e.get("value") for e in head.get("env") or []}
            return float(env.get("RAY_JOB_STOP_WAIT_TIME_S") or 3)
    return 3.0


def option(words: list[str], flag: str) -> float | None:
    return float(words[words.index(flag) + 1]) if flag in words[:-1] else None


def night_errors(objects: list[Obj]) -> list[str]:
    """Each scheduled night survives a dropped log stream, stops itself at its deadline,
    and waits for a stale night's driver to hand over the lock."""
    errors = []
    stop_wait = head_stop_wait(objects)
    for where, job in nightly_jobs(objects):
        if job.get("submissionMode", "K8sJobMode") != "HTTPMode":
            errors.append(
                f"{where}: submissionMode {job.get('submissionMode', 'K8sJobMode')}: KubeRay v1.7 "
                "marks a running night Failed 30 s after its submitter's `ray job logs --follow` "
                "ends (kuberay#4921); use HTTPMode"
            )
        words = shlex.split(job.get("entrypoint", ""))
        pre_running = job.get("preRunningDeadlineSeconds")
        active = job.get("activeDeadlineSeconds")
        deadline = option(words, "--deadline")
        if pre_running is None:
            errors.append(
                f"{where}: no preRunningDeadlineSeconds: a night whose cluster never gets "
                "ready waits in Initializing until its activeDeadlineSeconds"
            )
        if deadline is None:
            errors.append(
                f"{where}: the entrypoint has no --deadline: with clusterSelector, "
                "activeDeadlineSeconds marks the RayJob Failed and leaves its driver running"
            )
        elif active is not None and deadline + (pre_running or 0) + stop_wait >= active:
            errors.append(
                f"{where}: --deadline {deadline:g} + preRunningDeadlineSeconds "
                f"{pre_running or 0} + the head's stop wait {stop_wait:g} >= "
                f"activeDeadlineSeconds {active}: KubeRay fails the night before it has stopped"
            )
        wait = option(words, "--lock-wait") or 0
        if wait <= stop_wait:
            errors.append(
                f"{where}: --lock-wait {wait:g} <= the head's RAY_JOB_STOP_WAIT_TIME_S "
                f"{stop_wait:g}: a stale night's driver may keep the lock that long after "
                "`ray job stop`, and the new night gives up before"
            )
    return errors


def cluster_errors(objects: list[Obj]) -> list[str]:
    """Ray pods: replaced when their template changes, given what they are limited to,
    and a /dev/shm that holds the object store without eating the pod's memory."""
    errors = []
    for o in (o for o in objects if o.get("kind") == "RayCluster"):
        spec = o["spec"]
        if (spec.get("upgradeStrategy") or {}).get("type") != "Recreate":
            errors.append(
                f"{name_of(o)}: spec.upgradeStrategy.type: Recreate: KubeRay keeps running pods "
                "on the old image and council-env otherwise"
            )
        groups = [("head", spec["headGroupSpec"])]
        groups += [(g.get("groupName", "?"), g) for g in spec.get("workerGroupSpecs") or []]
        for group, g in groups:
            errors += ray_pod_errors(f"{name_of(o)}: {group}", g)
        if spec.get("enableInTreeAutoscaling"):
            options = spec.get("autoscalerOptions") or {}
            context = options.get("securityContext") or {}
            if context.get("allowPrivilegeEscalation") is not False or "ALL" not in (
                (context.get("capabilities") or {}).get("drop") or []
            ):
                errors.append(
                    f"{name_of(o)}: autoscalerOptions.securityContext: the autoscaler container "
                    "KubeRay adds to the head must drop ALL capabilities and forbid privilege "
                    "escalation (Pod Security restricted)"
                )
            if not {"requests", "limits"} <= set(options.get("resources") or {}):
                errors.append(f"{name_of(o)}: autoscalerOptions.resources: requests and limits")
    return errors


def ray_pod_errors(where: str, group: Obj) -> list[str]:
    errors = []
    pod = group["template"]["spec"]
    ray = pod["containers"][0]
    resources = ray.get("resources") or {}
    for key in ("cpu", "memory"):
        request = (resources.get("requests") or {}).get(key)
        limit = (resources.get("limits") or {}).get(key)
        if request is not None and limit is not None and quantity(request) != quantity(limit):
            errors.append(
                f"{where}: {key} request {request} != limit {limit}: KubeRay gives Ray the "
                "limit, which the scheduler never reserved"
            )
    shm = {m["name"] for m in ray.get("volumeMounts") or [] if m.get("mountPath") == "/dev/shm"}
    for volume in pod.get("volumes") or []:
        empty = volume.get("emptyDir") or {}
        if volume["name"] not in shm or empty.get("medium") != "Memory":
            continue
        size = quantity(empty.get("sizeLimit") or 0)
        store = (group.get("rayStartParams") or {}).get("object-store-memory")
        memory = quantity((resources.get("limits") or {}).get("memory") or 0)
        if store is None:
            errors.append(f"{where}: no object-store-memory: Ray sizes its store to the host")
        elif size < quantity(store):
            errors.append(
                f"{where}: /dev/shm sizeLimit {empty.get('sizeLimit')} < object-store-memory "
                f"{store}: the object store spills or fails"
            )
        if memory and size > memory / 2:
            errors.append(
                f"{where}: /dev/shm sizeLimit {empty.get('sizeLimit')} > half the memory limit: "
                "a full shm (counted in the pod's memory) leaves Ray no room"
            )
    return errors


PROBE_TIMEOUT_MIN_S = 5


def probe_errors(obj: Obj) -> list[str]:
    """Liveness and startup probes give a busy server more than the default 1 s."""
    errors = []
    for path, pod in pod_specs(obj):
        for c in containers(pod):
            for probe in ("livenessProbe", "startupProbe"):
                if probe in c and c[probe].get("timeoutSeconds", 1) < PROBE_TIMEOUT_MIN_S:
                    errors.append(
                        f"{path}.containers[{c.get('name')}].{probe}.timeoutSeconds: "
                        f"{c[probe].get('timeoutSeconds', 1)} s: a busy server is restarted "
                        f"(at least {PROBE_TIMEOUT_MIN_S})"
                    )
    return errors


STOP_WAIT_MIN_S = 30
"""Shortest SIGTERM-to-SIGKILL wait that lets a driver stop cleanly: abandon its
batches, stop its engines, close the sink."""


def stop_errors(objects: list[Obj]) -> list[str]:
    """A stopped night stops cleanly and its retry resumes it.

    The head that runs the driver sends it SIGTERM before it goes (preStop
    ``pipelines.stopping``), waits longer than that hook, and lets ``ray job
    stop`` wait too (``RAY_JOB_STOP_WAIT_TIME_S``).
    """
    errors = []
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
        wait = option(command, "--timeout") or 60
        grace = float(pod.get("terminationGracePeriodSeconds", 30))
        if grace <= wait:
            errors.append(
                f"{name_of(o)}: head terminationGracePeriodSeconds {grace:g} <= the preStop "
                f"wait {wait:g} s: the kubelet kills the driver before it has stopped"
            )
        stop_wait = head_stop_wait([o])
        if stop_wait < STOP_WAIT_MIN_S:
            errors.append(
                f"{name_of(o)}: head RAY_JOB_STOP_WAIT_TIME_S {stop_wait:g} < "
                f"{STOP_WAIT_MIN_S}: `ray job stop` SIGKILLs the driver before it has stopped"
            )
    return errors
