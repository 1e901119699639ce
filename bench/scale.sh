#!/usr/bin/env bash
# scale.sh: the scale check "N concurrent keep-alive connections, all active": for each N,
# a fresh ringleader (workers = 1, the -O2 build of .ci/build.sh) in front of four botsim
# backends, loaded by wrk with N keep-alive connections for S seconds. The load and the
# backends share one CPU, the proxy has the other to itself (taskset, with 2 or more CPUs).
#
#   bench/scale.sh [--conns N,N,...] [--duration S]     defaults: 1000,5000,9000,10000; 10
#
#   wrk -t2 -cN ──N keep-alive conns──► ringleader ──up to N conns──► botsim bot-1..bot-4
#   (CPU 1, each request a           (CPU 0, workers = 1)        (CPU 1)
#    conversation id of its own)        ▲ every second: VmRSS, open descriptors (max kept)
#                                       └ after wrk: GET /stats (admin API): refused clients
#
# Descriptors: the proxy holds one descriptor per client plus one per backend connection,
# and admits a client only while a descriptor is left for that client's backend connection
# (it also keeps a reserve for listeners, logs, the admin API and idle backend connections,
# about 300 here). So N clients need about 2N descriptors. The script raises its soft limit
# to the hard limit (ulimit -n "$(ulimit -Hn)"), which the proxy, wrk and the backends
# inherit, and prints it. When 2N (plus that reserve) exceeds it, the proxy refuses the
# clients beyond its budget (it closes them at once) and wrk reports read errors, as it
# reconnects and is closed again: for such N, refused connections and read errors are the
# expected outcome, not a failure (raise the hard limit to measure it).
#
# Output: markdown on stdout (requests/s, latency p50/p99 from wrk --latency, the proxy's
# maximum RSS and descriptor count, wrk's socket errors and non-2xx replies, and the
# proxy's refused connections), then one "scale conns=N ..." key=value line per N.
# RL_BUILD and RL_NO_BUILD as for the other bench scripts (bench/README.md).
set -uo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

conns=1000,5000,9000,10000
duration=10
FD_RESERVE=300 # about what the proxy keeps aside (4 backends, default max_idle_per_backend)

usage() {
	sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case $1 in
	--conns) conns=$2; shift ;;
	--duration) duration=$2; shift ;;
	-h | --help) usage 0 ;;
	*) echo "scale.sh: unknown argument $1" >&2; usage 2 >&2 ;;
	esac
	shift
done
IFS=, read -ra NS <<<"$conns"
for n in "${NS[@]}"; do
	if ! [[ "$n" =~ ^[1-9][0-9]*$ ]] || [ "$n" -lt 2 ]; then
		echo "scale.sh: --conns wants integers of at least 2 (wrk -t2), not $n" >&2
		exit 2
	fi
done
[[ "$duration" =~ ^[1-9][0-9]*$ ]] ||
	{ echo "scale.sh: --duration wants whole seconds, not $duration" >&2; exit 2; }

bench_init scale
bench_need wrk:wrk taskset:util-linux curl:curl
bench_build

# Every process started from here on inherits the raised limit.
hard=$(ulimit -Hn)
# (an "unlimited" hard limit may not be a valid soft one: then the soft limit stays)
ulimit -n "$hard" 2>/dev/null || [ "$hard" = unlimited ] ||
	bench_die "cannot raise ulimit -n to the hard limit $hard"
soft=$(ulimit -n)
load=$(cut -d' ' -f1-3 /proc/loadavg)

bench_pin_split wrk
bench_start_bots

# wrk's Lua cannot tell its connections apart: each thread cycles through as many
# conversation ids as it has connections (args[1]), so the N connections carry about N
# conversations at a time, spread over the backends by the proxy's hash.
cat >"$BENCH_TMP/scale.lua" <<-'EOF'
	local counter = 0
	function setup(thread)
	    thread:set("id", counter)
	    counter = counter + 1
	end
	function init(args)
	    n = 0
	    ids = tonumber(args[1]) or 10000
	end
	request = function()
	    n = n + 1
	    return wrk.format("GET", "/chat", { ["X-Conversation-ID"] = "c" .. id .. "-" .. (n % ids) })
	end
