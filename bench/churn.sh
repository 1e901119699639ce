#!/usr/bin/env bash
# churn.sh: does a live conversation survive the backend lifecycle? convload keeps a
# fixed-rate conversation workload running through ringleader onto botsim backends while
# this script changes the pool, one event at a time:
#
#   noop-reload    SIGHUP with the file unchanged
#   add            a new backend in the file, SIGHUP
#   drain-config   state = draining for bot-2, SIGHUP
#   broken-config  a file with errors, SIGHUP (must be refused, nothing may change)
#   drain-admin    POST /backends/bot-3/drain on the admin API
#   remove         bot-2 (draining) taken out of the file, SIGHUP
#   kill           bot-1 killed (SIGKILL): the one event allowed to move conversations
#
# Per event it prints failed requests, moved conversations, new conversations placed on
# draining backends after the change took effect, and the event's p99 against the steady
# state's, as a markdown table plus one "churn event=..." key=value line each.
#
# The contract (docs: DESIGN.md, backend lifecycle) says every figure is 0 except for
# kill. Only the events/figures named in --expect-zero make the script fail; the others
# are printed as information (see bench/README.md for what the current build guarantees).
#
#   bench/churn.sh [--smoke] [--window S] [--rate R] [--conns N] [--expect-zero LIST]
#   LIST: all, or comma-separated EVENT (every figure) or EVENT:failed|moved|new
set -uo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

EVENTS=(noop-reload add drain-config broken-config drain-admin remove kill)
SMOKE_EXPECT="all"
window=3
rate=2000
conns=32
msgs=40
expect=
smoke=0

usage() {
	sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case $1 in
	--smoke) smoke=1 ;;
	--window) window=$2; shift ;;
	--rate) rate=$2; shift ;;
	--conns) conns=$2; shift ;;
	--expect-zero) expect=$2; shift ;;
	-h | --help) usage 0 ;;
	*) echo "churn.sh: unknown argument $1" >&2; usage 2 >&2 ;;
	esac
	shift
done
if [ "$smoke" = 1 ]; then
	window=${CHURN_SMOKE_WINDOW:-1}
	rate=${CHURN_SMOKE_RATE:-1000}
	conns=16
	msgs=20
fi
[ -n "$expect" ] || expect=$SMOKE_EXPECT
if [ "$expect" = all ]; then
	expect=$(printf '%s,' "${EVENTS[@]/kill/}" | sed 's/,,*/,/g; s/,$//')
fi

# Is figure FIG (failed|moved|new) of EVENT enforced by --expect-zero?
# FIG "*" asks whether any figure of EVENT is enforced.
enforced() {
	local item items
	IFS=, read -ra items <<<"$expect"
	for item in "${items[@]}"; do
		case $item in
		"$1" | "$1:$2") return 0 ;;
		"$1:"*) [ "$2" = "*" ] && return 0 ;;
		esac
	done
	return 1
}

bench_init churn
bench_build

# ---- setup: 4 backends (bot-4 joins later), ringleader, the load ----
for b in bot-1 bot-2 bot-3 bot-4; do
	bench_botsim "$b"
done
read -r rl_port admin_port < <(bench_free_ports 2 | tr '\n' ' ')
conf=$BENCH_TMP/ringleader.ini
rl_log=$BENCH_TMP/ringleader.log
listen=127.0.0.1:$rl_port
admin=127.0.0.1:$admin_port
pool=(bot-1 bot-2 bot-3)
bench_rl_conf "$conf" "$listen" "$admin" info "${pool[@]}"
bench_spawn "$RL_BIN" -c "$conf" 2>"$rl_log"
rl_pid=$BENCH_SPAWNED
bench_wait_port "$rl_port" || { cat "$rl_log" >&2; bench_die "ringleader did not start"; }

load_out=$BENCH_TMP/convload.out
bench_spawn "$CONVLOAD" -a "$listen" -c "$conns" -R "$rate" -m "$msgs" -d 0 -t 5000 -q \
	-l churn >"$load_out" 2>"$BENCH_TMP/convload.err"
