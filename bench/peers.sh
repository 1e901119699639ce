#!/usr/bin/env bash
# peers.sh: the same conversation workload through ringleader, HAProxy and nginx (Debian's
# packages, each hashing X-Conversation-ID consistently over the same four botsim
# backends), and straight to one backend as the limit. --baseline BIN adds another
# ringleader binary (target "baseline", e.g. a build of the previous commit) to the same
# run, so a change is measured against its predecessor under the same machine state.
#
#   scenarios  ka      keep-alive            close   new connection per request
#              tls-ka  TLS keep-alive        tls-hs  TLS, new connection (full handshake)
#              tls-re  TLS, new connection resuming the last session (ticket)
#   budget     --threads N (default 1): ringleader workers = N, HAProxy nbthread N, nginx
#              worker_processes N. N = 1: every proxy is pinned to CPU 0, convload and the
#              backends share CPU 1 (taskset). N > 1: a proxy cannot have a CPU to itself,
#              so it is not pinned (all CPUs, sharing CPU 1 with the load side) while
#              convload and the backends stay on CPU 1. With fewer than 2 CPUs nothing is
#              pinned. The markdown says which pinning was used.
#   rounds     targets take turns (the order rotates every round); medians are reported
#   floor      bench/relayfloor, a bare epoll byte relay (one backend connection per client,
#              no HTTP), pinned like the proxies: the kernel's cost of relaying on this
#              machine, keep-alive only (one thread whatever --threads says)
#
# Per scenario and target: closed-loop throughput, the proxy's CPU time per request
# (utime+stime from /proc/PID/stat over the run, summed over every thread of the process
# and, for nginx, over the master and all N workers, divided by the replies: the key figure,
# as throughput here is bounded by the shared load CPU), and latency at a fixed rate
# (open loop) of --lat-frac (0.25) times the slowest target's first-round throughput, so
# every target is measured at the same offered load, well below saturation. Ratios are to the best proxy. Also idle and loaded
# RSS, and a wrk cross-check of keep-alive throughput. Output: markdown on stdout, with
# one "peers ..." key=value line per row (each with threads=N).
#
#   bench/peers.sh [--duration S] [--rounds N] [--conns N] [--warmup S] [--lat-frac F]
#                  [--scenarios ka,close,tls-ka,tls-hs,tls-re]
#                  [--targets direct,floor,ringleader,haproxy,nginx]
#                  [--threads N] [--baseline BIN] [--no-wrk]
set -uo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

duration=2
rounds=3
conns=50
baseline=
warmup=0.3
lat_frac=0.25
scenarios=ka,close,tls-ka,tls-hs,tls-re
targets=direct,floor,ringleader,haproxy,nginx
use_wrk=1
threads=1
PROXIES=(ringleader haproxy nginx)

usage() {
	sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case $1 in
	--duration) duration=$2; shift ;;
	--rounds) rounds=$2; shift ;;
	--conns) conns=$2; shift ;;
	--warmup) warmup=$2; shift ;;
	--lat-frac) lat_frac=$2; shift ;;
	--scenarios) scenarios=$2; shift ;;
	--targets) targets=$2; shift ;;
	--baseline) baseline=$2; shift ;;
	--threads) threads=$2; shift ;;
	--no-wrk) use_wrk=0 ;;
	-h | --help) usage 0 ;;
	*) echo "peers.sh: unknown argument $1" >&2; usage 2 >&2 ;;
	esac
	shift
done
# At most 15: convload -C watches up to 16 processes (the nginx master and its workers).
if ! [[ "$threads" =~ ^[1-9][0-9]?$ ]] || [ "$threads" -gt 15 ]; then
	echo "peers.sh: --threads wants an integer from 1 to 15, not $threads" >&2
	exit 2
fi
if [ -n "$baseline" ]; then
	[ -x "$baseline" ] || { echo "peers.sh: --baseline $baseline is not executable" >&2; exit 2; }
	PROXIES=(ringleader baseline haproxy nginx)
	[[ ",$targets," == *",baseline,"* ]] || targets=${targets/ringleader/ringleader,baseline}