EOF

# over N: 1 when N clients need more descriptors than the limit (2N plus the reserve),
# else 0.
over() {
	if [ "$soft" != unlimited ] && [ $((2 * $1 + FD_RESERVE)) -gt "$soft" ]; then
		echo 1
	else
		echo 0
	fi
}

# wrk latency ("812.00us", "1.23ms", "2.00s", "1.50m") in ms, NA when absent.
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v == "") { print "NA"; exit }
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : (u == "h") ? 3600000 : -1
		if (f < 0) print "NA"; else printf "%.2f\n", n * f }'
}

# A counter from the admin API's /stats JSON (flat "name": number pairs), NA when absent.
stat_of() {
	grep -o "\"$2\"[[:space:]]*:[[:space:]]*[0-9]*" <<<"$1" | head -1 | grep -o '[0-9]*$' || echo NA
}

ROWS=()
LINES=()
NOTES=()
for n in "${NS[@]}"; do
	read -r port admin < <(bench_free_ports 2 | tr '\n' ' ')
	[ -n "${admin:-}" ] || bench_die "no free ports"
	conf=$BENCH_TMP/scale-$n.ini
	log=$BENCH_TMP/ringleader-$n.log
	bench_rl_conf "$conf" "127.0.0.1:$port" "127.0.0.1:$admin" warn "${BOTS[@]}"
	bench_spawn "${proxy_pin[@]}" "$RL_BIN" -c "$conf" 2>"$log"
	rl_pid=$BENCH_SPAWNED
	bench_wait_port "$port" || { tail -20 "$log" >&2; bench_die "ringleader did not start (N = $n)"; }
	have_admin=1
	bench_wait_port "$admin" || have_admin=0

	[ "$(over "$n")" = 1 ] &&
		bench_log "N = $n: about $((2 * n + FD_RESERVE)) descriptors needed, the limit is $soft: refusals expected"
	bench_log "N = $n: wrk -t2 -c$n -d${duration}s"
	out=$BENCH_TMP/wrk-$n.out
	bench_spawn "${load_pin[@]}" wrk -t2 -c"$n" -d"${duration}s" --timeout 10s --latency \
		-s "$BENCH_TMP/scale.lua" "http://127.0.0.1:$port/" -- $((n / 2)) >"$out" 2>"$BENCH_TMP/wrk-$n.err"
	wrk_pid=$BENCH_SPAWNED
	max_rss=0
	max_fds=0
	while kill -0 "$wrk_pid" 2>/dev/null; do
		rss=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$rl_pid/status" 2>/dev/null)
		fds=$(find "/proc/$rl_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
		[ "${rss:-0}" -gt "$max_rss" ] && max_rss=$rss
		[ "$fds" -gt "$max_fds" ] && max_fds=$fds
		sleep 1
	done
	wait "$wrk_pid" 2>/dev/null
	bench_forget "$wrk_pid"
	kill -0 "$rl_pid" 2>/dev/null || { tail -20 "$log" >&2; bench_die "ringleader exited during the run (N = $n)"; }

	rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
	read -r e_conn e_read e_write e_timeout < <(awk '/Socket errors:/ {
		gsub(",", ""); print $4, $6, $8, $10; f = 1 } END { if (!f) print 0, 0, 0, 0 }' "$out")
	non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF; f = 1} END {if (!f) print 0}' "$out")
	if [ -z "$rps" ]; then
		bench_log "N = $n: wrk printed no result: $(tail -3 "$BENCH_TMP/wrk-$n.err" "$out" | tr '\n' ' ')"
		rps=NA
	fi
	refused=NA
	accepted=NA
	if [ "$have_admin" = 1 ]; then
		stats=$(curl -s --max-time 5 "http://127.0.0.1:$admin/stats")
		refused=$(stat_of "$stats" connections_refused)
		accepted=$(stat_of "$stats" connections_accepted)
	fi
	bench_stop "$rl_pid"

	mib=$(awk -v k="$max_rss" 'BEGIN {printf "%.1f", k / 1024}')
	o=$(over "$n")
	mark=
	[ "$o" = 1 ] && mark=" (over the fd limit)"
	ROWS+=("| $n$mark | $rps | $p50 | $p99 | $mib | $max_fds | connect $e_conn, read $e_read, write $e_write, timeout $e_timeout | $non2xx | $refused |")
	LINES+=("scale conns=$n rps=$rps p50_ms=$p50 p99_ms=$p99 rss_kb=$max_rss fds=$max_fds err_connect=$e_conn err_read=$e_read err_write=$e_write err_timeout=$e_timeout non2xx=$non2xx refused=$refused accepted=$accepted fd_limit=$soft over_limit=$((o == 1)) duration_s=$duration")
	if [ "$o" = 1 ]; then
		NOTES+=("N = $n needs about 2N + $FD_RESERVE = $((2 * n + FD_RESERVE)) descriptors, more than the limit of $soft: the proxy admits about $(((soft - FD_RESERVE) / 2)) clients at a time and closes the others at once; wrk reconnects them and is closed again, so the proxy counts $refused refusals ($accepted accepts) and wrk $e_read read errors. Expected, not a failure.")
	elif [ "$refused" != NA ] && [ "$refused" != 0 ]; then
		NOTES+=("N = $n fits the descriptor limit, yet the proxy refused $refused connections: look at $log (kept with BENCH_KEEP_TMP=1).")
	fi
	bench_log "N = $n: $rps req/s, p99 $p99 ms, RSS $mib MiB, $max_fds fds, read errors $e_read, refused $refused"
