#!/usr/bin/env bash
# drgrad-daily.sh: one daily retraining run, safe to start from cron (docs/SCHEDULING.md).
#
#   drgrad-daily.sh [--lock FILE] [--log FILE] [--timezone ZONE] [--days-ago N]
#                   [--today YYYY-MM-DD | --date YYYY-MM-DD] [--drgrad CMD] [-- PIPELINE-ARGS...]
#
# * Takes an exclusive, non-blocking flock on --lock (default /tmp/drgrad-daily.lock): while a
#   run holds it, a second start logs "already running" and exits 75 (EX_TEMPFAIL) without
#   running anything. The lock is released by the kernel when the run ends or dies.
# * Run date: --date if given, else (today in --timezone) - --days-ago days. The default, 1,
#   trains on yesterday: at 02:00 yesterday's logs are complete, today's are not.
# * Runs `drgrad pipeline run --date <run date> PIPELINE-ARGS...` (--drgrad, or $DRGRAD, names
#   the command; default `drgrad`), appending its output to --log (default: stderr) with
#   timestamped start/end lines, and exits with its status: non-zero on failure.
# Exit codes: 0 success; the pipeline's own code on failure; 2 bad arguments; 75 already running.
set -u -o pipefail

readonly EX_USAGE=2
readonly EX_ALREADY_RUNNING=75

lock="/tmp/drgrad-daily.lock"
log=""
timezone="UTC"
days_ago=1
today=""
run_date=""
drgrad="${DRGRAD:-drgrad}"

usage() {
  echo "drgrad-daily.sh: $*" >&2
  echo "usage: drgrad-daily.sh [--lock FILE] [--log FILE] [--timezone ZONE] [--days-ago N]" \
       "[--today YYYY-MM-DD | --date YYYY-MM-DD] [--drgrad CMD] [-- PIPELINE-ARGS...]" >&2
  exit "$EX_USAGE"
}

is_date() {
  [[ "$1" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] && date -d "$1" +%F >/dev/null 2>&1
}

while (($#)); do
  case "$1" in
    --lock|--log|--timezone|--days-ago|--today|--date|--drgrad)
      (($# >= 2)) || usage "$1 needs a value"
      case "$1" in
        --lock) lock="$2" ;;
        --log) log="$2" ;;
        --timezone) timezone="$2" ;;
        --days-ago) days_ago="$2" ;;
        --today) today="$2" ;;
        --date) run_date="$2" ;;
        --drgrad) drgrad="$2" ;;
      esac
      shift 2 ;;
    --) shift; break ;;
    *) usage "unknown argument '$1' (pipeline arguments go after --)" ;;
  esac
done

[[ "$days_ago" =~ ^[0-9]+$ ]] || usage "--days-ago must be a whole number of days, got '$days_ago'"
[[ -e "/usr/share/zoneinfo/$timezone" || "$timezone" == "UTC" ]] \
  || usage "unknown time zone '$timezone'"
if [[ -n "$run_date" ]]; then
  [[ -z "$today" ]] || usage "give --date or --today, not both"
  is_date "$run_date" || usage "--date must be a date YYYY-MM-DD, got '$run_date'"
else
  if [[ -z "$today" ]]; then
    today="$(TZ="$timezone" date +%F)"
  fi
  is_date "$today" || usage "--today must be a date YYYY-MM-DD, got '$today'"
  # Noon keeps the day arithmetic clear of daylight-saving jumps at midnight.
  run_date="$(date -d "$today 12:00 $days_ago days ago" +%F)"
fi

if [[ -n "$log" ]]; then
  mkdir -p "$(dirname "$log")" || exit 1
  exec >>"$log" 2>&1
else
  exec 1>&2
fi

say() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) drgrad-daily[$$]: $*"; }

exec 9>>"$lock" || { say "cannot open lock file $lock"; exit 1; }
if ! flock --nonblock 9; then
  say "already running (lock $lock is held); not starting run for $run_date"
  exit "$EX_ALREADY_RUNNING"
fi

say "start: $drgrad pipeline run --date $run_date $*"
"$drgrad" pipeline run --date "$run_date" "$@"
status=$?
if ((status == 0)); then
  say "done: run for $run_date succeeded"
else
  say "FAILED: run for $run_date exited with status $status"
fi
exit "$status"
