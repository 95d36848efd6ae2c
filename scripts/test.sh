#!/bin/sh
# README's test command: install what is needed, build, and run the whole
# suite (Check unit tests and integration tests against real mariadbd,
# redis-server and chatd processes) twice: on the normal build, then on the
# release tarball built with AddressSanitizer and UBSan; under CI (or with
# CHATD_FUZZ_SECONDS) also each libFuzzer target.  Ends with one summary
# line "N passed, N failed".
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
sh scripts/deps.sh
sh scripts/build.sh

passed=0 failed=0 status=0

# Add the Check results in $1/tests/*.log to the totals.
count() {
	for log in "$1"/tests/*.log; do
		[ -f "$log" ] || continue
		line=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$log" | tail -n 1) || true
		if [ -z "$line" ]; then
			# A binary that died before Check's summary.
			failed=$((failed + 1))
			echo "no Check summary in $log:" >&2
			tail -n 30 "$log" >&2
			continue
		fi
		checks=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
		fails=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
		errs=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
		passed=$((passed + checks - fails - errs))
		failed=$((failed + fails + errs))
		if [ "$fails" -ne 0 ] || [ "$errs" -ne 0 ]; then
			echo "failures in $log:" >&2
			grep -E ':[EF]:' "$log" >&2 || true
		elif grep -qE '^:test-result: (FAIL|ERROR)' "${log%.log}.trs" 2>/dev/null; then
			# Every check passed, yet the binary failed: the
			# harness found a sanitizer report in a chatd log.
			failed=$((failed + 1))
			echo "$log: checks passed but the binary failed:" >&2
			grep -A3 '^harness: sanitizer report' "$log" >&2 || true
		fi
	done
}

echo "== suite (normal build)" >&2
make -j"$(nproc)" check || status=$?
count "$top"

if [ "${CHATD_TEST_SANITIZERS:-1}" = 1 ]; then
	echo "== suite (release tarball, --enable-sanitizers)" >&2
	make -s dist >/dev/null
	san=$(mktemp -d "${TMPDIR:-/tmp}/chatd-san-XXXXXX")
	tar -xzf chatd-*.tar.gz -C "$san"
	(
		cd "$san"/chatd-*/
		./configure -q --enable-sanitizers
		make -s -j"$(nproc)"
		ASAN_OPTIONS=detect_leaks=1 make -j"$(nproc)" check
	) || status=$?
	count "$(echo "$san"/chatd-*)"
	rm -rf "$san"
fi

# The libFuzzer targets, one test each: 60 s each under CI, or as long as
# CHATD_FUZZ_SECONDS says (0 skips them).
fuzz_seconds=${CHATD_FUZZ_SECONDS:-}
if [ -z "$fuzz_seconds" ] && [ "${CI:-}" = true ]; then
	fuzz_seconds=60
fi
if [ -n "$fuzz_seconds" ] && [ "$fuzz_seconds" != 0 ]; then
	echo "== fuzzing ($fuzz_seconds s per target)" >&2
	for t in $(sh scripts/fuzz.sh -l); do
		if sh scripts/fuzz.sh -t "$fuzz_seconds" "$t"; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
		fi
	done
fi

echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
