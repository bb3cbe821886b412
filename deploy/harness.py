"""Run the nightly path's shell offline, with stub ``kubectl``, ``ray`` and ``python``.

Two things a cluster runs that a schema cannot check:

- :func:`submitted`: KubeRay v1.7's submitter (K8sJobMode) joins
  ``BuildJobSubmitCommand`` (ray-operator/controllers/ray/common/job.go) with
  spaces and runs it with ``bash -ce``; the entrypoint is pasted unquoted. This
  rebuilds that line, runs it with stubs, and returns what reached
  ``ray job submit`` after ``--`` and what ran in the submitter pod instead.
- :func:`run_guard`: the CronJob's ``submit.sh`` against a stub ``kubectl``
  that lists given RayJobs, plays a given sequence of states for the one it
  creates, and records what the script asked of it (``sleep`` is a stub too:
  the script's waits are counted in polls, not timed).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
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

LOG = """log() {
  printf '%s' "$(basename "$0")" >> "$STUB_LOG"
  for a in "$@"; do printf '\037%s' "$a" >> "$STUB_LOG"; done
  printf '\n' >> "$STUB_LOG"
}
log "$@"
"""
STUBS = {
    # `ray job status` of a job never submitted fails; everything else succeeds.
    "ray": '[ "$1 $2" = "job status" ] && exit 1\nexit 0\n',
    "python": "exit 0\n",
    # Waits nothing: the script's polls are counted, not timed.
    "sleep": "exit 0\n",
    # `get rayjobs` prints the fixture rows; `get rayjob NAME -o jsonpath` the
    # status message; `get rayjob NAME` fails as not found while NAME is neither
    # listed nor created, then prints the next line of $STUB_STATES (the last
    # one repeats; "Missing": not found), else its listed row's columns, else
    # no status yet; `create -f -` keeps what it was given.
    "kubectl": """case "$1 $2" in
  "get rayjobs") printf '%s' "$STUB_ROWS" ;;
  "get rayjob")
    case "$*" in *jsonpath*) printf '%s' "${STUB_MESSAGE:-}"; exit 0 ;; esac
    row=$(printf '%s\\n' "$STUB_ROWS" | awk -v n="$3" '$1 == n {print $2, $3, $4}')
    ls "$STUB_LOG".created.* >/dev/null 2>&1 || [ -n "$row" ] || exit 1
    n=$(grep '^kubectl.get.rayjob[^s]' "$STUB_LOG" | grep -vc jsonpath)
    total=$(printf '%s\\n' "$STUB_STATES" | grep -c .)
    if [ "$total" -eq 0 ]; then
      echo "${row:-<none>  <none>  <none>}"
      exit 0
    fi
    [ "$n" -le "$total" ] || n=$total
    line=$(printf '%s\\n' "$STUB_STATES" | grep . | sed -n "${n}p")
    [ "$line" = Missing ] && exit 1
    echo "$line" ;;
  create*) cat > "$STUB_LOG.created.$(wc -l < "$STUB_LOG")" ;;
esac
""",
}


def stubs(folder: Path) -> dict[str, str]:
    """An environment with shell stubs in ``folder`` first on PATH, logging to ``folder/log``."""
    for name, body in STUBS.items():
        path = folder / name
        path.write_text("#!/bin/sh\n" + LOG + body)
        path.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}", "STUB_LOG": str(folder / "log")}


def calls(folder: Path) -> list[list[str]]:
    """Every stub call, in order: [name, *args]."""
    log = folder / "log"
    return [line.split("\x1f") for line in log.read_text().splitlines()] if log.exists() else []


def created(folder: Path) -> list[dict[str, Any]]:
    """What `kubectl create -f -` was given, in order."""
    files = sorted(folder.glob("log.created.*"), key=lambda p: int(p.suffix[1:]))
    return [yaml.safe_load(p.read_text()) for p in files]


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
        ran = calls(folder)
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
    deleted: list[str]  # RayJob names, in order
    polls: int  # `kubectl get rayjob NAME` calls: the status checks after create
    kubectl: list[list[str]]  # every kubectl call's arguments


def run_guard(
    command: list[str],
    files: dict[str, dict[str, str]],
    rows: str,
    run_name: str,
    states: str = "",
    env: dict[str, str] | None = None,
) -> GuardRun:
    """Run the CronJob's ``command`` with ``rows`` as the `kubectl get rayjobs` output.

    ``files`` maps each ConfigMap mount path of its pod to the files there; the
    command and scripts see them under a temporary folder instead. ``states``:
    the created RayJob's status columns, one line per poll (the last repeats).
    ``env``: the container's other variables.
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
        given = {
            "STUB_MESSAGE": "Job entrypoint command failed with exit code 3",
            **(env or {}),
            "STUB_ROWS": rows,
            "STUB_STATES": states,
            "POD_NAMESPACE": "council",
            "RUN_NAME": run_name,
            "HOME": tmp,
        }
        proc = subprocess.run(
            [local(word) for word in command],
            env={**stubs(folder), **given},
            capture_output=True,
            text=True,
            timeout=60,
        )
        log, made = calls(folder), created(folder)
    kubectl = [c[1:] for c in log if c[0] == "kubectl"]
    deleted = [
        name
        for args in kubectl
        if args[:2] == ["delete", "rayjob"]
        for name in itertools.takewhile(lambda a: not a.startswith("-"), args[2:])
    ]
    polls = sum(1 for a in kubectl if a[:2] == ["get", "rayjob"] and "jsonpath" not in " ".join(a))
    return GuardRun(proc.returncode, proc.stdout + proc.stderr, made, deleted, polls, kubectl)