done

printf '### Scale: N concurrent keep-alive connections, all active\n\n'
printf 'Machine: %s. Load average before the run: %s.\n' "$(bench_machine)" "$load"
printf '%s, workers = 1, 4 botsim backends. Pinning: %s.\n' \
	"$("$RL_BIN" -V 2>/dev/null | head -1)" "$pinning"
printf 'Load: wrk -t2 -cN -d%ss --timeout 10s --latency, every request a GET /chat with a\n' "$duration"
printf 'conversation id, about N ids at a time. Max RSS and fds: the largest of one sample a second\n'
printf 'of the proxy'\''s /proc/PID while wrk ran. Refused: the proxy'\''s connections_refused (admin\n'
printf 'API /stats); accepted (scale lines) counts every connection, wrk'\''s reconnects included.\n\n'
if [ "$soft" = "$hard" ]; then
	printf 'Descriptor limit (hard, and the soft limit of every process here): %s. The proxy holds one\n' "$hard"
else
	printf 'Descriptor limit (soft, of every process here): %s (hard: %s). The proxy holds one\n' "$soft" "$hard"
fi
printf 'descriptor per client plus one per backend connection, and admits a client only while a\n'
printf 'descriptor is left for its backend connection (and keeps about %s aside), so N clients\n' "$FD_RESERVE"
printf 'need about 2N descriptors: up to about %s clients fit here. Beyond that (rows marked\n' \
	"$([ "$soft" = unlimited ] && echo "any number of" || echo $(((soft - FD_RESERVE) / 2)))"
printf '"over the fd limit"), refused connections and wrk read errors (wrk reconnects and is\n'
printf 'closed again) are the expected outcome, not a failure.\n\n'
printf '| N | req/s | p50 ms | p99 ms | max RSS MiB | max fds | socket errors | non-2xx | refused |\n'
printf '|---:|---:|---:|---:|---:|---:|---|---:|---:|\n'
printf '%s\n' "${ROWS[@]}"
if [ "${#NOTES[@]}" -gt 0 ]; then
	printf '\n'
	printf -- '- %s\n' "${NOTES[@]}"
fi
printf '\n```\n'
printf '%s\n' "${LINES[@]}"
printf '```\n'
bench_log "done"
