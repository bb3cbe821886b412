"""Least privilege of every pod in a rendered overlay: where it may connect, what
credentials it holds, what it may write.

- :func:`egress_errors`: a NetworkPolicy keeps every pod's traffic in the
  namespace (and the cluster DNS); a pod leaves it only on the ports its
  ``council.io/egress`` label names, and a pod that must leave (the guard's
  kubectl, a model download) can.
- :func:`token_errors`: a pod mounts a service-account token only when it
  calls the Kubernetes API (its account is bound to a Role, or it is the head
  of an autoscaled RayCluster), and then it does.
- :func:`root_errors`: every container's image is read-only; what it writes
  goes to its volumes.
- :func:`digest_errors` (``deploy.check --release``): every image is pinned by
  digest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from deploy.rules import Obj, containers, name_of, pod_specs

EGRESS_LABEL = "council.io/egress"
EGRESS_PORTS = {"kubernetes-api": {443, 6443}, "model-hub": {443}, "database": {3306, 5432}}
"""What each value of :data:`EGRESS_LABEL` may reach outside the namespace (TCP ports)."""
ALL_PORTS = 0
"""Stands for "every port" (an egress rule that names none)."""


def pods(objects: list[Obj]) -> Iterator[tuple[str, Obj, dict[str, str], Obj]]:
    """(where, owner, labels, pod spec) of every pod template; a RayCluster's pods
    carry the labels KubeRay adds (``ray.io/node-type``)."""
    for obj in objects:
        for path, pod in pod_specs(obj):
            template: object = obj
            for part in path.split(".")[:-1]:
                template = template[int(part)] if part.isdigit() else template[part]  # type: ignore[index]
            labels = dict(((template.get("metadata") or {}).get("labels")) or {})  # type: ignore[union-attr]
            if obj.get("kind") == "RayCluster":
                labels["ray.io/node-type"] = "head" if "headGroupSpec" in path else "worker"
            yield f"{name_of(obj)}: {path}", obj, labels, pod


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """A label selector matches ``labels``."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _dns(peer: Obj, ports: set[int]) -> bool:
    """``peer`` is the cluster DNS in kube-system, on port 53 only."""
    namespace = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
    return namespace.get("kubernetes.io/metadata.name") == "kube-system" and ports == {53}


def outside(policy: Obj) -> set[int]:
    """The ports on which ``policy`` lets a pod leave the namespace (DNS aside)."""
    found: set[int] = set()
    for rule in policy["spec"].get("egress") or []:
        ports = {int(p.get("port", ALL_PORTS)) for p in rule.get("ports") or [{}]}
        for peer in rule.get("to") or [{}]:
            if set(peer) == {"podSelector"} or _dns(peer, ports):
                continue  # this namespace's pods, or DNS
            found |= ports
    return found


def egress_errors(objects: list[Obj]) -> list[str]:
    """Every pod's egress is limited, and each gets the ports its label names."""
    policies = [
        o
        for o in objects
        if o.get("kind") == "NetworkPolicy" and "Egress" in (o["spec"].get("policyTypes") or [])
    ]
    errors = []
    if not any(not p["spec"].get("podSelector") for p in policies):
        errors.append(
            "no NetworkPolicy limits every pod's egress: a Ray pod can send the run's "
            "secrets and results anywhere"
        )
    for p in policies:
        if not p["spec"].get("podSelector") and outside(p):
            errors.append(
                f"{name_of(p)}: the policy of every pod lets it leave the namespace on "
                f"{sorted(outside(p))}: only this namespace's pods and the DNS (53)"
            )
    bound = api_accounts(objects)
    for where, obj, labels, pod in pods(objects):
        if not any(p for p in policies if not p["spec"].get("podSelector")):
            break
        ports = set().union(
            *(outside(p) for p in policies if selects(p["spec"].get("podSelector") or {}, labels))
        )
        label = labels.get(EGRESS_LABEL)
        allowed = EGRESS_PORTS.get(label or "", set())
        if label and label not in EGRESS_PORTS:
            errors.append(f"{where}: {EGRESS_LABEL}: {label!r} is none of {sorted(EGRESS_PORTS)}")
        if ports - allowed:
            shown = sorted("all" if p == ALL_PORTS else p for p in ports - allowed)
            errors.append(
                f"{where}: may leave the namespace on {shown}; its {EGRESS_LABEL} label "
                f"({label or 'none'}) allows {sorted(allowed)}"
            )
        if uses_api(obj, where, pod, bound) and not ports & EGRESS_PORTS["kubernetes-api"]:
            errors.append(
                f"{where}: calls the Kubernetes API, but no egress policy lets it reach the "
                f"API server (label {EGRESS_LABEL}: kubernetes-api)"
            )
        if downloads_model(obj, where, pod) and 443 not in ports:
            errors.append(
                f"{where}: downloads its model, but no egress policy lets it reach the hub "
                f"(label {EGRESS_LABEL}: model-hub)"
            )
    return errors


