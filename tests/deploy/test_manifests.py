"""deploy/k8s: every overlay renders and validates; broken manifests are caught."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deploy.check import DEPLOY, check_overlay, main


def test_every_overlay_renders_and_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for overlay in ("gpu", "gpu-inprocess", "cpu-dev", "gpu-raycronjob"):
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
        ("NetworkPolicy", "same-namespace-only"),
        ("PersistentVolumeClaim", "council-runs"),
    ]:
        assert (kind, name) in objects


VLLM = "components/vllm-server/vllm.yaml"


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
            "base/raycluster.yaml",
            "    rayStartParams:\n      dashboard-host",
            "    rayStartParam:\n      dashboard-host",
            "RayCluster/council: spec.headGroupSpec: Additional properties are not allowed",
        ),
        # The RayJob the CronJob submits lives in a ConfigMap: validated too.
        (
            "base/rayjob.yaml",
            "  activeDeadlineSeconds: 21600",
            "  activeDeadlineSeconds: soon",
            "(in ConfigMap file rayjob.yaml): spec.activeDeadlineSeconds: 'soon' is not of type",
        ),
        # A built-in kind with a wrong type.
        (VLLM, "  replicas: 1", "  replicas: one", "Deployment/vllm: spec.replicas"),
        # Project rule: limits on every container.
        (
            "base/nats.yaml",
            '            limits:\n              cpu: "1"\n              memory: 1Gi\n',
            "",
            "containers[nats].resources.limits: cpu and memory required",
        ),
        # Project rule: no secret inline.
        (
            VLLM,
            "            - name: HF_HOME",
            "            - name: HF_TOKEN\n              value: x\n            - name: HF_HOME",
            "env[HF_TOKEN]: inline secret",
        ),
    ],
)
def test_broken_manifest_is_an_error(tree: Path, file: str, old: str, new: str, error: str) -> None:
    edit(tree / file, old, new)
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
    assert 'namespace.yaml:5:1: duplication of key "kind"' in capsys.readouterr().err


BEFORE = Path(__file__).parent / "before" / "k8s"


def test_the_checks_catch_what_broke_on_a_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    """deploy/k8s as it was (tests/deploy/before): it passed the schemas, and failed."""
    assert main(["--root", str(BEFORE), "gpu"]) == 1
    err = capsys.readouterr().err
    for found in [
        # The Ray pods name a ConfigMap that kustomize renamed to council-env-<hash>.
        "RayCluster/council: spec.headGroupSpec.template.spec.containers[ray-head].envFrom: "
        "ConfigMap 'council-env' is not in the overlay",
        # KubeRay's submitter line sends only `cd /app` to Ray; python runs in its pod.
        "entrypoint 'cd /app && python -m pipelines.run __COUNCIL_OVERRIDES__' reaches Ray as "
        "['cd', '/app'] and runs [['python', '-m', 'pipelines.run', '__COUNCIL_OVERRIDES__']] "
        "in the submitter pod",
        "no NetworkPolicy admits only same-namespace traffic",
        # One ValidationFailed RayJob skipped every later night.
        "CronJob: finished RayJobs blocked the night: council-nightly: skipped, still active: c",
        "MLFLOW_SERVER_ALLOWED_HOSTS refuses Host 127.0.0.1:5000",
        "ghcr.io/mlflow/mlflow:v3.17.2 has no database drivers",
        "Namespace/council: label pod-security.kubernetes.io/enforce: restricted",
        "RayCluster/council: spec.authOptions.mode: token",
        "Deployment/vllm: spec.template.spec.containers[vllm]: VLLM_API_KEY from a Secret",
        "StatefulSet/nats: spec.template.spec.containers[nats]: NATS_TOKEN from a Secret",
    ]:
        assert found in err, found


@pytest.mark.parametrize(
    ("file", "old", "new", "error"),
    [
        # Without the nameReference configuration, the RayCluster keeps "council-env".
        (
            "base/kustomization.yaml",
            "configurations:\n  - kustomizeconfig.yaml",
            "",
            "ConfigMap 'council-env' is not in the overlay",
        ),
        # A shell operator in the entrypoint: KubeRay's bash line cuts it.
        (
            "base/rayjob.yaml",
            "entrypoint: python -m pipelines.nightly",
            "entrypoint: cd /app && python -m pipelines.nightly",
            "reaches Ray as ['cd', '/app'] and runs [['python', '-m', 'pipelines.nightly'",
        ),
        ("base/kustomization.yaml", "  - networkpolicy.yaml\n", "", "no NetworkPolicy admits"),
        # The RayJob named as the Job that created it: KubeRay's submitter Job clashes.
        ("base/rayjob.yaml", "name: __RUN_NAME__-ray", "name: __RUN_NAME__", "as its Job"),
        (
            "base/rayjob.yaml",
            "pipelines.nightly --name __RUN_NAME__",
            "pipelines.nightly",
            "a re-created night starts over",
        ),
        # A required Secret made optional: the pod would start without auth.
        (
            "base/nats.yaml",
            "                  key: NATS_TOKEN\n",
            "                  key: NATS_TOKEN\n                  optional: true\n",
            "Secret council-auth is optional",
        ),
        ("base/overrides", "role=dev,qa", "role=dev,nope", "overrides:4: In 'config': Could not"),
        ("base/overrides", "engine=openai", "engine=opena1", "Could not find 'engine/opena1'"),
        # The guard counting a final state as active again.
        (
            "base/submit.sh",
            "Complete | ValidationFailed | Suspended) ;;",
            "Complete) ;;",
            "finished RayJobs blocked the night",
        ),
        (
            "base/submit.sh",
            '[ "$reason" = DeadlineExceeded ]',
            '[ "$reason" = Deadline ]',
            "left RayJob f running past its deadline",
        ),
        # A council-eval image named outside kustomize's reach.
        (
            "base/rayjob.yaml",
            "image: docker.io/rayproject/ray:2.60.0-py311",
            "image: ghcr.io/council-eval/council-eval:0.0.9",
            "council-eval images differ",
        ),
        ("base/mlflow.yaml", "v3.17.2-full", "v3.17.2", "has no database drivers"),
        (
            "base/mlflow.yaml",
            ",localhost,localhost:*,127.0.0.1,127.0.0.1:*",
            "",
            "MLFLOW_SERVER_ALLOWED_HOSTS refuses Host 127.0.0.1:5000",
        ),
        ("base/raycluster.yaml", "    mode: token", "    mode: disabled", "authOptions.mode"),
        (
            "base/namespace.yaml",
            "enforce: restricted",
            "enforce: baseline",
            "label pod-security.kubernetes.io/enforce: restricted",
        ),
        (
            "base/nats.yaml",
            "        seccompProfile:\n          type: RuntimeDefault\n",
            "",
            "containers[nats].securityContext.seccompProfile: RuntimeDefault required",
        ),
        # A stopped night: retried, stopped cleanly on the head, given time to stop.
        ("base/rayjob.yaml", "  backoffLimit: 2\n", "", "a failed or stopped night is never"),
        ("base/raycluster.yaml", "pipelines.stopping,", "pipelines.status,", "no preStop"),
        (
            "base/raycluster.yaml",
            "terminationGracePeriodSeconds: 120",
            "terminationGracePeriodSeconds: 60",
            "the kubelet kills the driver before it has stopped",
        ),
        (
            "base/raycluster.yaml",
            'value: "90"',
            'value: "3"',
            "`ray job stop` SIGKILLs the driver",
        ),
    ],
)
def test_each_rule_catches_its_breakage(
    tree: Path, file: str, old: str, new: str, error: str
) -> None:
    edit(tree / file, old, new)
    _, errors = check_overlay(tree / "overlays" / "gpu")
    assert any(error in e for e in errors), errors


def test_overlays_must_match_their_engine(tree: Path) -> None:
    # engine=vllm in-process, yet a vLLM server overlay: the server idles, and the
    # Ray workers load the model without a GPU request.
    edit(tree / "base" / "overrides", "engine=openai", "engine=vllm")
    _, errors = check_overlay(tree / "overlays" / "gpu")
    assert any("a vLLM server runs but no nightly run uses it" in e for e in errors), errors
    # GPUs on the Ray workers while every run asks the server: idle GPUs.
    inprocess = tree / "overlays" / "gpu-inprocess"
    edit(inprocess / "overrides", "engine=vllm model", "engine=openai model")
    _, errors = check_overlay(inprocess)
    assert any("Ray workers request GPUs" in e and "idle" in e for e in errors), errors
    assert any("engine=openai but the overlay has no vLLM server" in e for e in errors), errors


def test_one_documented_command_moves_every_council_eval_image(tree: Path) -> None:
    readme = (DEPLOY / "README.md").read_text()
    command = "kustomize edit set image ghcr.io/council-eval/council-eval=<registry>/council-eval"
    assert command in readme
    # What that command writes into the overlay's kustomization.yaml.
    with (tree / "overlays" / "gpu" / "kustomization.yaml").open("a") as f:
        f.write(
            "images:\n  - name: ghcr.io/council-eval/council-eval\n"
            "    newName: registry.example.com/team/council-eval\n    newTag: 9.9.9\n"
        )
    from deploy.check import render
    from deploy.rules import containers, pod_specs

    images = {
        c["image"]
        for obj in render(tree / "overlays" / "gpu")
        for _, pod in pod_specs(obj)
        for c in containers(pod)
        if "council-eval" in c["image"]
    }
    assert images == {"registry.example.com/team/council-eval:9.9.9"}


def test_the_gpu_extra_is_pinned_to_the_server_image(tmp_path: Path) -> None:
    from deploy.check import pin_errors

    assert pin_errors(DEPLOY / "k8s") == []
    loose = tmp_path / "pyproject.toml"
    loose.write_text('[project]\nname = "x"\n[project.optional-dependencies]\ngpu = ["vllm"]\n')
    (error,) = pin_errors(DEPLOY / "k8s", loose)
    assert "the gpu extra pins ['vllm']; the server image wants ['vllm==0.32.0']" in error


def test_the_guard_creates_the_night_named_after_its_job() -> None:
    """submit.sh against a stub kubectl: what it creates, skips and stops."""
    from deploy.check import render
    from deploy.harness import run_guard, submitted
    from deploy.rules import guard

    command, files = guard(render(DEPLOY / "k8s" / "overlays" / "gpu"))
    run = run_guard(command, files, "old  Complete  <none>  SUCCEEDED\n", "council-nightly-29")
    assert run.exit_code == 0 and run.deleted == []
    (job,) = run.created
    assert job["kind"] == "RayJob" and job["metadata"]["name"] == "council-nightly-29-ray"
    assert submitted(job["spec"]).to_ray == [
        "python",
        "-m",
        "pipelines.nightly",
        "--name",
        "council-nightly-29",
    ]
    # This Job retried after creating it: nothing more.
    run = run_guard(command, files, "council-nightly-29-ray  Running  <none>  RUNNING\n", "x-1")
    assert run.created == [] and "skipped, still active: council-nightly-29-ray" in run.output
    # A name that is not a DNS label never reaches sed or kubectl.
    run = run_guard(command, files, "", "a/b; rm -rf ~")
    assert run.exit_code == 2 and run.created == []
