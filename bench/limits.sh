#!/usr/bin/env bash
# limits.sh — resident memory of ringleader (the -O2 build of .ci/build.sh, no sanitizers)
# with many idle clients, under a flood of maximal request heads, and with clients that
# pipeline far more than the proxy may buffer; prints a markdown table (README "Limits and
# hardening").
#
#   bench/limits.sh [IDLE_CONNS [HEAD_CONNS [PIPE_CONNS]]]    defaults: 10000, 1000, 1000
#
#   bench/idleconns -m request ──N keep-alive connections, one request each, then idle──┐
#   bench/idleconns -m head    ──M heads of max_header_size - 1 bytes, never finished───┤
#                              (twice: the second flood must reuse what the first left) │
#   bench/idleconns -m pipeline──P slow requests, each with 1 MiB pipelined behind it───┤
#                                                                                       ▼
#                                     ringleader (workers = 1) ──► botsim ◄── VmRSS, fds
#
# Each phase waits until the proxy holds every connection (its descriptor count) and has
# read every byte sent to it (no Recv-Q left on its sockets; for the pipelining clients,
# until its RSS stops changing, as it stops reading at its watermark), reads VmRSS, then
# closes the clients and waits until the proxy has released them. header_timeout and
# client_idle_timeout are raised so the proxy does not cut the clients while they are
# measured. RL_BUILD and RL_NO_BUILD as for the other bench scripts (bench/README.md).
set -uo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

IDLE=${1:-10000}
HEADS=${2:-1000}
PIPES=${3:-1000}
PIPE_BYTES=1048576      # bytes each pipelining client offers
PIPE_SLOW_MS=30000      # botsim answers their first request after this
HEAD_MAX=16384          # max_header_size (its default, 16k)
HEAD_BYTES=$((HEAD_MAX - 1)) # a maximal head that is still not refused
SETTLE_S=120            # bound for each wait below
IDLECONNS=$RL_BUILD/bench/idleconns

bench_init limits
bench_build
[ -x "$IDLECONNS" ] || bench_die "$IDLECONNS is missing (make bench/idleconns)"

# The proxy admits a client only while a descriptor is left for its backend connection
# (two per client plus a reserve); the client side holds one per connection.
need=$((IDLE > HEADS ? IDLE : HEADS))
need=$(( 2 * (need > PIPES ? need : PIPES) + 256 ))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
	bench_die "needs $need descriptors, the hard limit is $hard (ulimit -Hn)"
fi
ulimit -n "$need" || bench_die "cannot raise ulimit -n to $need"

bench_botsim bot-1
port=$(bench_free_ports 1) || bench_die "no free port"
conf=$BENCH_TMP/limits.ini
cat >"$conf" <<EOF
; written by bench/limits.sh
[proxy]
listen = 127.0.0.1:$port
workers = 1
access_log = off
log_level = warn
max_connections = $((need * 2))
max_header_size = $HEAD_MAX
header_timeout = 10m
client_idle_timeout = 10m
[upstream]
response_timeout = 15m
[health]
path =
passive_failures = 0
[admin]
listen =
[backend bot-1]
address = 127.0.0.1:${BOT_PORT[bot-1]}
EOF
bench_spawn "$RL_BIN" -c "$conf" 2>>"$BENCH_TMP/ringleader.log"
rl_pid=$BENCH_SPAWNED
bench_wait_port "$port" || { cat "$BENCH_TMP/ringleader.log" >&2; bench_die "ringleader did not start"; }

status_kb() { # FIELD: a kB figure of /proc/PID/status of the proxy (VmRSS)
	awk -v f="$1:" '$1 == f {print $2}' "/proc/$rl_pid/status"
}