def api_accounts(objects: list[Obj]) -> set[str]:
    """Service accounts a (Cluster)RoleBinding grants something."""
    return {
        s["name"]
        for o in objects
        if o.get("kind") in {"RoleBinding", "ClusterRoleBinding"}
        for s in o.get("subjects") or []
        if s.get("kind") == "ServiceAccount"
    }


def uses_api(obj: Obj, where: str, pod: Obj, bound: set[str]) -> bool:
    """The pod calls the Kubernetes API: its account is bound, or it holds the
    autoscaler KubeRay adds to an autoscaled cluster's head."""
    autoscaled = obj.get("kind") == "RayCluster" and obj["spec"].get("enableInTreeAutoscaling")
    return pod.get("serviceAccountName") in bound or bool(autoscaled and "headGroupSpec" in where)


def downloads_model(obj: Obj, where: str, pod: Obj) -> bool:
    """A vLLM server, or a Ray worker with a GPU (it loads the model in-process)."""
    for c in containers(pod):
        if "vllm-openai" in c.get("image", "") or "vllm-cpu" in c.get("image", ""):
            return True
        gpu = "nvidia.com/gpu" in ((c.get("resources") or {}).get("limits") or {})
        if gpu and obj.get("kind") == "RayCluster" and "workerGroupSpecs" in where:
            return True
    return False


def token_errors(objects: list[Obj]) -> list[str]:
    """A service-account token is mounted where the API is called, and only there."""
    accounts = {
        o["metadata"]["name"]: o.get("automountServiceAccountToken", True)
        for o in objects
        if o.get("kind") == "ServiceAccount"
    }
    bound = api_accounts(objects)
    errors = []
    for where, obj, _, pod in pods(objects):
        account = pod.get("serviceAccountName") or "default"
        mounted = pod.get("automountServiceAccountToken", accounts.get(account, True))
        needed = uses_api(obj, where, pod, bound)
        if mounted and not needed:
            errors.append(
                f"{where}.automountServiceAccountToken: false: nothing in the pod calls the "
                "Kubernetes API, and a mounted token is one more credential to steal"
            )
        if needed and not mounted:
            errors.append(f"{where}: calls the Kubernetes API, but its token is not mounted")
    return errors


def root_errors(objects: list[Obj]) -> list[str]:
    """Every container runs on a read-only root filesystem."""
    return [
        f"{where}.containers[{c.get('name')}].securityContext.readOnlyRootFilesystem: true "
        "(what it writes goes to its volumes)"
        for where, _, _, pod in pods(objects)
        for c in containers(pod)
        if not (c.get("securityContext") or {}).get("readOnlyRootFilesystem")
    ]


DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def digest_errors(objects: list[Obj]) -> list[str]:
    """Every image is pinned by digest (``--release``): a tag can be moved under a
    night, and the guard's image holds the right to create RayJobs."""
    return [
        f"{where}.containers[{c.get('name')}].image: {c.get('image')!r} is not pinned by "
        "digest (kustomize edit set image NAME=NAME@sha256:..., the digest from "
        "`crane digest` or `docker buildx imagetools inspect`)"
        for where, _, _, pod in pods(objects)
        for c in containers(pod)
        if not DIGEST.search(c.get("image", ""))
    ]
