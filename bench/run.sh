#!/usr/bin/env bash
# run.sh: every bench in one go, short by default (about 2-3 minutes), written as a
# markdown report: the churn bench (conversations through backend changes) and the peer
# bench (ringleader against HAProxy and nginx, and direct to a backend).
#
#   bench/run.sh [REPORT] [--duration S] [--rounds N] [--window S]
#     REPORT      where the report goes (default bench/report.md)
#     --duration  seconds per peer run (1); --rounds peer rounds (3)
#     --window    seconds per churn event (2)
#
# Exits non-zero when a bench fails (an enforced churn figure is not zero, or a bench
# could not run); the report is written either way.
set -uo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

report=$BENCH_DIR/report.md
duration=1
rounds=3
window=2

while [ $# -gt 0 ]; do
	case $1 in
	--duration) duration=$2; shift ;;
	--rounds) rounds=$2; shift ;;
	--window) window=$2; shift ;;
	-h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	*) report=$1 ;;
	esac
	shift
done

bench_init run
bench_need haproxy:haproxy nginx:nginx wrk:wrk openssl:openssl taskset:util-linux
bench_build
export RL_BUILD RL_NO_BUILD=1

start=$(date +%s)
commit=$(git -C "$BENCH_TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$BENCH_TOP" status --porcelain -- proxy 2>/dev/null)" ]; then
	commit="$commit (proxy/ has uncommitted changes)"
fi
load=$(cut -d' ' -f1-3 /proc/loadavg)
status=0
fence='```'

{
	printf '# ringleader bench report\n\n'
	printf '%s, commit %s, build %s.\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$commit" "$RL_BUILD"
	printf 'Machine: %s. Load average before the run: %s' "$(bench_machine)" "$load"
	awk -v l="${load%% *}" 'BEGIN { if (l + 0 >= 0.5) printf " (other processes were busy: expect noisy latencies; CPU time per request is the robust figure)" }'
	printf '.\n\n'
} >"$BENCH_TMP/report.md"

bench_log "churn bench ($window s per event)"
if ! "$BENCH_DIR/churn.sh" --window "$window" >>"$BENCH_TMP/report.md" 2>"$BENCH_TMP/churn.err"; then
	status=1
	printf '\n**churn.sh failed** (exit non-zero):\n\n%s\n%s\n%s\n' "$fence" \
		"$(tail -5 "$BENCH_TMP/churn.err")" "$fence" >>"$BENCH_TMP/report.md"
fi
printf '\n' >>"$BENCH_TMP/report.md"

bench_log "peer bench ($rounds rounds of $duration s per run)"
if ! "$BENCH_DIR/peers.sh" --duration "$duration" --rounds "$rounds" >>"$BENCH_TMP/report.md" 2>"$BENCH_TMP/peers.err"; then
	status=1
	printf '\n**peers.sh failed** (exit non-zero):\n\n%s\n%s\n%s\n' "$fence" \
		"$(tail -5 "$BENCH_TMP/peers.err")" "$fence" >>"$BENCH_TMP/report.md"
fi

printf '\n---\nbench/run.sh took %ss. Reproduce: %sbench/run.sh --duration %s --rounds %s --window %s%s.\n' \
	"$(($(date +%s) - start))" '`' "$duration" "$rounds" "$window" '`' >>"$BENCH_TMP/report.md"
mkdir -p "$(dirname "$report")"
cp "$BENCH_TMP/report.md" "$report"
bench_log "report: $report"
exit "$status"
