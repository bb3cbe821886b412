"""A run as a Ray job on a cluster's job API: its runtime env, its submission, its logs
streamed (the library of ``python -m pipelines.submit``).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipelines import PROJECT_ROOT, UserError

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
UPLOAD_EXCLUDES = [
    ".git",
    ".venv",
    "models",
    "runs",
    "outputs",
    "multirun",
    "mlflow.db",
    "mlruns",
    "**/__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    # Credentials a checkout may hold: the job's working directory is readable by
    # every job of the cluster.
    ".env",
    ".env.*",
    ".envrc",
    ".netrc",
    ".pypirc",
    ".npmrc",
    ".aws",
    ".ssh",
    ".docker",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.kubeconfig",
    "kubeconfig",
    "id_rsa*",
    "id_ed25519*",
    "*.creds",
]
"""Left out of the uploaded working directory: environments, built models, run
folders, credentials. The cluster has its own Python environment and reads the
model from its own disk (``model.path``: an absolute path or a hub id)."""
RUN_FOLDER = re.compile(r"run folder: (\S+)")
"""The line ``pipelines.run`` logs for each run it starts."""
INTERRUPTED = 130


def job_address(given: str | None) -> str:
    """The job API's address: ``--address``, else ``RAY_API_SERVER_ADDRESS`` (as Ray's job
    CLI), else an http(s) ``RAY_ADDRESS``, else the local head's default."""
    if given:
        if not given.startswith(("http://", "https://")):
            raise UserError(
                f"--address {given}: give the head's job API, http://<head>:8265 "
                "(the dashboard port), not the GCS or Ray Client address"
            )
        return given.rstrip("/")
    for address in (os.environ.get("RAY_API_SERVER_ADDRESS"), os.environ.get("RAY_ADDRESS")):
        if address and address.startswith(("http://", "https://")):
            return address.rstrip("/")
    return DEFAULT_ADDRESS


def entrypoint(overrides: Sequence[str], upload: bool) -> str:
    """The job's command line: the pipeline with the overrides, each quoted.

    With an uploaded working directory the driver runs in a private copy of it.
    Ray 2.60 unpacks a job's working directory again (remove, then unpack) each
    time it sets up another runtime environment of the job on a node, as the
    first task or an engine host with its own environment variables does: the
    driver's working directory was deleted under it (``os.getcwd()`` failed,
    the embedding model it unpacked there lost files). The copy is removed when
    the driver exits, with the driver's exit status kept.
    """
    run = shlex.join(["python", "-m", "pipelines.run", *overrides])
    if not upload:
        return run
    return (
        'copy="$(mktemp -d)" && cp -a . "$copy" && cd "$copy" && '
        f'{run}; status=$?; cd / && rm -rf "$copy"; exit $status'
    )


def typed_secrets(overrides: Sequence[str], env: Sequence[str]) -> list[str]:
    """The overrides and ``--env`` items that carry a credential: the dashboard
    shows every job's entrypoint and runtime environment to whoever reaches it."""
    from pipelines.runtime.redact import is_secret_name, redact_text

    found = [o for o in overrides if redact_text(o) != o]
    for item in env:
        key, _, value = item.partition("=")
        if is_secret_name(key) or redact_text(value) != value:
            found.append(f"--env {key}=...")
    return found


def runtime_env(upload: bool, runs_dir: str | None, env: Sequence[str]) -> dict[str, Any]:
    """The job's runtime environment: this checkout as working directory (unless
    ``upload`` is false) and the environment variables given."""
    env_vars: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--env {item!r}: expected KEY=VALUE")
        env_vars[key] = value
    if runs_dir:
        env_vars["COUNCIL_RUNS_DIR"] = runs_dir
    out: dict[str, Any] = {"env_vars": env_vars} if env_vars else {}
    if upload:
        out["working_dir"] = str(PROJECT_ROOT)
        out["excludes"] = UPLOAD_EXCLUDES
    return out


def client(address: str) -> Any:
    """A job client for ``address``; a head that does not answer or refuses the
    token is a :class:`UserError` with the fix."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except AuthenticationError as e:
        from pipelines.executors.ray import AUTH_HELP

        raise UserError(
            f"ray job API at {address} refused this client ({e.message}): {AUTH_HELP}"
        ) from None
    except (ConnectionError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"ray job API at {address}: {first}") from None


async def follow(jobs: Any, submission_id: str, folders: list[str]) -> None:
    """Print the job's log as it comes; note each run folder it names."""
    async for lines in jobs.tail_job_logs(submission_id):
        sys.stdout.write(lines)
        sys.stdout.flush()
        folders += RUN_FOLDER.findall(lines)


def exit_status(info: Any) -> int:
    """The driver's exit status, from the job's final state."""
    from ray.job_submission import JobStatus

    if info.status == JobStatus.SUCCEEDED:
        return 0
    if info.status == JobStatus.STOPPED:
        return 143  # `ray job stop` sends the driver SIGTERM
    return info.driver_exit_code if info.driver_exit_code else 1


def wait_for_end(jobs: Any, submission_id: str) -> Any:
    """The job's info once it is in a terminal state (the log can end just before)."""
    while True:
        info = jobs.get_job_info(submission_id)
        if info.status.is_terminal():
            return info
        time.sleep(0.5)


def where(folders: list[str], info: Any) -> str:
    """Where the run folders are: on the node the driver ran on, and here too when
    this host sees the same path (the same machine, a shared volume)."""
    if not folders:
        return "the driver named no run folder (it stopped before its first run)"
    node = (info.driver_node_id or "?")[:12]
    lines = []
    for folder in dict.fromkeys(folders):
        here = " (also visible here)" if Path(folder).is_dir() else ""
        lines.append(f"run folder on the cluster (driver node {node}): {folder}{here}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.submit",
        description="Run `python -m pipelines.run OVERRIDES` on a remote Ray cluster as a Ray "
        "job: stream its log, say where its run folder is, exit with its exit status.",
        epilog="example: python -m pipelines.submit --address http://head:8265 role=qa limit=2",
    )
    parser.add_argument(
        "--address",
        help=f"the head's job API (dashboard port); default: $RAY_API_SERVER_ADDRESS, "
        f"an http(s) $RAY_ADDRESS, else {DEFAULT_ADDRESS}",
    )
    parser.add_argument(
        "--no-upload",
        action="store_true",
        help="do not upload this checkout: the cluster's image has the code (its working "
        "directory holds conf/ and datasets/)",
    )
    parser.add_argument(
        "--runs-dir", help="COUNCIL_RUNS_DIR for the job: where run folders go on the cluster"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for the job (repeatable); not for secrets: the job's "
        "runtime environment is visible in the dashboard, give those to the cluster",
    )
    parser.add_argument("--submission-id", help="the job's id (default: council-<time>-<random>)")
    parser.add_argument(
        "--no-wait", action="store_true", help="submit and return: print the job's id"
    )
    parser.add_argument(
        "overrides", nargs=argparse.REMAINDER, help="Hydra overrides for pipelines.run"
    )
    return parser.parse_args(argv)
