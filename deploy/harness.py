"""Run the nightly path's shell offline, with stub ``kubectl``, ``ray`` and ``python``.

Two things a cluster runs that a schema cannot check:

- :func:`submitted`: KubeRay v1.7's submitter (K8sJobMode) joins
  ``BuildJobSubmitCommand`` (ray-operator/controllers/ray/common/job.go) with
  spaces and runs it with ``bash -ce``; the entrypoint is pasted unquoted. This
  rebuilds that line, runs it with stubs, and returns what reached
  ``ray job submit`` after ``--`` and what ran in the submitter pod instead.
- :func:`run_guard`: the CronJob's ``submit.sh`` against a stub ``kubectl``
  that lists given RayJobs and records what the script asked of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ADDRESS = "http://council-head-svc.council.svc.cluster.local:8265"
HEALTH = (
    "python -c \"import urllib.request; r=urllib.request.urlopen('%s', timeout=%d); "
    "exit(0 if b'success' in r.read() else 1)\""
)
"""utils.BasePythonHealthCommand of KubeRay v1.7.0."""

STUB = """#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
stdin = sys.stdin.read() if name == "kubectl" and "-f" in sys.argv else None
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({{"cmd": [name, *sys.argv[1:]], "stdin": stdin}}) + "\\n")
{body}
"""
STUB_BODIES = {
    # `ray job status` of a job never submitted fails; everything else succeeds.
    "ray": "sys.exit(1 if sys.argv[1:3] == ['job', 'status'] else 0)",
    "python": "sys.exit(0)",
    # `get rayjobs` prints the fixture rows; `get rayjob NAME` finds only listed names.
    "kubectl": """
rows = os.environ.get("STUB_ROWS", "")
if sys.argv[1:3] == ["get", "rayjobs"]:
    print(rows, end="")
elif sys.argv[1:3] == ["get", "rayjob"]:
    names = [r.split()[0] for r in rows.splitlines() if r.strip()]
    sys.exit(0 if sys.argv[3] in names else 1)
""",
}


def stubs(folder: Path) -> dict[str, str]:
    """An environment whose PATH starts with stubs in ``folder``, logging to ``folder/log``."""
    for name, body in STUB_BODIES.items():
        path = folder / name
        path.write_text(STUB.format(python=sys.executable, body=body))
        path.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}", "STUB_LOG": str(folder / "log")}


def calls(folder: Path) -> list[dict[str, Any]]:
    log = folder / "log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def submit_command(job: dict[str, Any], job_id: str, address: str = ADDRESS) -> str:
    """The submitter's bash line for a RayJob spec in K8sJobMode (KubeRay v1.7.0)."""
    entrypoint = job["entrypoint"].strip()
    health = HEALTH % (f"{address}/api/gcs_healthz", 10)
    waiting = json.dumps(f"Waiting for Ray Dashboard GCS to become healthy at {address} ...")
    cmd = ["until", health, ">/dev/null", "2>&1", ";"]
    cmd += ["do", "echo", waiting, ";", "sleep", "2", ";", "done", ";"]
    cmd += ["if", "!", "ray", "job", "status", "--address", address, job_id]
    cmd += [">/dev/null", "2>&1", ";", "then"]
    cmd += ["ray", "job", "submit", "--address", address, "--no-wait"]
    if job.get("runtimeEnvYAML"):
        runtime_env = json.dumps(yaml.safe_load(job["runtimeEnvYAML"]), separators=(",", ":"))
        cmd += ["--runtime-env-json", json.dumps(runtime_env)]
    if job.get("metadata"):
        cmd += ["--metadata-json", json.dumps(json.dumps(job["metadata"], separators=(",", ":")))]
    cmd += ["--submission-id", job_id]
    if job.get("entrypointNumCpus"):
        cmd += ["--entrypoint-num-cpus", f"{float(job['entrypointNumCpus']):f}"]
    if job.get("entrypointNumGpus"):
        cmd += ["--entrypoint-num-gpus", f"{float(job['entrypointNumGpus']):f}"]
    cmd += ["--", entrypoint, ";", "fi", ";"]
    cmd += ["ray", "job", "logs", "--address", address, "--follow", job_id]
    return " ".join(cmd)


@dataclass
class Submission:
    """What a RayJob's submitter delivered: to Ray, and to its own pod."""

    to_ray: list[str] | None  # the words after `--` of `ray job submit`; None: never called
    in_submitter: list[list[str]] = field(default_factory=list)  # other commands it ran
    exit_code: int = 0


def submitted(job: dict[str, Any], job_id: str = "council-nightly-1-abcde") -> Submission:
    """Run a RayJob spec's K8sJobMode submitter line with stubs."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = stubs(folder)
        line = submit_command(job, job_id)
        proc = subprocess.run(
            ["/bin/bash", "-ce", "--", line], env=env, capture_output=True, text=True, timeout=60
        )
        ran = [c["cmd"] for c in calls(folder)]
    to_ray, others = None, []
    for cmd in ran:
        if cmd[:3] == ["ray", "job", "submit"]:
            to_ray = cmd[cmd.index("--") + 1 :] if "--" in cmd else []
        elif cmd[0] == "python" and cmd[1:2] == ["-c"] and "gcs_healthz" in cmd[2]:
            continue  # the health probe KubeRay adds
        elif cmd[0] != "ray":
            others.append(cmd)
    return Submission(to_ray, others, proc.returncode)


@dataclass
class GuardRun:
    """What submit.sh did against the stub kubectl."""

    exit_code: int
    output: str
    created: list[dict[str, Any]]  # objects piped to `kubectl create -f -`
    deleted: list[str]  # RayJob names


def run_guard(
    command: list[str], files: dict[str, dict[str, str]], rows: str, run_name: str
) -> GuardRun:
    """Run the CronJob's ``command`` with ``rows`` as the `kubectl get rayjobs` output.

    ``files`` maps each ConfigMap mount path of its pod to the files there; the
    command and scripts see them under a temporary folder instead.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        moved = {}
        for i, (mount, content) in enumerate(files.items()):
            target = folder / f"mount{i}"
            target.mkdir()
            for key, text in content.items():
                (target / key).write_text(text)
            moved[mount.rstrip("/")] = str(target)

        def local(text: str) -> str:
            for mount, target in moved.items():
                text = text.replace(mount + "/", target + "/")
            return text

        for target in moved.values():
            for script in Path(target).iterdir():
                script.write_text(local(script.read_text()))
        env = {
            **stubs(folder),
            "STUB_ROWS": rows,
            "POD_NAMESPACE": "council",
            "RUN_NAME": run_name,
            "HOME": tmp,
        }
        proc = subprocess.run(
            [local(word) for word in command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        log = calls(folder)
    created = [yaml.safe_load(c["stdin"]) for c in log if c["cmd"][1:2] == ["create"]]
    deleted = [c["cmd"][3] for c in log if c["cmd"][1:3] == ["delete", "rayjob"]]
    return GuardRun(proc.returncode, proc.stdout + proc.stderr, created, deleted)
