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
        "CronJob: finished RayJobs blocked the night",
        "council-nightly: skipped, still active: c",
        "MLFLOW_SERVER_ALLOWED_HOSTS refuses Host 127.0.0.1:5000",
        "ghcr.io/mlflow/mlflow:v3.17.2 has no database drivers",
        "Namespace/council: label pod-security.kubernetes.io/enforce: restricted",
        "RayCluster/council: spec.authOptions.mode: token",
        "Deployment/vllm: spec.template.spec.containers[vllm]: VLLM_API_KEY from a Secret",
        "StatefulSet/nats: spec.template.spec.containers[nats]: no nats.conf with users",
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
        # Back to K8sJobMode: a dropped `ray job logs --follow` fails a running night.
        (
            "base/rayjob.yaml",
            "submissionMode: HTTPMode",
            "submissionMode: K8sJobMode",
            "marks a running night Failed 30 s after its submitter's `ray job logs --follow`",
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
            "                  key: NATS_PASSWORD\n",
            "                  key: NATS_PASSWORD\n                  optional: true\n",
            "Secret council-auth is optional",
        ),
        ("base/overrides", "role=dev,qa", "role=dev,nope", "overrides:4: In 'config': Could not"),
        ("base/overrides", "engine=openai", "engine=opena1", "Could not find 'engine/opena1'"),
        # The guard counting a final state as active again.
        (
            "base/submit.sh",
            "Complete | ValidationFailed | Suspended) finished=",
            "Complete) finished=",
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
            "base/nightly.yaml",
            "              image: council-eval\n",
            "              image: ghcr.io/council-eval/council-eval:0.0.9\n",
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
        # What KubeRay v1.7's operator refuses (deploy/kuberay.py): the night never runs.
        (
            "base/rayjob.yaml",
            "  activeDeadlineSeconds: 21600\n",
            "  activeDeadlineSeconds: 21600\n  backoffLimit: 2\n",
            "KubeRay v1.7.0 refuses it: The RayJob spec is invalid: BackoffLimit is "
            "incompatible with ClusterSelector mode",
        ),
        (
            "base/rayjob.yaml",
            "name: __RUN_NAME__-ray",
            "name: __RUN_NAME__-nightly-benchmark-ray",
            "RayJob name should be no more than 47 characters",
        ),
        (
            "base/rayjob.yaml",
            "ray.io/cluster: council",
            'ray.io/cluster: ""',
            "cluster name in ClusterSelector should not be empty",
        ),
        (
            "base/raycluster.yaml",
            'rayVersion: "2.60.0"',
            'rayVersion: "2.50.0"',
            "authOptions.mode is 'token' but minimum Ray version is 2.52.0, got 2.50.0",
        ),
        (
            "base/raycluster.yaml",
            "      minReplicas: 0\n",
            "      minReplicas: 5\n",
            "worker group workers has minReplicas 5 greater than maxReplicas 4",
        ),
        (
            "base/raycluster.yaml",
            '      num-cpus: "0"\n',
            '      num-cpus: "0"\n      labels: "tier=head"\n',
            "rayStartParams['labels'] is not supported for Head group",
        ),
        # What the API server checks of the Pod KubeRay makes from a template.
        (
            "base/raycluster.yaml",
            "                mountPath: /runs\n",
            "                mountPath: /dev/shm\n",
            "volumeMounts: mountPath /dev/shm twice",
        ),
        # A night that stops itself and hands its lock over.
        ("base/rayjob.yaml", "--deadline 20400 ", "", "the entrypoint has no --deadline"),
        ("base/rayjob.yaml", "--lock-wait 300", "--lock-wait 60", "--lock-wait 60 <= the head's"),
        (
            "base/rayjob.yaml",
            "  preRunningDeadlineSeconds: 900\n",
            "",
            "no preRunningDeadlineSeconds",
        ),
        (
            "base/rayjob.yaml",
            "  activeDeadlineSeconds: 21600",
            "  activeDeadlineSeconds: 21000",
            "KubeRay fails the night before it has stopped",
        ),
        # The guard: every state of its RayJob, names, pruning, RBAC, the Job around it.
        ("base/submit.sh", "      exit 65\n", "      exit 0\n", "ValidationFailed was reported"),
        ("base/submit.sh", "      exit 1\n", "      exit 0\n", "is Failed was reported"),
        (
            "base/submit.sh",
            '    *) active="$active $rayjob" ;;',
            "    *) ;;",
            "another night's RayJob was Running: not skipped",
        ),
        ("base/submit.sh", "${#name} -le 43", "${#name} -le 60", "accepted night 'nnnn"),
        (
            "base/submit.sh",
            '  delete "$job"\n    sed',
            "  sed",
            "a retry of a failed night did not re-create its RayJob",
        ),
        ("base/nightly.yaml", "verbs: [get, list, watch,", "verbs: [get, list,", "['watch']"),
        ("base/nightly.yaml", "values: [2, 65, 75]", "values: [2]", "exit 65 (a refused RayJob)"),
        (
            "base/nightly.yaml",
            "activeDeadlineSeconds: 46800",
            "activeDeadlineSeconds: 900",
            "Kubernetes stops the guard while the night it follows runs",
        ),
        ("base/nightly.yaml", "KEEP_NIGHTS # finished", "KEEP_NIGHTZ # finished", "KEEP_NIGHTS"),
        # Ray pods: follow config changes, get what they are limited to, a sized shm.
        (
            "base/raycluster.yaml",
            "  upgradeStrategy:\n    type: Recreate\n",
            "",
            "spec.upgradeStrategy.type: Recreate",
        ),
        (
            "base/raycluster.yaml",
            '              limits:\n                cpu: "2"',
            '              limits:\n                cpu: "4"',
            "head: cpu request 2 != limit 4",
        ),
        ("base/raycluster.yaml", "sizeLimit: 3Gi", "sizeLimit: 1Gi", "< object-store-memory"),
        ("base/raycluster.yaml", "sizeLimit: 5Gi", "sizeLimit: 12Gi", "> half the memory limit"),
        # The servers: vLLM's uid, probe timeouts.
        (
            VLLM,
            "            - name: USER\n              value: vllm\n"
            "            - name: LOGNAME\n              value: vllm\n",
            "",
            "USER (or LOGNAME) and HOME",
        ),
        (VLLM, "            - name: LOGNAME\n              value: vllm\n", "", None),
        (
            VLLM,
            "            timeoutSeconds: 10\n",
            "",
            "containers[vllm].livenessProbe.timeoutSeconds: 1 s",
        ),
        # Least privilege: egress, service-account tokens, read-only images.
        (
            "base/networkpolicy.yaml",
            "  name: egress-same-namespace-and-dns\nspec:\n  podSelector: {}\n",
            "  name: egress-same-namespace-and-dns\nspec:\n  podSelector:\n"
            "    matchLabels:\n      app.kubernetes.io/name: nats\n",
            "no NetworkPolicy limits every pod's egress",
        ),
        (
            "base/networkpolicy.yaml",
            "  egress:\n    - to:\n        - podSelector: {}\n",
            "  egress:\n    - to:\n        - podSelector: {}\n        - ipBlock:\n"
            "            cidr: 0.0.0.0/0\n",
            "egress-same-namespace-and-dns: the policy of every pod lets it leave",
        ),
        (
            "base/networkpolicy.yaml",
            "        - port: 3306\n",
            "        - port: 22\n",
            "Deployment/mlflow: spec.template.spec: may leave the namespace on [22]",
        ),
        (
            "base/nightly.yaml",
            "council.io/egress: kubernetes-api",
            "app.kubernetes.io/component: guard",
            "calls the Kubernetes API, but no egress policy lets it reach the API server",
        ),
        (VLLM, "council.io/egress: model-hub", "council.io/egress: internet", "'internet'"),
        (
            VLLM,
            "        council.io/egress: model-hub # networkpolicy.yaml: it downloads the model\n",
            "",
            "Deployment/vllm: spec.template.spec: downloads its model, but no egress policy",
        ),
        (
            "base/nats.yaml",
            "      automountServiceAccountToken: false # it never calls the Kubernetes API\n",
            "",
            "StatefulSet/nats: spec.template.spec.automountServiceAccountToken: false",
        ),
        (
            "base/nightly.yaml",
            "automountServiceAccountToken: true",
            "automountServiceAccountToken: false",
            "CronJob/council-nightly: spec.jobTemplate.spec.template.spec: calls the Kubernetes "
            "API, but its token is not mounted",
        ),
        (
            "base/mlflow.yaml",
            "            readOnlyRootFilesystem: true # what it writes: the volumes, /tmp\n",
            "",
            "containers[mlflow].securityContext.readOnlyRootFilesystem: true",
        ),
        # A stopped night: stopped cleanly on the head, given time to stop.
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
    tree: Path, file: str, old: str, new: str, error: str | None
) -> None:
    edit(tree / file, old, new)
    _, errors = check_overlay(tree / "overlays" / "gpu")
    if error is None:  # a change the rules accept (one of two equivalent settings gone)
        assert errors == []
    else:
        assert any(error in e for e in errors), errors


