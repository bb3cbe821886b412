"""Run the pipeline on a remote Ray cluster: ``python -m pipelines.submit [options] overrides``.

Ray Data does not run under Ray Client (``ray://``): its streaming executor
needs a driver that is a node of the cluster. Ray's way from a laptop to a
remote cluster is the job API (the head's dashboard port, 8265): this command
submits ``python -m pipelines.run <overrides>`` as a Ray job, with this
checkout as its working directory (or, with ``--no-upload``, the code already
on the cluster: an image), streams the driver's log, says where the run
folder is on the cluster, and exits with the driver's exit status (0, 2, 3, 4,
143: see the README). Ctrl-C stops following and leaves the job running; the
commands to follow or stop it are printed.

The job's driver joins the cluster as any driver on it does (``RAY_ADDRESS``
and, with token auth, ``RAY_AUTH_MODE`` and the token are the cluster's own).
This command authenticates as Ray's job CLI does: ``RAY_AUTH_MODE=token`` with
``RAY_AUTH_TOKEN`` or the token file.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Sequence

from pipelines import UserError
from pipelines.executors.ray_jobs import (
    INTERRUPTED,
    client,
    entrypoint,
    exit_status,
    follow,
    job_address,
    parse_args,
    runtime_env,
    typed_secrets,
    wait_for_end,
    where,
)
from pipelines.runtime.redact import redact_text
from pipelines.spec.exits import EXIT_BAD_INPUT, EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = [o for o in args.overrides if o != "--"]
    if secrets := typed_secrets(overrides, args.env):
        shown = ", ".join(redact_text(s) for s in secrets)
        print(
            f"error: {shown}: a credential on the command line reaches the job's entrypoint "
            "and runtime environment, which the Ray dashboard shows; give it to the cluster's "
            "environment instead (a Secret: NATS_PASSWORD, VLLM_API_KEY, ...)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    try:
        address = job_address(args.address)
        jobs = client(address)
        submission_id = args.submission_id or (
            f"council-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        )
        jobs.submit_job(
            entrypoint=entrypoint(overrides, not args.no_upload),
            submission_id=submission_id,
            runtime_env=runtime_env(not args.no_upload, args.runs_dir, args.env),
            metadata={"council-eval": "pipelines.run"},
        )
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    commands = (
        f"  follow: ray job logs --address {address} -f {submission_id}\n"
        f"  stop:   ray job stop --address {address} {submission_id}"
    )
    print(f"submitted {submission_id} to {redact_text(address)}", file=sys.stderr, flush=True)
    if args.no_wait:
        print(commands, file=sys.stderr)
        print(submission_id)
        return EXIT_OK
    folders: list[str] = []
    try:
        asyncio.run(follow(jobs, submission_id, folders))
        info = wait_for_end(jobs, submission_id)
    except KeyboardInterrupt:
        print(f"\nno longer following; the job goes on:\n{commands}", file=sys.stderr)
        return INTERRUPTED
    code = exit_status(info)
    print(where(folders, info), file=sys.stderr)
    print(f"job {submission_id}: {info.status}, exit status {code}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
