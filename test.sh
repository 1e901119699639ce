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

rm -f build-san/extra-results.tmp
# failures are read from the per-suite logs by tests/summary.sh
( cd build-san && make -s -j2 check >/dev/null 2>&1 ) || true

# The proxy suite again on the multi-threaded data path (workers = 2).
if (cd build-san && RL_E2E_WORKERS=2 RL_BIN="$PWD/proxy/ringleader" RL_BOTSIM="$PWD/bench/botsim" \
	RL_SRC="$top" ./tests/e2e/e2e_proxy) >build-san/e2e-workers2.log 2>&1; then
	echo "tests/e2e/e2e_proxy(workers=2) PASS" >>build-san/extra-results.tmp
else
	echo "tests/e2e/e2e_proxy(workers=2) FAIL build-san/e2e-workers2.log" >>build-san/extra-results.tmp
fi

# The few-second churn bench: live conversations through add, drain, broken config,
# admin drain, removal and a killed backend; fails on any moved or failed conversation
# except the kill's.
if RL_BUILD="$top/build-san" RL_NO_BUILD=1 ./bench/churn.sh --smoke >build-san/churn-smoke.log 2>&1; then
	echo "bench/churn.sh(smoke) PASS" >>build-san/extra-results.tmp
else
	echo "bench/churn.sh(smoke) FAIL build-san/churn-smoke.log" >>build-san/extra-results.tmp
fi
mv build-san/extra-results.tmp build-san/extra-results

fuzz_status=0
if CC=clang ./.ci/build.sh build-fuzz --enable-fuzzing >/dev/null 2>&1; then
	( cd build-fuzz && make -s fuzz-smoke FUZZ_SECONDS="${FUZZ_SECONDS:-4}" ) >build-fuzz/fuzz-smoke.log 2>&1 || fuzz_status=1
else
	echo "fuzz build failed" >build-fuzz.log
	fuzz_status=1
fi
exec ./tests/summary.sh build-san "$fuzz_status"