def test_an_autoscaled_head_keeps_its_token_and_its_way_to_the_api(tree: Path) -> None:
    edit(
        tree / "components" / "gpu-workers" / "kustomization.yaml",
        "      - op: replace\n        path: /spec/headGroupSpec/template/spec/"
        "automountServiceAccountToken\n        value: true\n",
        "",
    )
    _, errors = check_overlay(tree / "overlays" / "gpu-inprocess")
    assert [e for e in errors if "headGroupSpec" in e] == [
        "gpu-inprocess: RayCluster/council: spec.headGroupSpec.template.spec: calls the "
        "Kubernetes API, but its token is not mounted"
    ]


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
    """submit.sh against a stand-in kubectl: what it creates and hands to Ray."""
    from deploy.check import render
    from deploy.rules import FOLLOWED, guard

    guard_ = guard(render(DEPLOY / "k8s" / "overlays" / "gpu"))
    assert guard_ is not None
    run = guard_.run(
        "old  Complete  <none>  SUCCEEDED\n", "council-nightly-29", FOLLOWED + "Complete"
    )
    assert run.exit_code == 0 and run.deleted == []
    (job,) = run.created
    assert job["kind"] == "RayJob" and job["metadata"]["name"] == "council-nightly-29-ray"
    # HTTPMode: the operator posts the entrypoint whole to the job API.
    assert job["spec"]["submissionMode"] == "HTTPMode"
    assert job["spec"]["entrypoint"].split() == [
        "python",
        "-m",
        "pipelines.nightly",
        "--name",
        "council-nightly-29",
        "--deadline",
        "20400",
        "--lock-wait",
        "300",
    ]
    # This Job retried while its RayJob runs: it follows it, creates nothing.
    run = guard_.run(
        "council-nightly-29-ray  Running  <none>  RUNNING\n", "council-nightly-29", "Complete"
    )
    assert run.exit_code == 0 and run.created == [], run.output
    assert "Running already (this Job was retried): following it" in run.output
    # A name that is not a DNS-1035 label never reaches sed or kubectl.
    run = guard_.run("", "a/b; rm -rf ~")
    assert run.exit_code == 2 and run.created == [] and run.kubectl == []