load_pid=$BENCH_SPAWNED

phases() {
	grep -c '^phase ' "$load_out" 2>/dev/null || true
}

# Ends the current phase and waits until its line is written.
mark() {
	local n
	n=$(phases)
	kill -USR1 "$load_pid"
	for _ in $(seq 250); do
		[ "$(phases)" -gt "$n" ] && return 0
		sleep 0.02
	done
	bench_die "convload did not end a phase"
}

reloads() {
	grep -c 'reload: \(ok\|failed\)' "$rl_log" 2>/dev/null || true
}

# SIGHUP, then waits until ringleader logged the reload's outcome (ok or failed).
reload() {
	local n
	n=$(reloads)
	kill -HUP "$rl_pid"
	for _ in $(seq 100); do
		[ "$(reloads)" -gt "$n" ] && return 0
		sleep 0.02
	done
	bench_log "warning: no 'reload:' line from ringleader within 2 s"
	return 1
}

# POST to the admin API: prints the status code, or "refused" when nothing listens.
admin_post() {
	local status
	if ! { exec 4<>"/dev/tcp/127.0.0.1/$admin_port"; } 2>/dev/null; then
		echo refused
		return
	fi
	printf 'POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' \
		"$1" "$admin" >&4
	read -r -t 5 _ status _ <&4 || status=none
	exec 4<&-
	echo "$status"
}

# ---- the events ----
declare -A draining=()  # backends that must get no new conversation
declare -A note=() skipped=() line=() drained_in=()

sleep "$window"
mark # phase 0: steady state

run_event() {
	local ev=$1 status
	bench_log "event $ev"
	case $ev in
	noop-reload)
		reload
		;;
	add)
		pool=(bot-1 bot-2 bot-3 bot-4)
		bench_rl_conf "$conf" "$listen" "$admin" info "${pool[@]}"
		reload
		;;
	drain-config)
		pool=(bot-1 bot-2:draining bot-3 bot-4)
		bench_rl_conf "$conf" "$listen" "$admin" info "${pool[@]}"
		reload && draining[bot-2]=1
		;;
	broken-config)
		cp "$conf" "$conf.good"
		printf '[backend bot-9]\naddress = 127.0.0.1:notaport\nweight = 0\n' >>"$conf"
		reload
		if grep 'reload: \(ok\|failed\)' "$rl_log" | tail -1 | grep -q 'reload: failed'; then
			note[$ev]="refused, running config kept"
		else
			note[$ev]="NOT refused"
		fi
		mv "$conf.good" "$conf"
		;;
	drain-admin)
		status=$(admin_post /backends/bot-3/drain)
		case $status in
		2??) draining[bot-3]=1 ;;
		refused) skipped[$ev]="skipped: admin API not available" ;;
		*) note[$ev]="admin answered $status" ;;
		esac
		;;
	remove)
		pool=(bot-1 bot-3 bot-4)
		[ -n "${draining[bot-3]:-}" ] && pool=(bot-1 bot-3:draining bot-4)
		bench_rl_conf "$conf" "$listen" "$admin" info "${pool[@]}"
		reload
		;;
	kill)
		kill -KILL "${BOT_PID[bot-1]}"
		wait "${BOT_PID[bot-1]}" 2>/dev/null
		bench_forget "${BOT_PID[bot-1]}"
		;;
	esac
	drained_in[$ev]="${!draining[*]}"
	kill -USR2 "$load_pid" # from here on, new conversations count against draining backends
	sleep "$window"
	mark
}

for ev in "${EVENTS[@]}"; do
	run_event "$ev"
done
kill -TERM "$load_pid"
wait "$load_pid" 2>/dev/null
bench_forget "$load_pid"
kill -0 "$rl_pid" 2>/dev/null || bench_die "ringleader died during the run (see $rl_log)"