nfds() {
	find "/proc/$rl_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

# Bytes the proxy has not read yet, over all its client sockets.
unread() {
	ss -Htn state established "( sport = :$port )" | awk '{s += $1} END {print s + 0}'
}

# Polls (every 0.1 s, up to SETTLE_S) until "$@" succeeds.
settle() {
	local i
	for ((i = 0; i < SETTLE_S * 10; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

fds_at_least() { [ "$(nfds)" -ge "$1" ]; }
fds_at_most() { [ "$(nfds)" -le "$1" ]; }
all_read() { [ "$(unread)" -eq 0 ]; }
rss_steady() { # RSS unchanged over one second
	local a
	a=$(status_kb VmRSS)
	sleep 1
	[ "$(status_kb VmRSS)" -eq "$a" ]
}
no_clients() { [ "$(ss -Htn state established "( sport = :$port )" | wc -l)" -eq 0 ]; }

kib_to_mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# One warm-up exchange, so the baseline includes the data path's first allocations.
bench_spawn "$IDLECONNS" -p "$port" -n 1 -m request >"$BENCH_TMP/warm.out"
warm=$BENCH_SPAWNED
settle grep -q '^ready' "$BENCH_TMP/warm.out" || bench_die "warm-up request did not finish"
grep -q 'opened=1 ' "$BENCH_TMP/warm.out" || bench_die "warm-up request failed"
bench_stop "$warm"
settle no_clients || bench_die "the warm-up connection was never closed"
base_fds=$(nfds)
base_kb=$(status_kb VmRSS)

ROWS=()
add_row() { # LABEL CONNS RSS_KB BEFORE_KB FDS: growth and per-connection cost from BEFORE_KB
	local per="-"
	[ "$2" -gt 0 ] && per=$(awk -v d="$(($3 - $4))" -v n="$2" 'BEGIN {printf "%.1f", d / n}')
	ROWS+=("| $1 | $2 | $(kib_to_mib "$3") | $(kib_to_mib $(($3 - $4))) | $per | $5 |")
}

# phase LABEL CONNS SETTLED idleconns-args...: hold CONNS client connections, wait until
# SETTLED (a function) holds, measure, release.
phase() {
	local label=$1 n=$2 settled=$3 out=$BENCH_TMP/phase.out pid opened failed kb fds
	local after_kb before_kb
	shift 3
	before_kb=$(status_kb VmRSS)
	bench_spawn "$IDLECONNS" -p "$port" -n "$n" "$@" >"$out"
	pid=$BENCH_SPAWNED
	settle grep -q '^ready' "$out" || bench_die "$label: the clients did not get ready"
	opened=$(kv "$(grep '^ready' "$out")" opened)
	failed=$(kv "$(grep '^ready' "$out")" failed)
	[ "$failed" -eq 0 ] || bench_log "$label: $failed of $n connections failed"
	settle fds_at_least $((base_fds + opened)) || bench_die "$label: the proxy holds only $(nfds) descriptors"
	settle "$settled" || bench_die "$label: the proxy did not settle ($settled)"
	kb=$(status_kb VmRSS)
	fds=$(nfds)
	add_row "$label" "$opened" "$kb" "$before_kb" "$fds"
	bench_stop "$pid"
	grep -q "^done alive=$opened " "$out" ||
		bench_log "$label: the proxy closed some connections while they were held: $(grep '^done' "$out")"
	if ! settle no_clients || ! settle fds_at_most "$base_fds"; then
		bench_die "$label: descriptors not released ($(nfds) open)"
	fi
	after_kb=$(status_kb VmRSS)
	add_row "after they closed" 0 "$after_kb" "$before_kb" "$(nfds)"
}

add_row "started, one request served" 0 "$base_kb" "$base_kb" "$base_fds"
phase "idle keep-alive connections (one request each)" "$IDLE" all_read -m request
phase "maximal heads held ($HEAD_BYTES B, never finished)" "$HEADS" all_read \
	-m head -s "$HEAD_BYTES"
# the same flood again: memory the first one left behind is reused, not added to
phase "the same flood of maximal heads again" "$HEADS" all_read -m head -s "$HEAD_BYTES"
# The proxy stops reading these clients at its watermark, so it sees them close only when
# their slow answer comes (PIPE_SLOW_MS): "after they closed" waits for that.
phase "a slow request with 1 MiB pipelined behind it" "$PIPES" rss_steady \
	-m pipeline -s "$PIPE_BYTES" -d "$PIPE_SLOW_MS"

printf '\n%s; %s, workers = 1, max_header_size = %s\n\n' "$(bench_machine)" \
	"$("$RL_BIN" -V 2>/dev/null | head -1)" "$HEAD_MAX"
printf '| state | client connections | proxy RSS (MiB) | change in the phase (MiB) | KiB per connection | proxy descriptors |\n'
printf '|---|---:|---:|---:|---:|---:|\n'
printf '%s\n' "${ROWS[@]}"