def test_the_autoscaled_gpu_workers_need_a_gpu_count(tree: Path) -> None:
    """gpu-inprocess frees its GPUs between nights: the workers scale from zero."""
    from deploy.check import render

    (cluster,) = [
        o for o in render(tree / "overlays" / "gpu-inprocess") if o["kind"] == "RayCluster"
    ]
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    (workers,) = cluster["spec"]["workerGroupSpecs"]
    assert (workers["replicas"], workers["minReplicas"]) == (0, 0)
    overrides = tree / "overlays" / "gpu-inprocess" / "overrides"
    edit(overrides, "concurrency=1 engine.num_gpus=1", "concurrency=1")
    _, errors = check_overlay(tree / "overlays" / "gpu-inprocess")
    assert any("the GPU workers scale from zero" in e for e in errors), errors
    edit(overrides, "concurrency=1", "concurrency=1 engine.num_gpus=1")
    component = tree / "components" / "gpu-workers" / "kustomization.yaml"
    edit(component, "            allowPrivilegeEscalation: false\n", "")
    _, errors = check_overlay(tree / "overlays" / "gpu-inprocess")
    assert errors == [
        "gpu-inprocess: RayCluster/council: autoscalerOptions.securityContext: the autoscaler "
        "container KubeRay adds to the head must drop ALL capabilities and forbid privilege "
        "escalation (Pod Security restricted)"
    ]


