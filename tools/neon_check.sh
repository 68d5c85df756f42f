#!/usr/bin/env bash
# The Neon job's command sequence, in one place: .github/workflows/bench.yml's `neon` job runs this
# script, and tests/test_neon_check.py runs it against the Neon API stand-in, so CI runs what is tested.
#
#   1. seed the profile on its seeded parent branch (one per dataset and models' schema; reused
#      when there, never seeded again in place);
#   2. exec `taskbench check` on a fixed-size child branch of that parent: base ("before") and head
#      measured side by side on it, the branch deleted on every exit. `exec`: taskbench is the
#      process the runner signals on a cancel, so it deletes its branch and exits 130 itself.
#
# Environment (the key is never printed):
#   NEON_API_KEY, NEON_PROJECT_ID  required: the Neon project
#   NEON_RUN_BRANCH                required: the check's branch name (one per job attempt)
#   NEON_API_URL                   the API's base URL (default: Neon's; the tests' stand-in)
#   BASE_REF                       the commit "before" stands for (the pull request's base); unset:
#                                  check's default, the merge base with the default branch
#   BASELINE                       a reference run (e.g. reports/baseline.json) for check's drift
#                                  section; unset: none
#   PROFILE                        the data profile seeded (default: ci)
#   SEED_OPTIONS                   more options for `taskbench seed`, split on spaces (e.g.
#                                  "--users 2 --tasks-per-user 800" for a tiny dataset)
#   DB_NAME                        the database on the branches (default: taskbench_ci)
#   NEON_COMPUTE                   the check branch's fixed size, CU (default: 1)
#   NEON_KEEP_PARENTS              when set, seeded parents beyond this many newest are removed first
#                                  (`taskbench neon parents --remove-old --keep N`)
#   REPORTS_DIR                    where check writes its run (default: reports/check)
#   GITHUB_ACTIONS                 "true" (as on GitHub's runners): one annotation per regression
#   GITHUB_STEP_SUMMARY            where the Markdown summary is appended (unset: none)
#   TASKBENCH                      the command (default: .venv/bin/taskbench)
# Arguments are passed on to `taskbench check` (e.g. --scenarios-dir DIR --pairs 8).
# Exit code: check's (0 no regression, 1 regression, 2 cannot judge, 3 database/API, 130 interrupted).
set -euo pipefail

# A cancel (SIGTERM from the runner, Ctrl-C) before the `exec` reaches this shell, not the taskbench
# it waits for: bash would die and leave that one running (seeding a branch), or run a trap only
# after it ends and go on to the check. So each step runs in the background, the trap passes the
# signal on, the step cleans up and exits 130, and so does the script, before starting another step.
interrupted=
child=
on_signal() {
  interrupted=$1
  if [ -n "$child" ]; then kill -s "$1" "$child" 2>/dev/null || true; fi
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
step() {
  if [ -n "$interrupted" ]; then exit 130; fi
  "$@" &
  child=$!
  local status=0
  wait "$child" || status=$?
  while kill -0 "$child" 2>/dev/null; do # the trap ended the wait, not the step: it is cleaning up
    status=0
    wait "$child" || status=$?
  done
  child=
  if [ -n "$interrupted" ]; then exit 130; fi
  return "$status"
}

: "${NEON_API_KEY:?NEON_API_KEY must be set}" "${NEON_PROJECT_ID:?NEON_PROJECT_ID must be set}"
: "${NEON_RUN_BRANCH:?NEON_RUN_BRANCH must be set}"
taskbench=${TASKBENCH:-.venv/bin/taskbench}
db_name=${DB_NAME:-taskbench_ci}
read -r -a seed_options <<<"${SEED_OPTIONS:-}"

if [ -n "${NEON_KEEP_PARENTS:-}" ]; then
  step "$taskbench" neon parents --remove-old --keep "$NEON_KEEP_PARENTS"
fi

step "$taskbench" seed --target neon --profile "${PROFILE:-ci}" "${seed_options[@]}" --db-name "$db_name" --quiet

check=("$taskbench" check)
if [ -n "${BASELINE:-}" ]; then
  check+=("$BASELINE")
fi
check+=(--target neon --neon-branch "$NEON_RUN_BRANCH" --neon-compute "${NEON_COMPUTE:-1}" --db-name "$db_name")
check+=(--cold-samples 0 --stability-rounds 0 --quiet --reports-dir "${REPORTS_DIR:-reports/check}")
if [ "${GITHUB_ACTIONS:-}" = true ]; then
  check+=(--annotations)
fi
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  check+=(--markdown "$GITHUB_STEP_SUMMARY")
fi
if [ -n "${BASE_REF:-}" ]; then
  check+=(--before-ref "$BASE_REF")
fi
if [ -n "$interrupted" ]; then exit 130; fi
exec "${check[@]}" "$@"
