#!/bin/sh
# ringleader's test command: installs what is missing, builds with ASan+UBSan, runs every
# suite (unit, end-to-end, fuzz corpus replay, fuzz smoke), and ends with "N passed, N failed".
set -eu
top=$(cd "$(dirname "$0")" && pwd)
cd "$top"
./.ci/deps.sh
./.ci/build.sh build-san --enable-sanitizers

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
( cd build-san && make -s -j2 check >/dev/null 2>&1 ) || status=1

fuzz_status=0
if CC=clang ./.ci/build.sh build-fuzz --enable-fuzzing >/dev/null 2>&1; then
	( cd build-fuzz && make -s fuzz-smoke FUZZ_SECONDS="${FUZZ_SECONDS:-4}" ) >build-fuzz/fuzz-smoke.log 2>&1 || fuzz_status=1
else
	echo "fuzz build failed" >build-fuzz.log
	fuzz_status=1
fi
exec ./tests/summary.sh build-san "$fuzz_status"
