"""The CronJob's guard (submit.sh), failure path by failure path, with its exit status.

No cluster runs here: each test runs the rendered script against a stand-in
``kubectl`` (deploy/harness.py) that lists the given RayJobs and plays the given
states for the one it creates, and a stand-in ``sleep`` that counts polls.
"""

from __future__ import annotations

import pytest

from deploy.check import DEPLOY, render
from deploy.rules import FOLLOWED, Guard, guard

NIGHT = "council-nightly-29412120"
JOB = f"{NIGHT}-ray"


@pytest.fixture(scope="module")
def submit() -> Guard:
    found = guard(render(DEPLOY / "k8s" / "overlays" / "gpu"))
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("states", "code", "said"),
    [
        (FOLLOWED + "Complete  <none>  SUCCEEDED", 0, f"RayJob {JOB}: Complete"),
        # KubeRay refused it: no retry can help (the Job's podFailurePolicy fails it).
        (
            "ValidationFailed  ValidationFailed  <none>",
            65,
            "KubeRay refused it (ValidationFailed): The RayJob spec is invalid",
        ),
        # The driver failed (exit 3, 4, 143, 75): the Job's next pod re-creates it.
        (FOLLOWED + "Failed  AppFailed  FAILED", 1, "Failed (AppFailed; Ray job FAILED)"),
        # The cluster never got ready: KubeRay's preRunningDeadlineSeconds.
        ("Failed  PreRunningDeadlineExceeded  <none>", 1, "Failed (PreRunningDeadlineExceeded"),
        (FOLLOWED + "Missing", 1, "deleted while it was followed"),
    ],
    ids=["complete", "validation-failed", "failed", "never-ready", "deleted"],
)
def test_the_guard_exits_with_what_became_of_the_night_stand_in_kubectl(
    submit: Guard, states: str, code: int, said: str
) -> None:
    message = "The RayJob spec is invalid: BackoffLimit is incompatible with ClusterSelector mode"
    run = submit.run("", NIGHT, states, STUB_MESSAGE=message)
    assert run.exit_code == code, run.output
    assert said in run.output
    (job,) = run.created
    assert job["metadata"]["name"] == JOB


def test_the_guard_waits_a_bounded_time_for_running_stand_in_kubectl(submit: Guard) -> None:
    """preRunningDeadlineSeconds 900 + 120 s at 30 s a poll: 35 polls, then exit 1."""
    run = submit.run("", NIGHT, "Initializing  <none>  <none>")
    assert run.exit_code == 1 and run.polls == 35, run.output
    assert "still Initializing after 1020s, waiting to start" in run.output
    # Running, then stuck: bounded by activeDeadlineSeconds 21600 + 300 s.
    run = submit.run("", NIGHT, "Running  <none>  RUNNING")
    assert run.exit_code == 1 and run.polls == 1 + 21900 // 30, run.output
    assert "still Running after 21900s, waiting to end" in run.output


def test_another_active_night_is_a_skip_not_a_success_stand_in_kubectl(submit: Guard) -> None:
    for state in ("<none>", "Initializing", "Running", "Retrying", "Waiting", "Suspending"):
        run = submit.run(f"older-ray  {state}  <none>  RUNNING\n", NIGHT)
        assert (run.exit_code, run.created) == (75, []), (state, run.output)
        assert "skipped: another night is still active: older-ray" in run.output


def test_a_retried_job_resumes_its_night_under_the_same_name_stand_in_kubectl(
    submit: Guard,
) -> None:
    # The first pod's night failed: the second deletes it, waits, re-creates it.
    run = submit.run(f"{JOB}  Failed  AppFailed  FAILED\n", NIGHT, FOLLOWED + "Complete")
    assert run.exit_code == 0 and run.deleted == [JOB], run.output
    assert ["delete", "rayjob", JOB, "-n", "council", "--wait=true", "--timeout=300s"] in (
        run.kubectl
    )
    (job,) = run.created
    assert job["metadata"]["name"] == JOB and f"--name {NIGHT}" in job["spec"]["entrypoint"]
    # Its night was Complete already: nothing to do, and a success.
    run = submit.run(f"{JOB}  Complete  <none>  SUCCEEDED\n", NIGHT)
    assert (run.exit_code, run.created, run.deleted) == (0, [], []), run.output


def test_a_night_past_its_deadline_is_stopped_before_the_next_stand_in_kubectl(
    submit: Guard,
) -> None:
    run = submit.run("stale-ray  Failed  DeadlineExceeded  RUNNING\n", NIGHT, FOLLOWED + "Complete")
    assert run.exit_code == 0 and run.deleted == ["stale-ray"], run.output
    delete = next(a for a in run.kubectl if a[0] == "delete")
    assert "--wait=true" in delete  # the Role grants watch: the deletion is followed
    assert len(run.created) == 1  # the new driver waits for the old one's lock


@pytest.mark.parametrize(
    "name", ["9-nightly", "nightly-", "Nightly", "night_1", "n" * 44, "a/b; rm -rf ~"]
)
def test_a_name_kuberay_refuses_is_refused_first_stand_in_kubectl(submit: Guard, name: str) -> None:
    run = submit.run("", name, FOLLOWED)
    assert (run.exit_code, run.created, run.kubectl) == (2, [], []), run.output


def test_finished_nights_beyond_the_newest_are_pruned_stand_in_kubectl(submit: Guard) -> None:
    finished = "".join(f"night-{i}-ray  Complete  <none>  SUCCEEDED\n" for i in range(5))
    run = submit.run(finished, NIGHT, FOLLOWED + "Complete", KEEP_NIGHTS="2")
    assert run.exit_code == 0, run.output
    assert run.deleted == ["night-0-ray", "night-1-ray", "night-2-ray"]
    assert "deleting the 3 oldest finished night(s); the newest 2 stay" in run.output
    run = submit.run(finished, NIGHT, FOLLOWED + "Complete", KEEP_NIGHTS="5")
    assert run.deleted == []
