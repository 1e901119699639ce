#!/bin/sh
# ringleader's demo: installs what is missing, builds, starts three demo bots (bench/botsim)
# on 127.0.0.1:9001-9003 and ringleader on conf/ringleader.ini, and prints a curl line.
# Ctrl-C stops everything it started.
set -eu
top=$(cd "$(dirname "$0")" && pwd)
cd "$top"
./.ci/deps.sh
./.ci/build.sh build
conf/demo/make-cert.sh   # self-signed localhost certificate for trying [tls] (see README)

pids=""
stop() {
	trap - INT TERM EXIT
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	echo "demo: stopped"
}
trap stop INT TERM EXIT

for i in 1 2 3; do
	build/bench/botsim -q -n "bot-$i" -l "127.0.0.1:900$i" &
	pids="$pids $!"
done
build/proxy/ringleader -c conf/ringleader.ini &
pids="$pids $!"

tries=0
# ready once a backend passed its health checks and answers through the proxy
until curl -sf -o /dev/null http://127.0.0.1:8080/ -H 'X-Conversation-ID: demo'; do
	tries=$((tries + 1))
	if [ "$tries" -gt 300 ]; then
		echo "demo: ringleader did not come up on 127.0.0.1:8080" >&2
		exit 1
	fi
	sleep 0.1
done

cat <<'MSG'

ringleader is listening on http://127.0.0.1:8080 and https://127.0.0.1:8443 (bundled
self-signed demo certificate) in front of bot-1..bot-3.
Try (the same conversation always reaches the same bot, seq counts its messages):

  curl -s http://127.0.0.1:8080/chat -H 'X-Conversation-ID: alice' -d 'hello'
  curl -s --cacert conf/demo/cert.pem https://localhost:8443/chat -H 'X-Conversation-ID: alice' -d 'hi'
  curl -s http://127.0.0.1:9901/backends          # the admin API

Press Ctrl-C to stop.
MSG
wait
