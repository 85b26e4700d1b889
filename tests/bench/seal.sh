#!/bin/sh
# seal.sh BUILD_DIR [EVENTS] - the sealing benchmark (issue 7) on realistic
# log lines: tidemark-loggen's stream (nginx, application, JSON, Postgres
# lines, stack traces, some binary frames; out of order, late, resent)
# goes through `tidemark append` into a store with 1 h shards; then
# tidemark-seal-bench seals a copy of the store and scans the closed shards
# of both, alternating (medians of 9 rounds, warm and cold page cache).
# The RESULT line goes to stdout and to BUILD_DIR/bench-seal-EVENTS.txt.
set -eu
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 BUILD_DIR [EVENTS]" >&2
	exit 2
fi
build=$1
events=${2:-1000000}
work=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-seal.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
"$build/tests/demo/tidemark-loggen" --events "$events" --seed 1 >"$work/logs.ndjson" 2>/dev/null
"$build/src/cli/tidemark" init "$work/store"
"$build/src/cli/tidemark" append "$work/store" <"$work/logs.ndjson" 2>/dev/null
cp -r "$work/store" "$work/sealed"
line=$("$build/tests/bench/tidemark-seal-bench" "$work/store" "$work/sealed")
echo "$line"
echo "$line" >"$build/bench-seal-$events.txt"
