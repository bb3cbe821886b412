"""Offline validation of the Kubernetes manifests (``make deploy-check``).

``python -m deploy.check [--root deploy/k8s] [overlay ...]``

For each overlay: lint its YAML (yamllint), render it with ``kubectl
kustomize``, then validate every object strictly (unknown fields are errors):
built-in kinds against the Kubernetes OpenAPI schemas of ``kubernetes-validate``,
KubeRay kinds against the vendored CRDs' ``openAPIV3Schema`` (``deploy/crds``).
Manifests embedded in ConfigMaps (the nightly RayJob) are validated too, and
every pod template of a KubeRay object as the core Pod it becomes. Then what
KubeRay's operator checks in its controllers (``deploy/kuberay.py``, ported
from v1.7.0: a RayJob it refuses is ValidationFailed, never an apply error).
Then the project's rules: every container has resource requests and limits,
every pod meets Pod Security "restricted", images are fully qualified, secrets
come from Secrets, probes wait long enough; and, over each whole overlay
(``deploy/rules.py``), every reference resolves, one council-eval image, the
network and auth baseline, overrides that compose and match the overlay's
engine, entrypoints that reach Ray whole, nights that stop at their deadline
and hand over their lock, Ray pods that follow config changes and fit their
limits, and the CronJob's guard, run against a stub ``kubectl``
(``deploy/harness.py``) in every state a RayJob can reach.
Exit status 1 on any error, with the overlay, object and field.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from deploy import access, rules
from deploy.kuberay import DEFAULT_GATES, operator_errors
from deploy.podspec import pod_spec_errors
from deploy.rules import pod_specs

DEPLOY = Path(__file__).resolve().parent
K8S_VERSION = "1.33.0"
"""Kubernetes API version the manifests target (CronJob timeZone needs >= 1.27)."""
SECRET_HINTS = ("TOKEN", "PASSWORD", "SECRET", "API_KEY", "CREDENTIAL")
YAMLLINT_CONFIG = "{extends: default, rules: {line-length: {max: 120}, document-start: disable}}"


def render(overlay: Path) -> list[dict[str, Any]]:
    """The overlay's objects, as ``kubectl kustomize`` renders them."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise ValueError(f"kubectl kustomize {overlay}: {out.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def lint(paths: list[Path]) -> list[str]:
    """yamllint problems (errors only) in ``paths``."""
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    conf = YamlLintConfig(YAMLLINT_CONFIG)
    errors = []
    for path in paths:
        for p in linter.run(path.read_text(), conf, str(path)):
            if p.level == "error":
                errors.append(f"{path}:{p.line}:{p.column}: {p.desc} ({p.rule})")
    return errors


