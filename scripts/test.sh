#!/bin/sh
# README's test command: install what is needed, build, run the whole
# suite (Check unit tests and integration tests against real mariadbd,
# redis-server and chatd processes), and print one summary line.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
sh scripts/build.sh "$@"
status=0
make -j"$(nproc)" check || status=$?
# Sum the Check results of every test binary into the summary line.
passed=0 failed=0
for log in tests/*.log; do
	[ -f "$log" ] || continue
	line=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$log" | tail -n 1) || true
	if [ -z "$line" ]; then
		# A binary that crashed before Check's summary counts as failed.
		failed=$((failed + 1))
		echo "no Check summary in $log:" >&2
		tail -n 20 "$log" >&2
		continue
	fi
	checks=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
	fails=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
	errs=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
	passed=$((passed + checks - fails - errs))
	failed=$((failed + fails + errs))
	[ "$fails" -eq 0 ] && [ "$errs" -eq 0 ] || {
		echo "failures in $log:" >&2
		grep -E ':[EF]:' "$log" >&2 || true
	}
done
echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