fi
IFS=, read -ra SCENARIOS <<<"$scenarios"
IFS=, read -ra TARGETS <<<"$targets"

bench_init peers
bench_need haproxy:haproxy nginx:nginx wrk:wrk openssl:openssl taskset:util-linux
bench_build
BENCH_RL_WORKERS=$threads

if [ "$threads" -gt "$(nproc)" ]; then
	bench_log "warning: --threads $threads is more than the $(nproc) CPUs"
fi
bench_pin_split convload
if [ "$(nproc)" -ge 2 ] && [ "$threads" -gt 1 ]; then
	proxy_pin=()
	pinning="proxy not pinned (all $(nproc) CPUs: $threads threads cannot be alone on one CPU, so it shares CPU 1 with the load side), convload and the 4 backends on CPU 1 (taskset)"
fi

# ---- backends, certificate, ports ----
bench_start_bots
cert=$BENCH_TMP/cert.pem
key=$BENCH_TMP/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=localhost -keyout "$key" -out "$cert" >/dev/null 2>&1 ||
	bench_die "openssl could not make a test certificate"
cat "$cert" "$key" >"$BENCH_TMP/combined.pem"
read -r rl_port rl_tls ha_port ha_tls ng_port ng_tls bl_port bl_tls fl_port < <(bench_free_ports 9 | tr '\n' ' ')

declare -A ADDR=() TLS_ADDR=() PIDS=() IDLE_RSS=() NOTE=()
ADDR[direct]=127.0.0.1:${BOT_PORT[bot-1]}

