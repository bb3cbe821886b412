"""deploy/k8s: every overlay renders and validates; broken manifests are caught."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deploy.check import DEPLOY, check_overlay, main


def test_every_overlay_renders_and_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for overlay in ("gpu", "cpu-dev", "gpu-raycronjob"):
        assert f"{overlay}: " in out and f"{overlay}: 0 objects" not in out
    assert "deploy-check: 0 errors" in out


def test_gpu_overlay_holds_the_stack() -> None:
    from deploy.check import render

    objects = {(o["kind"], o["metadata"].get("name")) for o in render(DEPLOY / "k8s/overlays/gpu")}
    for kind, name in [
        ("Deployment", "vllm"),
        ("StatefulSet", "nats"),
        ("Deployment", "mlflow"),
        ("RayCluster", "council"),
        ("CronJob", "council-nightly"),
        ("Role", "council-nightly"),
    ]:
        assert (kind, name) in objects


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of deploy/k8s to break."""
    return Path(shutil.copytree(DEPLOY / "k8s", tmp_path / "k8s"))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("file", "old", "new", "error"),
    [
        # A misspelt RayCluster field: the CRD schema, made strict, rejects it.
        (
            "raycluster.yaml",
            "    rayStartParams:\n      dashboard-host",
            "    rayStartParam:\n      dashboard-host",
            "RayCluster/council: spec.headGroupSpec: Additional properties are not allowed",
        ),
        # The RayJob the CronJob submits lives in a ConfigMap: validated too.
        (
            "rayjob.yaml",
            "  activeDeadlineSeconds: 21600",
            "  activeDeadlineSeconds: soon",
            "(in ConfigMap file rayjob.yaml): spec.activeDeadlineSeconds: 'soon' is not of type",
        ),
        # A built-in kind with a wrong type.
        ("vllm.yaml", "  replicas: 1", "  replicas: one", "Deployment/vllm: spec.replicas"),
        # Project rule: limits on every container.
        (
            "nats.yaml",
            '            limits:\n              cpu: "1"\n              memory: 1Gi\n',
            "",
            "containers[nats].resources.limits: cpu and memory required",
        ),
        # Project rule: no secret inline.
        (
            "vllm.yaml",
            "            - name: HF_HOME",
            "            - name: HF_TOKEN\n              value: x\n            - name: HF_HOME",
            "env[HF_TOKEN]: inline secret",
        ),
    ],
)
def test_broken_manifest_is_an_error(tree: Path, file: str, old: str, new: str, error: str) -> None:
    edit(tree / "base" / file, old, new)
    _, errors = check_overlay(tree / "overlays" / "gpu")
    assert any(error in e for e in errors), errors


def test_broken_manifest_fails_the_command(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(tree / "base" / "nats.yaml", "runAsNonRoot: true", "runAsNonRoot: false")
    assert main(["--root", str(tree), "cpu-dev"]) == 1
    assert (
        "spec.template.spec.securityContext.runAsNonRoot: must be true" in capsys.readouterr().err
    )


def test_yaml_lint_errors_fail(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(tree / "base" / "namespace.yaml", "kind: Namespace", "kind: Namespace\nkind: Namespace")
    assert main(["--root", str(tree), "gpu"]) == 1
    assert 'namespace.yaml:3:1: duplication of key "kind"' in capsys.readouterr().err
