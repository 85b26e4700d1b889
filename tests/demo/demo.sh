#!/usr/bin/env bash
# demo.sh BUILD_DIR - the main job of tidemark, end to end, in a few seconds:
# ingest a generated log stream with out-of-order, late and duplicate events,
# read a time range back, select by label, print statistics, verify, and
# show that ingesting the same stream again stores nothing new.
#
# It checks every figure against what the generator says it made, and exits
# non-zero if any step fails or any figure disagrees.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
build=$1
tidemark=$build/src/cli/tidemark
loggen=$build/tests/demo/tidemark-loggen
for exe in "$tidemark" "$loggen"; do
	if [ ! -x "$exe" ]; then
		echo "$0: $exe is missing; build with: ninja -C $build" >&2
		exit 1
	fi
done

events=${DEMO_EVENTS:-20000}
work=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
store=$work/store

section() { printf '\n== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; } # the command, as a user would type it
fail() {
	echo "demo FAILED: $*" >&2
	exit 1
}
# json_num KEY FILE: the number KEY holds in the last JSON line of FILE
# that has it (our JSON is flat and simple enough for sed).
json_num() {
	sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p" "$2" |
		tail -n 1
}
# expect WHAT GOT WANT: one line of a comparison table, failing on mismatch.
expect() {
	if [ "$2" = "$3" ]; then
		printf '  %-34s %8s   ok\n' "$1" "$2"
	else
		printf '  %-34s %8s   expected %s\n' "$1" "${2:-?}" "$3"
		fail "$1: got ${2:-nothing}, expected $3"
	fi
}
# in_order_violations FILE: how many lines have a smaller ts than the line
# before (NDJSON output lines start with {"ts":N).
in_order_violations() {
	awk -F '[:,]' 'NR > 1 && $2 < prev { bad++ } { prev = $2 }
		END { print bad + 0 }' "$1"
}
now() { date +%s.%N; }
# rate N T0 T1: "1.23 s, 16260 events/s"
rate() { awk -v n="$1" -v a="$2" -v b="$3" \
	'BEGIN { s = b - a; printf "%.2f s, %.0f events/s", s, (s > 0 ? n / s : 0) }'; }

section "1. Create a store (1-hour shards, 60 s grace window)"
show "tidemark init STORE --shard-duration 1h --grace 60s"
"$tidemark" init "$store" --shard-duration 1h --grace 60s

section "2. Ingest $events log lines from 9 hosts"
echo "Out of order, late and re-sent lines included, as log shippers send them."
show "tidemark-loggen --events $events | tidemark append STORE"
t0=$(now)
"$loggen" --events "$events" 2>"$work/generated.json" |
	tee "$work/stream.ndjson" |
	"$tidemark" append "$store" 2>"$work/append.out"
t1=$(now)
cat "$work/append.out"
echo "  (loggen + append: $(rate "$events" "$t0" "$t1"))"
gen=$work/generated.json
echo
echo "  the generator made                    count   store says"
g_unique=$(json_num unique "$gen")
g_late=$(json_num late "$gen")
g_dups=$(json_num duplicates "$gen")
printf '  %-34s %8s\n' "lines sent" "$(json_num lines "$gen")"
printf '  %-34s %8s\n' "  in order" "$(json_num in_order "$gen")"
printf '  %-34s %8s\n' "  out of order, within 30 s" "$(json_num out_of_order "$gen")"
printf '  %-34s %8s\n' "  binary payloads (payload_b64)" "$(json_num binary "$gen")"
expect "distinct events -> appended" "$(json_num appended "$work/append.out")" "$g_unique"
expect "late (2-10 min behind) -> late" "$(json_num late "$work/append.out")" "$g_late"
expect "re-sent lines -> duplicates" "$(json_num duplicates "$work/append.out")" "$g_dups"

section "3. Read two seconds back, in time order"
show "tidemark read STORE --from 2025-11-22T10:21:00Z --to 2025-11-22T10:21:02Z"
"$tidemark" read "$store" --from 2025-11-22T10:21:00Z \
	--to 2025-11-22T10:21:02Z >"$work/range.ndjson"
head -n 8 "$work/range.ndjson" | cut -c 1-150 # not cut | head: SIGPIPE
n_range=$(wc -l <"$work/range.ndjson")
echo "... $n_range events in [10:21:00, 10:21:02)"
# What the range should hold, from the stream itself: distinct lines with
# from <= ts < to. Every ts has 19 digits, so awk compares them as strings.
want_range=$(sort -u "$work/stream.ndjson" | awk -F '[:,]' \
	'$2 >= "1763806860000000000" && $2 < "1763806862000000000"' | wc -l)
expect "events in the range" "$n_range" "$want_range"
expect "of them out of ts order" "$(in_order_violations "$work/range.ndjson")" 0

section "4. Select by label"
show "tidemark read STORE --where level=error | wc -l"
"$tidemark" read "$store" --where level=error >"$work/errors.ndjson"
expect "events with level=error" "$(wc -l <"$work/errors.ndjson")" \
	"$(json_num level_error "$gen")"
show "tidemark read STORE | wc -l"
t0=$(now)
"$tidemark" read "$store" >"$work/all.ndjson"
t1=$(now)
expect "all events" "$(wc -l <"$work/all.ndjson")" "$g_unique"
expect "of them out of ts order" "$(in_order_violations "$work/all.ndjson")" 0
echo "  (read in $(rate "$g_unique" "$t0" "$t1"))"

section "5. Statistics"
show "tidemark stat STORE"
"$tidemark" stat "$store" | tee "$work/stat.json"
expect "stat: events" "$(json_num events "$work/stat.json")" "$g_unique"
expect "stat: late_events" "$(json_num late_events "$work/stat.json")" "$g_late"

section "6. Verify every checksum and the index"
show "tidemark verify STORE"
"$tidemark" verify "$store" || fail "verify found problems"
echo "  sound"

section "7. Ingest the same stream again: every event is already there"
show "tidemark append STORE < stream.ndjson"
"$tidemark" append "$store" <"$work/stream.ndjson" 2>"$work/again.out"
cat "$work/again.out"
expect "appended" "$(json_num appended "$work/again.out")" 0
expect "duplicates" "$(json_num duplicates "$work/again.out")" \
	"$(json_num lines "$gen")"
"$tidemark" read "$store" | cmp -s - "$work/all.ndjson" ||
	fail "the store's contents changed"
echo "  store contents unchanged"

printf '\ndemo passed.\n'
