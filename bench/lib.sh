# shellcheck shell=bash disable=SC2034
# (SC2034: the globals set here are used by the scripts that source this file)
# Shared by the bench scripts (sourced, never run): where the binaries are, building them,
# free ports, starting botsim and ringleader, and stopping every process started here.
#
# Every process a script starts goes through bench_spawn, which records its PID; the EXIT
# trap stops exactly those PIDs (TERM, then KILL after a grace period) and removes the
# scratch directory. Everything listens on 127.0.0.1 only.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_TOP=$(cd "$BENCH_DIR/.." && pwd)
RL_BUILD=${RL_BUILD:-$BENCH_TOP/build}
RL_BIN=$RL_BUILD/proxy/ringleader
BOTSIM=$RL_BUILD/bench/botsim
CONVLOAD=$RL_BUILD/bench/convload

BENCH_PIDS=()       # every process started through bench_spawn
BENCH_TMP=          # scratch directory, removed on exit
BENCH_SPAWNED=      # PID of the last bench_spawn
BENCH_APT_UPDATED=0
BENCH_RL_WORKERS=1  # `workers =` in the configs bench_rl_conf writes (set after sourcing)
declare -A BOT_PORT=() BOT_PID=()

bench_log() {
	printf '%s: %s\n' "${BENCH_NAME:-bench}" "$*" >&2
}

bench_die() {
	bench_log "error: $*"
	exit 1
}

# Stops every recorded process (TERM, up to 3 s, then KILL) and removes the scratch dir.
bench_cleanup() {
	local pid alive
	for pid in "${BENCH_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for _ in $(seq 30); do
		alive=0
		for pid in "${BENCH_PIDS[@]}"; do
			if kill -0 "$pid" 2>/dev/null; then
				alive=1
			fi
		done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	for pid in "${BENCH_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	BENCH_PIDS=()
	if [ -n "$BENCH_TMP" ] && [ -d "$BENCH_TMP" ] && [ -z "${BENCH_KEEP_TMP:-}" ]; then
		rm -rf "$BENCH_TMP"
	fi
}

