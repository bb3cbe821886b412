"""What the API server checks of a Pod beyond its OpenAPI schema.

A pod template inside a RayCluster, RayJob or RayCronJob is only schema-checked
when it is applied; the Pod that KubeRay later creates from it goes through
Kubernetes' own validation (``pkg/apis/core/validation``, ``ValidatePodSpec``),
and a template that fails it leaves the cluster without a head, or a night
without workers, with nothing but an event to say why. These are the rules of
that validation a hand-written template can break: names, volume mounts that
name a volume, ports, probes that name a port, restart policies, environment
variable names, requests within limits, and extended resources (GPUs) whose
request equals their limit.
"""

from __future__ import annotations

import re
from typing import Any

Obj = dict[str, Any]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
RESTART_POLICIES = {"Always", "OnFailure", "Never"}
NATIVE = {"cpu", "memory", "ephemeral-storage"}


def quantity(text: str | int | float) -> float:
    """A Kubernetes quantity (``2Gi``, ``500m``, ``4``) as a number."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    found = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G)?", str(text).strip())
    if not found:
        raise ValueError(f"not a quantity: {text!r}")
    number, unit = float(found[1]), found[2]
    return number / 1000 if unit == "m" else number * units.get(unit or "", 1)


def label_errors(what: str, name: object) -> list[str]:
    if not isinstance(name, str) or len(name) > 63 or not DNS1123_LABEL.match(name):
        return [f"{what} {name!r}: not a DNS-1123 label (a-z, 0-9, '-'; at most 63)"]
    return []


def container_errors(c: Obj, where: str, volumes: set[str]) -> list[str]:
    errors = label_errors(f"{where}.name", c.get("name"))
    mounts: set[str] = set()
    for m in c.get("volumeMounts") or []:
        if m.get("name") not in volumes:
            errors.append(f"{where}.volumeMounts[{m.get('name')}]: no volume of that name")
        if m.get("mountPath") in mounts:
            errors.append(f"{where}.volumeMounts: mountPath {m.get('mountPath')} twice")
        mounts.add(m.get("mountPath"))
    ports: set[str] = set()
    for p in c.get("ports") or []:
        number = p.get("containerPort")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            errors.append(f"{where}.ports: containerPort {number!r} not in 1-65535")
        if "name" in p:
            name = str(p["name"])
            if len(name) > 15 or not PORT_NAME.match(name):
                errors.append(f"{where}.ports: name {name!r}: an IANA service name (<= 15)")
            if name in ports:
                errors.append(f"{where}.ports: name {name!r} twice")
            ports.add(name)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        for handler in ("httpGet", "tcpSocket", "grpc"):
            port = ((c.get(probe) or {}).get(handler) or {}).get("port")
            if isinstance(port, str) and port not in ports:
                errors.append(f"{where}.{probe}.{handler}.port: no container port named {port!r}")
    for env in c.get("env") or []:
        if not ENV_NAME.match(str(env.get("name", ""))):
            errors.append(f"{where}.env: {env.get('name')!r} is not a valid variable name")
    resources = c.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for key, limit in limits.items():
        if key in requests and quantity(requests[key]) > quantity(limit):
            errors.append(f"{where}.resources: {key} request {requests[key]} > limit {limit}")
        if key not in NATIVE and key in requests and quantity(requests[key]) != quantity(limit):
            errors.append(f"{where}.resources: {key} request must equal its limit {limit}")
    for key in requests:
        if key not in NATIVE and key not in limits:
            errors.append(f"{where}.resources: {key} requested without a limit")
    return errors


def pod_spec_errors(spec: Obj, path: str, claims: tuple[str, ...] = ()) -> list[str]:
    """Errors the API server would give a Pod made from ``spec`` (at ``path``);
    ``claims``: the volumes a StatefulSet's claim templates add."""
    errors = []
    volumes: set[str] = set(claims)
    for v in spec.get("volumes") or []:
        errors += label_errors(f"{path}.volumes.name", v.get("name"))
        if v.get("name") in volumes:
            errors.append(f"{path}.volumes: {v.get('name')!r} twice")
        volumes.add(v.get("name"))
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in RESTART_POLICIES:
        errors.append(f"{path}.restartPolicy: {policy!r} not one of {sorted(RESTART_POLICIES)}")
    names: set[str] = set()
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if c.get("name") in names:
                errors.append(f"{path}.{key}: container name {c.get('name')!r} twice")
            names.add(c.get("name"))
            errors += container_errors(c, f"{path}.{key}[{c.get('name')}]", volumes)
    if not spec.get("containers"):
        errors.append(f"{path}.containers: a Pod needs at least one container")
    return errors
