#!/bin/sh
# council-nightly: run tonight's RayJob (rayjob.yaml) and exit with what became of it.
#
# RUN_NAME: this Job's name (council-nightly-<scheduled minute>, or the name
# given to `kubectl create job --from=cronjob/council-nightly NAME`); the run
# folders take it and the RayJob is RUN_NAME-ray, so a retry of this Job, or a
# re-created night, resumes the same runs.
#
# Exit status (the Job's podFailurePolicy reads it; deploy/README.md):
#   0   the night's RayJob is Complete
#   1   it Failed, or did not reach Running in time: the Job runs this script
#       again, which re-creates the RayJob under the same name (the night resumes)
#   2   RUN_NAME is a name KubeRay would refuse
#   65  KubeRay refused the RayJob (ValidationFailed): no retry can help
#   75  skipped: another night's RayJob is still active
#
# Before it creates: a RayJob failed past its activeDeadlineSeconds whose Ray
# job still runs is deleted (KubeRay's finalizer then stops that driver; the new
# driver waits for its lock until the old one has ended), and the finished
# nights beyond the newest KEEP_NIGHTS are deleted.
set -eu
ns="${POD_NAMESPACE:?}"
name="${RUN_NAME:?}"
template="${RAYJOB_TEMPLATE:-/etc/council/rayjob.yaml}"
keep="${KEEP_NIGHTS:-30}"
poll="${POLL_S:-30}"
selector=app.kubernetes.io/component=nightly-benchmark
job="$name-ray"

say() { echo "council-nightly: $*"; }
refuse() {
  say "RUN_NAME '$name' $*" >&2
  exit 2
}

# KubeRay's names: a RayJob's is a DNS-1035 label of at most 47 characters.
case "$name" in
  [a-z]*) ;;
  *) refuse "must start with a lowercase letter (KubeRay: a DNS-1035 label)" ;;
esac
case "$name" in
  *[!a-z0-9-]* | *-) refuse "is not a DNS-1035 label (a-z, 0-9 and '-'; no '-' last)" ;;
esac
[ ${#name} -le 43 ] || refuse "is ${#name} characters: KubeRay refuses RayJob $job (over 47)"

# The waits, from the template's own deadlines (seconds).
seconds() { sed -n "s/^ *$1: *\([0-9][0-9]*\).*/\1/p" "$template" | head -n 1; }
start_wait=$(($(seconds preRunningDeadlineSeconds) + 120))
run_wait=$(($(seconds activeDeadlineSeconds) + 300))

state() {
  kubectl get rayjob "$job" -n "$ns" --no-headers \
    -o custom-columns=DEPLOYMENT:.status.jobDeploymentStatus,REASON:.status.reason,JOB:.status.jobStatus \
    || echo Missing
}
message() { kubectl get rayjob "$job" -n "$ns" -o jsonpath='{.status.message}' || true; }
delete() { kubectl delete rayjob "$1" -n "$ns" --wait=true --timeout=300s; }

rows=$(kubectl get rayjobs -n "$ns" -l "$selector" --sort-by=.metadata.creationTimestamp \
  --no-headers -o custom-columns=NAME:.metadata.name,DEPLOYMENT:.status.jobDeploymentStatus,REASON:.status.reason,JOB:.status.jobStatus)
active=""
finished=""
mine=""
while read -r rayjob deployment reason status; do
  [ -n "$rayjob" ] || continue
  if [ "$rayjob" = "$job" ]; then
    mine="$deployment"
    continue
  fi
  case "$deployment" in
    Complete | ValidationFailed | Suspended) finished="$finished $rayjob" ;;
    Failed)
      if [ "$reason" = DeadlineExceeded ] && { [ "$status" = RUNNING ] || [ "$status" = PENDING ]; }; then
        say "$rayjob passed its deadline but its Ray job still runs; deleting it stops it"
        delete "$rayjob"
      else
        finished="$finished $rayjob"
      fi
      ;;
    *) active="$active $rayjob" ;; # <none> (new), Initializing, Running, Retrying, Waiting, Suspending
  esac
done <<ROWS
$rows
ROWS

if [ -n "$active" ]; then
  say "skipped: another night is still active:$active" >&2
  exit 75
fi

excess=$(($(echo "$finished" | wc -w) - keep))
if [ "$excess" -gt 0 ]; then
  say "deleting the $excess oldest finished night(s); the newest $keep stay"
  # shellcheck disable=SC2046,SC2086 # the names, as words
  kubectl delete rayjob $(echo $finished | cut -d' ' -f1-"$excess") -n "$ns" --wait=false
fi

case "$mine" in
  "")
    sed "s/__RUN_NAME__/$name/g" "$template" | kubectl create -n "$ns" -f -
    say "created RayJob $job"
    ;;
  Complete)
    say "RayJob $job is Complete already"
    exit 0
    ;;
  Failed | ValidationFailed | Suspended)
    say "RayJob $job is $mine: running the night again under the same name (it resumes)"
    delete "$job"
    sed "s/__RUN_NAME__/$name/g" "$template" | kubectl create -n "$ns" -f -
    ;;
  *) say "RayJob $job is $mine already (this Job was retried): following it" ;;
esac

# Wait for Running (bounded by the template's preRunningDeadlineSeconds), then
# for the end (bounded by its activeDeadlineSeconds).
phase="to start"
limit=$start_wait
waited=0
while :; do
  # shellcheck disable=SC2046 # the three columns, as words
  set -- $(state)
  case "$1" in
    Complete)
      say "RayJob $job: Complete"
      exit 0
      ;;
    ValidationFailed)
      say "RayJob $job: KubeRay refused it (ValidationFailed): $(message)" >&2
      exit 65
      ;;
    Failed)
      say "RayJob $job: Failed (${2:-}; Ray job ${3:-}): $(message)" >&2
      exit 1
      ;;
    Missing)
      say "RayJob $job: deleted while it was followed" >&2
      exit 1
      ;;
    Running)
      if [ "$phase" = "to start" ]; then
        say "RayJob $job: Running after ${waited}s; following it to its end"
        phase="to end"
        limit=$run_wait
        waited=0
      fi
      ;;
  esac
  if [ "$waited" -ge "$limit" ]; then
    say "RayJob $job: still ${1:-<none>} after ${waited}s, waiting $phase" >&2
    exit 1
  fi
  sleep "$poll"
  waited=$((waited + poll))
done