# Sum of VmRSS (kB) of the comma-separated PIDs.
rss_of() {
	local pid total=0 v
	for pid in ${1//,/ }; do
		v=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null)
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

wanted() {
	[[ ",$targets," == *",$1,"* ]]
}

# Is TLS served on 127.0.0.1:PORT? (asked once the proxy serves its plain port)
tls_ok() {
	{ exec 5<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
	exec 5<&-
	timeout 3 openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null \
		>/dev/null 2>&1
}

# start_rl TARGET BINARY PORT TLS_PORT: one ringleader, workers = --threads, [tls] when it
# takes it.
start_rl() {
	local t=$1 bin=$2 port=$3 tport=$4 conf=$BENCH_TMP/$1.ini
	bench_rl_conf "$conf" "127.0.0.1:$port" "" warn "${BOTS[@]}"
	printf '[tls]\nlisten = 127.0.0.1:%s\ncert = %s\nkey = %s\n' "$tport" "$cert" "$key" >>"$conf"
	if ! "$bin" -t -c "$conf" >/dev/null 2>&1; then
		NOTE[$t]="its config check refused the [tls] section; started without TLS"
		bench_rl_conf "$conf" "127.0.0.1:$port" "" warn "${BOTS[@]}"
	fi
	bench_spawn "${proxy_pin[@]}" "$bin" -c "$conf" 2>"$BENCH_TMP/$t.log"
	PIDS[$t]=$BENCH_SPAWNED
	bench_wait_port "$port" || { cat "$BENCH_TMP/$t.log" >&2; bench_die "$t did not start"; }
	ADDR[$t]=127.0.0.1:$port
	if tls_ok "$tport"; then
		TLS_ADDR[$t]=127.0.0.1:$tport
	else
		NOTE[$t]="no TLS termination in this build ([tls] listen not served): TLS rows n/a"
	fi
}

start_ringleader() {
	start_rl ringleader "$RL_BIN" "$rl_port" "$rl_tls"
}

start_baseline() {
	start_rl baseline "$baseline" "$bl_port" "$bl_tls"
}

start_haproxy() {
	local cfg=$BENCH_TMP/haproxy.cfg
	cat >"$cfg" <<-EOF
		global
		    nbthread $threads
		    maxconn 8000
		defaults
		    mode http
		    timeout connect 2s
		    timeout client 60s
		    timeout server 30s
		frontend fe
		    bind 127.0.0.1:$ha_port
		    bind 127.0.0.1:$ha_tls ssl crt $BENCH_TMP/combined.pem alpn http/1.1
		    default_backend bots
		backend bots
		    balance hdr(X-Conversation-ID)
		    hash-type consistent
		    server bot-1 127.0.0.1:${BOT_PORT[bot-1]}
		    server bot-2 127.0.0.1:${BOT_PORT[bot-2]}
		    server bot-3 127.0.0.1:${BOT_PORT[bot-3]}
		    server bot-4 127.0.0.1:${BOT_PORT[bot-4]}
	EOF
	bench_spawn "${proxy_pin[@]}" haproxy -f "$cfg" -db 2>"$BENCH_TMP/haproxy.log"
	PIDS[haproxy]=$BENCH_SPAWNED
	bench_wait_port "$ha_port" || { cat "$BENCH_TMP/haproxy.log" >&2; bench_die "haproxy did not start"; }
	ADDR[haproxy]=127.0.0.1:$ha_port
	TLS_ADDR[haproxy]=127.0.0.1:$ha_tls
}

start_nginx() {
	local dir=$BENCH_TMP/nginx workers
	mkdir -p "$dir"
	cat >"$dir/nginx.conf" <<-EOF
		worker_processes $threads;
		pid $dir/nginx.pid;
		error_log $dir/error.log warn;
		events { worker_connections 8000; }
		http {
		    access_log off;
		    keepalive_requests 10000000;
		    upstream bots {
		        hash \$http_x_conversation_id consistent;
		        server 127.0.0.1:${BOT_PORT[bot-1]};
		        server 127.0.0.1:${BOT_PORT[bot-2]};
		        server 127.0.0.1:${BOT_PORT[bot-3]};
		        server 127.0.0.1:${BOT_PORT[bot-4]};
		        keepalive 64;
		        keepalive_requests 10000000;
		    }
		    server {
		        listen 127.0.0.1:$ng_port;
		        listen 127.0.0.1:$ng_tls ssl;
		        ssl_certificate $cert;
		        ssl_certificate_key $key;
		        ssl_protocols TLSv1.2 TLSv1.3;
		        location / {
		            proxy_pass http://bots;
		            proxy_http_version 1.1;
		            proxy_set_header Connection "";
		        }
		    }
		}
	EOF
	bench_spawn "${proxy_pin[@]}" nginx -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" \
		-g 'daemon off;' 2>"$BENCH_TMP/nginx.log"
	bench_wait_port "$ng_port" || { cat "$dir/error.log" >&2; bench_die "nginx did not start"; }
	# The master listens before it forks the workers: wait until all of them exist, as the
	# CPU per request sums the master and every worker.
	for _ in $(seq 100); do
		workers=$(ps -o pid= --ppid "$BENCH_SPAWNED" | tr -d ' ' | paste -sd, -)
		[ "$(tr ',' '\n' <<<"$workers" | grep -c .)" -ge "$threads" ] && break
		sleep 0.05
	done
	[ "$(tr ',' '\n' <<<"$workers" | grep -c .)" -ge "$threads" ] ||
		bench_die "nginx started ${workers:-no} workers, not $threads"
	PIDS[nginx]=$BENCH_SPAWNED${workers:+,$workers}
	ADDR[nginx]=127.0.0.1:$ng_port
	TLS_ADDR[nginx]=127.0.0.1:$ng_tls
}

start_floor() {
	local b args=()
	for b in "${BOTS[@]}"; do
		args+=(-b "127.0.0.1:${BOT_PORT[$b]}")
	done
	bench_spawn "${proxy_pin[@]}" "$RL_BUILD/bench/relayfloor" -l "127.0.0.1:$fl_port" "${args[@]}" \
		>"$BENCH_TMP/floor.log" 2>&1
	PIDS[floor]=$BENCH_SPAWNED
	bench_wait_port "$fl_port" || { cat "$BENCH_TMP/floor.log" >&2; bench_die "relayfloor did not start"; }
	ADDR[floor]=127.0.0.1:$fl_port
}

for t in "${PROXIES[@]}"; do
	if wanted "$t"; then
		"start_$t"
	fi
done
wanted floor && start_floor
sleep 0.5
for t in "${PROXIES[@]}"; do
	[ -n "${PIDS[$t]:-}" ] && IDLE_RSS[$t]=$(rss_of "${PIDS[$t]}")
done

# ---- runs ----
results=$BENCH_TMP/results
: >"$results"
declare -A RATE=()

# The address of TARGET for SCENARIO, or "" when it cannot be measured there.
addr_for() {
	if [ "$1" = floor ] && [ "$2" != ka ]; then
		return 0 # a byte relay answers a closed connection with a new backend connection
	fi
	case $2 in
	tls-*) echo "${TLS_ADDR[$1]:-}" ;;
	*) echo "${ADDR[$1]:-}" ;;
	esac
}