# ---- the report ----
mapfile -t plines < <(grep '^phase ' "$load_out")
summary=$(grep '^summary ' "$load_out")
[ "${#plines[@]}" -ge $((${#EVENTS[@]} + 1)) ] || bench_die "convload printed ${#plines[@]} phases"
steady=${plines[0]}
steady_p99=$(kv "$steady" p99_us)
fail=0

printf '### Churn: conversations through backend changes\n\n'
printf 'ringleader %s; convload %s conversations at %s req/s fixed rate (open loop),\n' \
	"$("$RL_BIN" -V | head -1 | awk '{print $2}')" "$conns" "$rate"
printf '%s messages each; %ss per event; steady state: %s req/s, p99 %s us, %s errors.\n\n' \
	"$msgs" "$window" "$(kv "$steady" rps)" "$steady_p99" "$(kv "$steady" errors)"
printf '| event | failed | moved | new on draining | p99 us (steady %s) | verdict |\n' "$steady_p99"
printf '|---|---:|---:|---:|---:|---|\n'

i=1
for ev in "${EVENTS[@]}"; do
	p=${plines[$i]}
	i=$((i + 1))
	failed=$(kv "$p" errors)
	moved=$(kv "$p" moved)
	newd=0
	# every backend draining by then counts, also one drained in an earlier event
	for b in ${drained_in[$ev]}; do
		newd=$((newd + $(kv "$p" "settled_new.$b")))
	done
	p99=$(kv "$p" p99_us)
	ratio=$(awk -v a="$p99" -v b="$steady_p99" 'BEGIN { printf (b > 0 ? "%.1fx" : "-"), a / b }')
	verdict=ok
	bad=()
	if [ -n "${skipped[$ev]:-}" ]; then
		verdict=${skipped[$ev]}
	elif [ "$ev" = kill ]; then
		verdict="info (failover may move and fail)"
	else
		for fig in failed moved new; do
			case $fig in
			failed) v=$failed ;;
			moved) v=$moved ;;
			new) v=$newd ;;
			esac
			[ "$v" = 0 ] && continue
			if enforced "$ev" "$fig"; then
				bad+=("$fig FAIL")
				fail=1
			else
				bad+=("$fig: not guaranteed yet")
			fi
		done
		if [ "${#bad[@]}" -gt 0 ]; then
			verdict=$(printf '%s; ' "${bad[@]}")
			verdict=${verdict%; }
		fi
	fi
	[ -n "${note[$ev]:-}" ] && verdict="$verdict (${note[$ev]})"
	if [ "${note[$ev]:-}" = "NOT refused" ] && enforced "$ev" "*"; then
		fail=1
	fi
	printf '| %s | %s | %s | %s | %s (%s) | %s |\n' "$ev" "$failed" "$moved" "$newd" \
		"$p99" "$ratio" "$verdict"
	line[$ev]="churn event=$ev failed=$failed moved=$moved new_on_draining=$newd p99_us=$p99 steady_p99_us=$steady_p99 rps=$(kv "$p" rps) skipped=$([ -n "${skipped[$ev]:-}" ] && echo 1 || echo 0)"
done
printf '\nEnforced (--expect-zero): %s. Other figures are the contract of DESIGN.md, shown as\n' "$expect"
printf 'information until the build guarantees them (bench/README.md).\n\n'
printf '```\n'
for ev in "${EVENTS[@]}"; do
	printf '%s\n' "${line[$ev]}"
done
printf 'churn total requests=%s errors=%s moved=%s result=%s\n' "$(kv "$summary" replies)" \
	"$(kv "$summary" errors)" "$(kv "$summary" moved)" "$([ "$fail" = 0 ] && echo pass || echo FAIL)"
printf '```\n'
if [ "$fail" != 0 ]; then
	bench_log "FAIL: an enforced figure is not zero (--expect-zero $expect)"
	exit 1
fi
bench_log "pass"
