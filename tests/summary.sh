#!/bin/sh
# Summarise a `make check` run: one line per suite, failing logs in full, and a last line
# "N passed, N failed". Criterion suites count their tests; other suites count as one.
#   tests/summary.sh BUILD_DIR FUZZ_STATUS
set -u
dir=$1
fuzz_status=${2:-0}
passed=0
failed=0
for trs in $(find "$dir/tests" -name '*.trs' | sort); do
	log=${trs%.trs}.log
	name=${trs#"$dir"/}
	name=${name%.trs}
	result=$(sed -n 's/^:test-result: //p' "$trs")
	synth=$(grep -a 'Synthesis: Tested:' "$log" 2>/dev/null | tail -1)
	if [ -n "$synth" ]; then
		p=$(echo "$synth" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
		f=$(echo "$synth" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
		c=$(echo "$synth" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
		f=$((f + c))
	elif [ "$result" = PASS ]; then
		p=1 f=0
	else
		p=0 f=1
	fi
	# A suite that crashed outside its tests (sanitizer report at exit) fails as a whole.
	if [ "$result" != PASS ] && [ "$f" -eq 0 ]; then
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	printf '%-34s %s (%s passed, %s failed)\n' "$name" "$result" "$p" "$f"
	if [ "$f" -gt 0 ]; then
		echo "---- $log ----"
		tail -n 80 "$log"
		echo "----"
	fi
done
# Suites run outside make check: "NAME PASS" or "NAME FAIL LOG" per line.
if [ -f "$dir/extra-results" ]; then
	while read -r name result log; do
		if [ "$result" = PASS ]; then
			passed=$((passed + 1))
			printf '%-34s PASS\n' "$name"
		else
			failed=$((failed + 1))
			echo "$name FAIL"
			[ -n "$log" ] && tail -n 60 "$log"
		fi
	done <"$dir/extra-results"
fi
if [ -f build-fuzz/fuzz-smoke.log ]; then
	n=$(grep -c '^fuzz .*: ' build-fuzz/fuzz-smoke.log || true)
	if [ "$fuzz_status" -eq 0 ]; then
		passed=$((passed + n))
		printf '%-34s PASS (%s targets)\n' "fuzz-smoke" "$n"
	else
		failed=$((failed + 1))
		echo "fuzz-smoke FAIL"
		tail -n 60 build-fuzz/fuzz-smoke.log
	fi
elif [ "$fuzz_status" -ne 0 ]; then
	failed=$((failed + 1))
	echo "fuzz build FAIL"
	cat build-fuzz.log 2>/dev/null
fi
if [ $((passed + failed)) -eq 0 ]; then
	echo "no test ran"
	failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
