#!/bin/sh
# Build and run chatd's libFuzzer targets (tests/fuzz/) for a bounded time
# each; "make fuzz" and CI (scripts/test.sh) both come through here.
#
# usage: scripts/fuzz.sh [-l] [-n] [-b builddir] [-t seconds] [target ...]
#   target  frame, request or conf; all of them when none is named
#   -t      seconds of fuzzing per target; default $CHATD_FUZZ_SECONDS,
#           else 60 when CI=true, else 30
#   -b      the configured build tree (default: the source tree, where
#           scripts/build.sh configures)
#   -n      do not build first ("make fuzz" already has)
#   -l      print the target names and exit
#
# For each target: the inputs in tests/fuzz/regressions/<target>/ are
# replayed once, then the fuzzer runs on a temporary copy of
# tests/fuzz/corpus_<target>/ (the source tree is never written to) with
# the target's dictionary.  One line per target, "PASS: fuzz_<target> ..."
# with executions and coverage or "FAIL: ...", and the exit status is
# non-zero when any failed.  The input that made a target fail is kept in
# <builddir>/tests/fuzz/artifacts/<target>/ and dumped
# with od -c.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
targets_all="frame request conf"

builddir=$top
build=1
seconds=${CHATD_FUZZ_SECONDS:-}
if [ -z "$seconds" ]; then
	if [ "${CI:-}" = true ]; then seconds=60; else seconds=30; fi
fi
while getopts lnb:t: opt; do
	case $opt in
	l) echo "$targets_all"; exit 0 ;;
	n) build=0 ;;
	b) builddir=$(cd "$OPTARG" && pwd) ;;
	t) seconds=$OPTARG ;;
	*) echo "usage: $0 [-l] [-n] [-b builddir] [-t seconds] [target ...]" >&2
	   exit 2 ;;
	esac
done
shift $((OPTIND - 1))
targets=${*:-$targets_all}
for t in $targets; do
	case " $targets_all " in
	*" $t "*) ;;
	*) echo "fuzz: unknown target \"$t\" (one of: $targets_all)" >&2
	   exit 2 ;;
	esac
done
case $seconds in
''|*[!0-9]*) echo "fuzz: seconds must be a number, not \"$seconds\"" >&2
	exit 2 ;;
esac

if [ "$build" = 1 ]; then
	if [ ! -f "$builddir/Makefile" ]; then
		echo "fuzz: $builddir is not configured: run scripts/build.sh" >&2
		exit 1
	fi
	progs=""
	for t in $targets; do progs="$progs tests/fuzz/fuzz_$t"; done
	# shellcheck disable=SC2086
	${MAKE:-make} -s -C "$builddir" $progs
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/chatd-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT

# The value of libFuzzer's final stat $1 in log $2.
fuzz_stat() {
	sed -n "s/^stat::$1: *//p" "$2" | tail -n 1
}

# Show why target $1 failed (log $2) and keep its crashing inputs.
report_failure() {
	echo "fuzz_$1: last lines of the fuzzer's output:" >&2
	tail -n 60 "$2" >&2
	keep="$builddir/tests/fuzz/artifacts/$1"
	for a in "$work/$1"-*; do
		[ -f "$a" ] || continue
		mkdir -p "$keep"
		cp "$a" "$keep/"
		echo "fuzz_$1: input kept as $keep/${a##*/}" \
		    "($(wc -c <"$a") bytes); reproduce with:" \
		    "$builddir/tests/fuzz/fuzz_$1 $keep/${a##*/}" >&2
		od -A d -c "$a" | head -n 32 >&2
	done
}

status=0
for t in $targets; do
	bin="$builddir/tests/fuzz/fuzz_$t"
	log="$work/$t.log"
	if [ ! -x "$bin" ]; then
		echo "FAIL: fuzz_$t: $bin is not built (make fuzz)"
		status=1
		continue
	fi
	regs="$top/tests/fuzz/regressions/$t"
	if [ -d "$regs" ] && [ -n "$(ls -A "$regs")" ]; then
		if ! "$bin" "$regs"/* >"$log" 2>&1; then
			echo "FAIL: fuzz_$t: a saved regression input fails again"
			report_failure "$t" "$log"
			status=1
			continue
		fi
	fi
	cp -R "$top/tests/fuzz/corpus_$t" "$work/corpus_$t"
	if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -dict="$top/tests/fuzz/$t.dict" \
	    -artifact_prefix="$work/$t-" "$work/corpus_$t" >"$log" 2>&1; then
		runs=$(fuzz_stat number_of_executed_units "$log")
		rate=$(fuzz_stat average_exec_per_sec "$log")
		done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
		cov=$(echo "$done_line" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
		ft=$(echo "$done_line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
		corp=$(echo "$done_line" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
		echo "PASS: fuzz_$t: $runs runs in ${seconds} s" \
		    "($rate/s), cov $cov, ft $ft, corpus $corp"
	else
		echo "FAIL: fuzz_$t: crash, leak, timeout or broken invariant"
		report_failure "$t" "$log"
		status=1
	fi
done
exit $status
