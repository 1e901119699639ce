#!/bin/sh
# Install the Debian 12 packages ringleader needs to build, test and run its demo.
# Idempotent: packages already installed are skipped; apt-get runs only when one is missing.
set -eu

PACKAGES="gcc make autoconf automake pkg-config
libevent-dev libssl-dev libxxhash-dev libinih-dev libjsmn-dev libcriterion-dev
clang libclang-rt-14-dev curl openssl procps iproute2 wrk"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