# run ROUND SCENARIO TARGET KIND: one convload run, its summary appended to $results.
run_one() {
	local round=$1 scen=$2 target=$3 kind=$4 addr args=() out
	addr=$(addr_for "$target" "$scen")
	[ -n "$addr" ] || return 0
	case $scen in
	close) args+=(-K) ;;
	tls-ka) args+=(-T) ;;
	tls-hs) args+=(-T -K) ;;
	tls-re) args+=(-T -K -S) ;;
	esac
	[ "$kind" = fixed ] && args+=(-R "${RATE[$scen]}")
	[ -n "${PIDS[$target]:-}" ] && args+=(-C "${PIDS[$target]}")
	out=$("${load_pin[@]}" "$CONVLOAD" -a "$addr" -c "$conns" -d "$duration" -w "$warmup" \
		-m 100 -t 5000 -q -l "$target" "${args[@]}" | grep '^summary ')
	[ -n "$out" ] || bench_die "convload printed no summary ($scen $target $kind)"
	echo "round=$round scen=$scen target=$target kind=$kind ${out#summary }" >>"$results"
	bench_log "round $round $scen $target $kind: $(kv "$out" rps) req/s, p99 $(kv "$out" p99_us) us, cpu $(kv "$out" cpu_us_per_req NA) us/req, errors $(kv "$out" errors)"
}

# Values of KEY over the rounds for SCENARIO TARGET KIND, one per line.
values() {
	local l
	grep " scen=$1 target=$2 kind=$3 " "$results" | while read -r l; do
		kv "$l" "$4" NA
	done | grep -v '^NA$'
}

