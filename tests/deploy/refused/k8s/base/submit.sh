#!/bin/sh
# council-nightly: create tonight's RayJob from rayjob.yaml, unless one is active.
#
# Active: a RayJob of the benchmark whose deployment status is not final
# (New, Initializing, Running, Retrying, Waiting, Suspending). Complete, Failed,
# ValidationFailed and Suspended ones never block a night. A RayJob failed past
# its activeDeadlineSeconds whose Ray job still runs is deleted: KubeRay then
# stops its driver (the RayJob finalizer), which the deadline alone does not.
#
# RUN_NAME: this Job's name (council-nightly-<scheduled minute>, or the name
# given to `kubectl create job --from=cronjob/council-nightly NAME`); the run
# folders take it and the RayJob is RUN_NAME-ray, so re-creating a night
# resumes it.
set -eu
ns="${POD_NAMESPACE:?}"
name="${RUN_NAME:?}"
template="${RAYJOB_TEMPLATE:-/etc/council/rayjob.yaml}"
case "$name" in
  *[!a-z0-9-]* | -* | "")
    echo "council-nightly: RUN_NAME '$name' is not a lowercase DNS label" >&2
    exit 2
    ;;
esac

rows=$(kubectl get rayjobs -n "$ns" -l app.kubernetes.io/component=nightly-benchmark \
  --no-headers -o custom-columns=NAME:.metadata.name,DEPLOYMENT:.status.jobDeploymentStatus,REASON:.status.reason,JOB:.status.jobStatus)
active=""
stale=""
while read -r job deployment reason status; do
  [ -n "$job" ] || continue
  case "$deployment" in
    Complete | ValidationFailed | Suspended) ;;
    Failed)
      if [ "$reason" = DeadlineExceeded ] && { [ "$status" = RUNNING ] || [ "$status" = PENDING ]; }; then
        stale="$stale $job"
      fi
      ;;
    *) active="$active $job" ;; # <none> (new), Initializing, Running, Retrying, Waiting, Suspending
  esac
done <<ROWS
$rows
ROWS

for job in $stale; do
  echo "council-nightly: $job passed its deadline but its Ray job still runs; deleting it stops it"
  kubectl delete rayjob "$job" -n "$ns" --wait=true --timeout=300s
done
if [ -n "$active" ]; then
  echo "council-nightly: skipped, still active:$active"
  exit 0
fi
if kubectl get rayjob "$name-ray" -n "$ns" >/dev/null 2>&1; then
  echo "council-nightly: RayJob $name-ray exists already (this Job was retried); nothing to do"
  exit 0
fi
sed "s/__RUN_NAME__/$name/g" "$template" | kubectl create -n "$ns" -f -
echo "council-nightly: created RayJob $name-ray"
