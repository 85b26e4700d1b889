#!/bin/sh
# run.sh BUILD_DIR [EVENTS] - the SPEC §7 benchmark for tidemark.
#
# Writes each workload (inorder, ooo, late) into a fresh store, then reads
# each store back with --read scan and --read windows. The RESULT lines go
# to stdout and to BUILD_DIR/bench-results-EVENTS.txt (or $RESULTS).
# Stores live in a temporary directory under ${TMPDIR:-/tmp}, removed at the
# end unless KEEP=1. Extra write options may be given in $WRITE_OPTS, e.g.
# WRITE_OPTS='--sync batch'.
set -eu

usage() {
	echo "usage: $0 BUILD_DIR [EVENTS]" >&2
	exit 2
}
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
build=$1
events=${2:-1000000}
case $events in '' | *[!0-9]*) usage ;; esac

bench=${TIDEMARK_BENCH:-$build/tests/bench/tidemark-bench}
if [ ! -x "$bench" ]; then
	echo "$0: no $bench; build with: ninja -C $build" >&2
	exit 1
fi
results=${RESULTS:-$build/bench-results-$events.txt}
work=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-bench.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
	echo "stores kept in $work" >&2
else
	trap 'rm -rf "$work"' EXIT INT TERM
fi

: >"$results"
run() {
	if ! line=$("$bench" "$@"); then
		echo "$0: failed: $bench $*" >&2
		exit 1
	fi
	echo "$line"
	echo "$line" >>"$results"
}

for w in inorder ooo late; do
	# shellcheck disable=SC2086 # WRITE_OPTS is a list of words
	run --engine tidemark --dir "$work/$w" --workload "$w" \
		--events "$events" ${WRITE_OPTS:-}
	run --engine tidemark --dir "$work/$w" --read scan
	run --engine tidemark --dir "$work/$w" --read windows
	# Keep the disk footprint to one store at a time.
	[ "${KEEP:-0}" = 1 ] || rm -rf "${work:?}/$w"
done
echo "results in $results" >&2