REFUSED = Path(__file__).parent / "refused" / "k8s"


def test_the_checks_name_what_kuberay_refused_in_the_manifests_of_2026_12_07(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """tests/deploy/refused: schema-valid, yet the operator refused every night."""
    assert main(["--root", str(REFUSED)]) == 1
    err = capsys.readouterr().err
    for found in [
        # 1. The blocker: ValidationFailed RayJobs, a RayCronJob that creates none.
        "gpu: RayJob/council-nightly-29412120-ray (in ConfigMap file rayjob.yaml): KubeRay "
        "v1.7.0 refuses it: The RayJob spec is invalid: BackoffLimit is incompatible with "
        "ClusterSelector mode",
        "gpu-raycronjob: RayCronJob/council-nightly: KubeRay v1.7.0 refuses it: invalid RayJob "
        "template: The RayJob spec is invalid: BackoffLimit is incompatible with ClusterSelector",
        # 2. Failure reported as success: the guard exited 0 right after `kubectl create`.
        "a night whose RayJob is ValidationFailed was reported as a success: exit 0",
        "a night whose RayJob is Failed was reported as a success: exit 0",
        "a RayJob that never left Initializing: exit 0",
        # 3. The hand-over: no watch verb; the driver gave up on the lock at once.
        "its Role does not grant ['watch'] on rayjobs",
        "--lock-wait 0 <= the head's RAY_JOB_STOP_WAIT_TIME_S 90",
        # 4. K8sJobMode's log stream; 5. a deadline that leaves the driver running.
        "submissionMode K8sJobMode: KubeRay v1.7 marks a running night Failed 30 s",
        "the entrypoint has no --deadline",
        "no preRunningDeadlineSeconds",
        # 6. Config and image changes never reached the Ray pods.
        "RayCluster/council: spec.upgradeStrategy.type: Recreate",
        # 7. vLLM's uid without a passwd entry.
        "Deployment/vllm: spec.template.spec.containers[vllm]: USER (or LOGNAME) and HOME",
        # 9. Probes, requests, shm, pruning, names.
        "Deployment/vllm: spec.template.spec.containers[vllm].livenessProbe.timeoutSeconds: 1 s",
        "RayCluster/council: head: cpu request 2 != limit 4",
        "cpu-dev: RayCluster/council: head: /dev/shm sizeLimit 2Gi > half the memory limit",
        "CronJob: no KEEP_NIGHTS",
        "CronJob: accepted night '9-night', which KubeRay refuses as a RayJob",
        "CronJob: accepted night 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn'",
    ]:
        assert found in err, found


def test_a_release_pins_every_image_by_digest(tree: Path) -> None:
    """``deploy.check --release``: a tag may move under a night (and the guard's image
    holds the right to create RayJobs); a digest cannot."""
    _, errors = check_overlay(tree / "overlays" / "gpu", release=True)
    unpinned = sorted(e.split("'")[1] for e in errors if "is not pinned by digest" in e)
    assert unpinned == [
        "docker.io/library/nats:2.15.1-alpine",
        "docker.io/vllm/vllm-openai:v0.32.0",
        "ghcr.io/council-eval/council-eval:0.1.0",
        "ghcr.io/council-eval/council-eval:0.1.0",
        "ghcr.io/council-eval/council-eval:0.1.0",
        "ghcr.io/mlflow/mlflow:v3.17.2-full",
    ]
    digest = "@sha256:" + "0" * 64  # what `kustomize edit set image` writes
    edit(tree / "base" / "kustomization.yaml", "    newTag: 0.1.0\n", f"    digest: {digest[1:]}\n")
    edit(tree / "base" / "nats.yaml", ":2.15.1-alpine", digest)
    edit(tree / "base" / "mlflow.yaml", ":v3.17.2-full", f":v3.17.2-full{digest}")  # tag@digest
    edit(tree / VLLM, ":v0.32.0", digest)
    _, errors = check_overlay(tree / "overlays" / "gpu", release=True)
    assert not [e for e in errors if "pinned by digest" in e], errors