# Sets up the scratch directory and the traps. Call once, first.
bench_init() {
	BENCH_NAME=$1
	BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/rl-$BENCH_NAME.XXXXXX")
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# Runs "$@" in the background and records its PID in BENCH_SPAWNED and BENCH_PIDS.
bench_spawn() {
	"$@" &
	BENCH_SPAWNED=$!
	BENCH_PIDS+=("$BENCH_SPAWNED")
}

# Forgets a PID (after the script stopped or killed it on purpose).
bench_forget() {
	local pid keep=()
	for pid in "${BENCH_PIDS[@]}"; do
		[ "$pid" != "$1" ] && keep+=("$pid")
	done
	BENCH_PIDS=("${keep[@]}")
}

# Stops one recorded process and waits for it.
bench_stop() {
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	bench_forget "$1"
}

# Builds ringleader, botsim and convload in RL_BUILD (incremental; .ci/build.sh).
# RL_NO_BUILD=1 uses the binaries as they are.
bench_build() {
	local bin
	if [ -n "${RL_NO_BUILD:-}" ]; then
		for bin in "$RL_BIN" "$BOTSIM" "$CONVLOAD"; do
			[ -x "$bin" ] || bench_die "$bin is missing (RL_NO_BUILD is set)"
		done
		return 0
	fi
	if "$BENCH_TOP/.ci/build.sh" "$RL_BUILD" >"$BENCH_TMP/build.log" 2>&1; then
		return 0
	fi
	# A warning of a newer compiler must not block a benchmark: say so, build anyway.
	bench_log "warning: the -Werror build failed (see below); building with -Wno-error"
	grep -E 'error|warning' "$BENCH_TMP/build.log" | head -5 >&2
	make -C "$RL_BUILD" -s -j"$(nproc)" CFLAGS="-g -O2 -Wno-error" \
		proxy/ringleader bench/botsim bench/convload >>"$BENCH_TMP/build.log" 2>&1 ||
		{ tail -20 "$BENCH_TMP/build.log" >&2; bench_die "build failed"; }
}

# Installs the Debian packages whose command is missing: bench_need CMD:PKG ...
# Services are kept from starting during the install (policy-rc.d), so nothing runs
# afterwards that this script did not start itself.
bench_need() {
	local spec cmd pkg missing=() policy=/usr/sbin/policy-rc.d made_policy=0
	for spec in "$@"; do
		cmd=${spec%%:*}
		pkg=${spec#*:}
		command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	[ "$(id -u)" = 0 ] || bench_die "missing ${missing[*]}: run as root or apt-get install them"
	bench_log "installing ${missing[*]} (apt-get)"
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
	fi
	if [ "$BENCH_APT_UPDATED" = 0 ]; then
		apt-get update -qq >/dev/null 2>&1 || true
		BENCH_APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$BENCH_TMP/apt.log" 2>&1
	local rc=$?
	[ "$made_policy" = 1 ] && rm -f "$policy"
	[ "$rc" = 0 ] || { tail -5 "$BENCH_TMP/apt.log" >&2; bench_die "apt-get install ${missing[*]} failed"; }
}

# Prints N ports that were free a moment ago (convload binds them to port 0 together).
bench_free_ports() {
	"$CONVLOAD" --free-port "$1"
}

# Waits until 127.0.0.1:PORT accepts connections (up to ~5 s). 0 or 1.
bench_wait_port() {
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# Starts botsim NAME on an ephemeral port, optionally pinned: bench_botsim NAME [CPU].
# Sets BOT_PORT[NAME] and BOT_PID[NAME].
bench_botsim() {
	local name=$1 cpu=${2:-} pf="$BENCH_TMP/botsim-$1.port"
	local pin=()
	[ -n "$cpu" ] && pin=(taskset -c "$cpu")
	rm -f "$pf"
	bench_spawn "${pin[@]}" "$BOTSIM" -q -n "$name" -l 127.0.0.1:0 -P "$pf" 2>>"$BENCH_TMP/botsim.log"
	BOT_PID[$name]=$BENCH_SPAWNED
	for _ in $(seq 100); do
		[ -s "$pf" ] && break
		sleep 0.05
	done
	[ -s "$pf" ] || bench_die "botsim $name did not start"
	BOT_PORT[$name]=$(head -1 "$pf")
}

# Sets proxy_pin, load_pin, load_cpu and pinning: the proxy alone on CPU 0, LOAD (the load
# generator's name, for the pinning text) and the backends on CPU 1 (taskset); nothing is
# pinned with fewer than 2 CPUs.
# shellcheck disable=SC2034 # the caller's variables
bench_pin_split() {
	if [ "$(nproc)" -ge 2 ]; then
		proxy_pin=(taskset -c 0)
		load_pin=(taskset -c 1)
		load_cpu=1
		pinning="proxy alone on CPU 0, $1 and the 4 backends on CPU 1 (taskset)"
	else
		proxy_pin=()
		load_pin=()
		load_cpu=
		pinning="not pinned (fewer than 2 CPUs)"
	fi
}

# Starts botsims bot-1 .. bot-4 (array BOTS) on CPU load_cpu (none: unpinned).
bench_start_bots() {
	local b
	BOTS=(bot-1 bot-2 bot-3 bot-4)
	for b in "${BOTS[@]}"; do
		bench_botsim "$b" "${load_cpu:-}"
	done
}

# Writes a ringleader config: bench_rl_conf FILE LISTEN ADMIN_LISTEN LOG_LEVEL NAME[:STATE] ...
# (ADMIN_LISTEN may be empty: admin off). Backends come from BOT_PORT. [proxy] workers is
# BENCH_RL_WORKERS (1 unless the script sets it after sourcing this file).
bench_rl_conf() {
	local file=$1 listen=$2 admin=$3 level=$4 spec name state
	shift 4
	{
		printf '; written by bench/%s\n' "$BENCH_NAME"
		printf '[proxy]\nlisten = %s\nworkers = %s\naccess_log = off\nlog_level = %s\n' \
			"$listen" "$BENCH_RL_WORKERS" "$level"
		printf 'max_connections = 100000\n\n'
		printf '[health]\npath =\npassive_failures = 0\n\n'
		printf '[admin]\nlisten = %s\n\n' "$admin"
		for spec in "$@"; do
			name=${spec%%:*}
			state=up
			[ "$spec" != "$name" ] && state=${spec#*:}
			printf '[backend %s]\naddress = 127.0.0.1:%s\nstate = %s\n\n' \
				"$name" "${BOT_PORT[$name]}" "$state"
		done
	} >"$file.tmp" && mv "$file.tmp" "$file"
}

# Reads key KEY from a line of key=value pairs; prints DEFAULT (or 0) when absent.
kv() {
	local tok
	for tok in $1; do
		if [ "${tok%%=*}" = "$2" ]; then
			printf '%s\n' "${tok#*=}"
			return
		fi
	done
	printf '%s\n' "${3:-0}"
}

# One line describing the machine, for reports.
bench_machine() {
	local cpu
	cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
	printf '%s CPUs (%s), %s MiB RAM, Linux %s' "$(nproc)" "${cpu:-unknown}" \
		"$(awk '/^MemTotal/ {printf "%d", $2 / 1024}' /proc/meminfo)" "$(uname -r)"
}