median() {
	values "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "NA";
		else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

sum_of() {
	values "$@" | awk '{ s += $1 } END { print s + 0 }'
}

max_of() {
	values "$@" | sort -g | tail -1
}

# Rotates TARGETS by ROUND.
order_for() {
	local r=$1 n=${#TARGETS[@]} i
	for ((i = 0; i < n; i++)); do
		printf '%s\n' "${TARGETS[$(((i + r) % n))]}"
	done
}

for ((round = 1; round <= rounds; round++)); do
	mapfile -t order < <(order_for "$round")
	for scen in "${SCENARIOS[@]}"; do
		for t in "${order[@]}"; do
			run_one "$round" "$scen" "$t" closed
		done
		if [ -z "${RATE[$scen]:-}" ]; then
			slowest=$(grep " scen=$scen .* kind=closed " "$results" | while read -r l; do
				kv "$l" rps; done | sort -g | head -1)
			RATE[$scen]=$(awk -v r="${slowest:-0}" -v f="$lat_frac" 'BEGIN { v = int(r * f / 100) * 100; print (v < 100 ? 100 : v) }')
		fi
		for t in "${order[@]}"; do
			run_one "$round" "$scen" "$t" fixed
		done
	done
done

declare -A WRK=()
if [ "$use_wrk" = 1 ]; then
	cat >"$BENCH_TMP/wrk.lua" <<-'EOF'
		-- every request carries one of 10,000 conversation ids, so the hash spreads them
		local n = 0
		request = function()
		    n = n + 1
		    return wrk.format("POST", "/chat", { ["X-Conversation-ID"] = "w" .. (n % 10000),
		        ["Content-Type"] = "application/json" }, '{"text":"hello from wrk"}')
		end
	EOF
	for t in "${TARGETS[@]}"; do
		a=$(addr_for "$t" ka)
		[ -n "$a" ] || continue
		WRK[$t]=$("${load_pin[@]}" wrk -t1 -c "$conns" -d "${duration}s" -s "$BENCH_TMP/wrk.lua" \
			"http://$a/chat" 2>/dev/null | awk '/^Requests\/sec:/ { print $2 }')
		bench_log "wrk $t: ${WRK[$t]:-?} req/s"
	done
fi

# ---- report ----
title() {
	case $1 in
	ka) echo "plain HTTP, keep-alive" ;;
	close) echo "plain HTTP, new connection per request" ;;
	tls-ka) echo "TLS, keep-alive" ;;
	tls-hs) echo "TLS, new connection per request (a full handshake each)" ;;
	tls-re) echo "TLS, new connection per request, resuming the session (ticket)" ;;
	esac
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "NA" || b == "NA" || b + 0 == 0) print "-"; else printf "%.2fx\n", a / b }'
}

printf '### Peers: the same conversation workload through each proxy\n\n'
if [ "$threads" = 1 ]; then
	budget="each proxy one thread"
else
	budget="each proxy $threads threads (ringleader workers = $threads, HAProxy nbthread $threads, nginx worker_processes $threads; CPU per request sums all of them)"
fi
printf 'Machine: %s. CPU budget: %s.\nPinning: %s.\n' "$(bench_machine)" "$budget" "$pinning"
printf 'Versions: %s; %s; %s. Load: convload, %s conversations of 100 messages, closed loop\n' \
	"ringleader $("$RL_BIN" -V | head -1 | awk '{print $2}')" \
	"$(haproxy -v 2>/dev/null | head -1 | awk '{print "HAProxy " $3}')" \
	"$(nginx -v 2>&1 | sed 's|.*nginx/|nginx |')" "$conns"
printf 'for throughput and CPU, then open loop at a fixed rate for latency; %s rounds of %ss\n' "$rounds" "$duration"
printf '(+%ss warmup) per run, targets alternating; medians shown. "x best" compares with the\n' "$warmup"
printf 'best proxy (throughput: higher is better; CPU per request: lower is better). CPU time\n'
printf 'comes from /proc/PID/stat in %s ms ticks: short runs make it coarse (use --duration 5 for\n' "$((1000 / $(getconf CLK_TCK)))"
printf 'publishable figures).\n'
for t in "${PROXIES[@]}"; do
	[ -n "${NOTE[$t]:-}" ] && printf '\nNote: %s: %s.\n' "$t" "${NOTE[$t]}"