def strict(schema: Any) -> Any:
    """The CRD schema with unknown fields forbidden (what ``kubectl --validate=strict`` does)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schemas() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) → a strict JSON-schema validator, from ``deploy/crds``."""
    import jsonschema

    validators = {}
    for path in sorted((DEPLOY / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """Errors of ``obj`` against its kind's schema."""
    import kubernetes_validate

    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key in crd_schemas():
        return [
            f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in crd_schemas()[key].iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {key[0]} {key[1]} (Kubernetes {K8S_VERSION} or vendored CRDs)"]
    return []


GATES = DEFAULT_GATES | {"RayCronJob"}
"""The operator's feature gates: v1.7.0's defaults, and RayCronJob (deploy/README.md)."""
KUBERAY_KINDS = {"RayCluster", "RayJob", "RayCronJob"}


def pod_errors(obj: dict[str, Any]) -> list[str]:
    """Each pod template, checked as the Pod it becomes: what the API server checks of
    a Pod (``deploy/podspec.py``), and for KubeRay's kinds, whose templates only the
    CRDs' schemas saw, the core Pod schema too."""
    import kubernetes_validate

    errors = []
    templates = (obj.get("spec") or {}).get("volumeClaimTemplates") or []
    claims = tuple(t["metadata"]["name"] for t in templates)
    for path, spec in pod_specs(obj):
        errors += pod_spec_errors(spec, path, claims)
        if obj.get("kind") not in KUBERAY_KINDS:
            continue
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod"}, "spec": spec}
        try:
            kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(map(str, list(e.path)[1:]))
            errors.append(f"{path}{'.' if where else ''}{where}: {e.message} (as a Pod)")
    return errors


def policy_errors(obj: dict[str, Any]) -> list[str]:
    """The project's rules for every pod: limits, non-root, qualified images, no inline secrets."""
    errors = []
    for path, pod in pod_specs(obj):
        if not (pod.get("securityContext") or {}).get("runAsNonRoot"):
            errors.append(f"{path}.securityContext.runAsNonRoot: must be true")
        for i, c in enumerate([*pod.get("initContainers", []), *pod.get("containers", [])]):
            where = f"{path}.containers[{c.get('name', i)}]"
            resources = c.get("resources") or {}
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources.get(part) or {}):
                    errors.append(f"{where}.resources.{part}: cpu and memory required")
            if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False:
                errors.append(f"{where}.securityContext.allowPrivilegeEscalation: must be false")
            image = c.get("image", "")
            if "." not in image.split("/")[0] or ":" not in image.rsplit("/", 1)[-1]:
                errors.append(f"{where}.image: {image!r} is not a fully qualified, tagged image")
            for env in c.get("env") or []:
                if any(h in env["name"].upper() for h in SECRET_HINTS) and "value" in env:
                    errors.append(f"{where}.env[{env['name']}]: inline secret; use valueFrom")
    return errors


def embedded(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Kubernetes objects held as files in a ConfigMap's data, with the night's name
    filled in as the CronJob's guard does."""
    if obj.get("kind") != "ConfigMap":
        return
    for key, text in (obj.get("data") or {}).items():
        if key.endswith((".yaml", ".yml")):
            for doc in yaml.safe_load_all(text.replace("__RUN_NAME__", rules.SAMPLE_NIGHT)):
                if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
                    yield key, doc


def check_overlay(overlay: Path, release: bool = False) -> tuple[int, list[str]]:
    """(objects validated, errors) for one overlay; ``release``: its images must be
    pinned by digest too."""
    objects = [(None, o) for o in render(overlay)]
    objects += [(key, doc) for _, o in list(objects) for key, doc in embedded(o)]
    errors, refused = [], False
    for holder, obj in objects:
        name = rules.name_of(obj)
        if holder:
            name += f" (in ConfigMap file {holder})"
        # The API server refuses what its schema refuses: the operator never sees it.
        found = schema_errors(obj)
        refused = refused or bool(found)
        found = found or pod_errors(obj) + operator_errors(obj, GATES)
        found += policy_errors(obj) + rules.restricted_errors(obj) + rules.probe_errors(obj)
        errors += [f"{overlay.name}: {name}: {e}" for e in found]
    if refused:
        return len(objects), [*errors, f"{overlay.name}: the API server refuses the overlay"]
    every = [obj for _, obj in objects]
    for rule in (*OVERLAY_RULES, access.digest_errors) if release else OVERLAY_RULES:
        errors += [f"{overlay.name}: {e}" for e in rule(every)]
    return len(objects), errors


OVERLAY_RULES = (
    rules.reference_errors,
    rules.image_errors,
    rules.security_errors,
    rules.server_errors,
    rules.overrides_errors,
    rules.entrypoint_errors,
    rules.night_errors,
    rules.guard_errors,
    rules.cluster_errors,
    rules.stop_errors,
    access.egress_errors,
    access.token_errors,
    access.root_errors,
)
"""The project's rules over a whole overlay (deploy/rules.py)."""


def pin_errors(root: Path, pyproject: Path = DEPLOY.parent / "pyproject.toml") -> list[str]:
    """The gpu extra's vLLM is the version of the vLLM server image."""
    import tomllib

    project = tomllib.loads(pyproject.read_text())["project"]
    gpu = project["optional-dependencies"].get("gpu", [])
    pins = [d for d in gpu if d.replace(" ", "").startswith("vllm")]
    tags = set()
    for path in root.rglob("*.yaml"):
        for line in path.read_text().splitlines():
            if "image:" in line and "vllm/vllm-openai:" in line:
                tags.add(line.split("vllm/vllm-openai:")[1].strip().lstrip("v"))
    wanted = [f"vllm=={tag}" for tag in sorted(tags)]
    if not pins or [p.replace(" ", "") for p in pins] != wanted:
        pinned = pins or "no vllm"
        return [f"pyproject.toml: the gpu extra pins {pinned}; the server image wants {wanted}"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--root", type=Path, default=DEPLOY / "k8s", help="kustomize tree")
    parser.add_argument("overlays", nargs="*", help="overlay names (default: all)")
    parser.add_argument(
        "--release",
        action="store_true",
        help="what a cluster gets: every image pinned by digest as well",
    )
    args = parser.parse_args(argv)

    errors = lint(sorted(args.root.rglob("*.yaml"))) + pin_errors(args.root)
    names = args.overlays or sorted(p.name for p in (args.root / "overlays").iterdir())
    for name in names:
        try:
            count, problems = check_overlay(args.root / "overlays" / name, args.release)
        except ValueError as e:
            count, problems = 0, [f"{name}: {e}"]
        print(f"{name}: {count} objects, {len(problems)} errors")
        errors += problems
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    print(f"deploy-check: {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