done
machine_lines=()
for scen in "${SCENARIOS[@]}"; do
	best_rps=
	best_cpu=
	for t in "${PROXIES[@]}"; do
		wanted "$t" || continue
		[ -n "$(addr_for "$t" "$scen")" ] || continue
		r=$(median "$scen" "$t" closed rps)
		c=$(median "$scen" "$t" closed cpu_us_per_req)
		best_rps=$(awk -v a="$r" -v b="${best_rps:-0}" 'BEGIN { print (a != "NA" && a + 0 > b + 0) ? a : b }')
		if [ "$c" != NA ]; then
			best_cpu=$(awk -v a="$c" -v b="${best_cpu:-}" 'BEGIN { print (b == "" || a + 0 < b + 0) ? a : b }')
		fi
	done
	printf '\n#### %s (latency at a fixed %s req/s)\n\n' "$(title "$scen")" "${RATE[$scen]:-?}"
	printf '| target | req/s | x best | proxy CPU us/req | x best | p50 us | p99 us | p99.9 us | errors | moved |'
	[ "$scen" = ka ] && [ "$use_wrk" = 1 ] && printf ' wrk req/s |'
	printf '\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
	[ "$scen" = ka ] && [ "$use_wrk" = 1 ] && printf -- '---:|'
	printf '\n'
	for t in "${TARGETS[@]}"; do
		if [ -z "$(addr_for "$t" "$scen")" ]; then
			why="n/a"
			[ "$t" = direct ] && why="n/a (botsim serves no TLS)"
			[ "$t" = floor ] && why="n/a (a byte relay: keep-alive only)"
			{ [ "$t" = ringleader ] || [ "$t" = baseline ]; } && why="n/a (TLS termination not in this build)"
			printf '| %s | %s | | | | | | | | |' "$t" "$why"
			[ "$scen" = ka ] && [ "$use_wrk" = 1 ] && printf ' |'
			printf '\n'
			machine_lines+=("peers scenario=$scen target=$t available=0 threads=$threads")
			continue
		fi
		rps=$(median "$scen" "$t" closed rps)
		cpu=$(median "$scen" "$t" closed cpu_us_per_req)
		p50=$(median "$scen" "$t" fixed p50_us)
		p99=$(median "$scen" "$t" fixed p99_us)
		p999=$(median "$scen" "$t" fixed p999_us)
		errs=$(($(sum_of "$scen" "$t" closed errors) + $(sum_of "$scen" "$t" fixed errors)))
		moved=$(($(sum_of "$scen" "$t" closed moved) + $(sum_of "$scen" "$t" fixed moved)))
		rr=$(ratio "$rps" "$best_rps")
		cr=$(ratio "$cpu" "${best_cpu:-NA}")
		[ "$t" = direct ] && cpu="-" && cr="-"
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' "$t" "$rps" "$rr" "$cpu" "$cr" \
			"$p50" "$p99" "$p999" "$errs" "$moved"
		[ "$scen" = ka ] && [ "$use_wrk" = 1 ] && printf ' %s |' "${WRK[$t]:-?}"
		printf '\n'
		machine_lines+=("peers scenario=$scen target=$t available=1 rps=$rps rps_ratio=${rr%x} cpu_us_per_req=$cpu cpu_ratio=${cr%x} fixed_rate=${RATE[$scen]} p50_us=$p50 p99_us=$p99 p999_us=$p999 errors=$errs moved=$moved wrk_rps=$([ "$scen" = ka ] && echo "${WRK[$t]:-NA}" || echo NA) rounds=$rounds duration_s=$duration threads=$threads")
	done
done

printf '\n#### Memory (RSS of the proxy processes)\n\n| proxy | idle kB | loaded kB (max at the end of a run) |\n|---|---:|---:|\n'
for t in "${PROXIES[@]}"; do
	[ -n "${PIDS[$t]:-}" ] || continue
	loaded=$(for s in "${SCENARIOS[@]}"; do max_of "$s" "$t" closed rss_kb; max_of "$s" "$t" fixed rss_kb; done | sort -g | tail -1)
	printf '| %s | %s | %s |\n' "$t" "${IDLE_RSS[$t]}" "${loaded:-NA}"
	machine_lines+=("peers memory target=$t idle_rss_kb=${IDLE_RSS[$t]} loaded_rss_kb=${loaded:-NA} conns=$conns threads=$threads")
done
printf '\n```\n'
printf '%s\n' "${machine_lines[@]}"
printf '```\n'
for t in "${PROXIES[@]}"; do
	for p in ${PIDS[$t]:-}; do
		kill -0 "${p%%,*}" 2>/dev/null || bench_die "$t exited during the bench"
	done
done
bench_log "done"
