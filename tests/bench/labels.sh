#!/bin/sh
# labels.sh BUILD_DIR [EVENTS] [REPEATS] - the issue 6 label benchmark.
#
# Ingest: the `inorder` workload written with no labels and with 3 labels
# per event (host: 16 values, level: 90% info / 7% warn / 3% error,
# service: 16 values), alternating, REPEATS times each; the median of each
# and their ratio are printed. The labels are timed twice: pointing at
# shared constant strings (a C agent's interned names), and in text of each
# event's own (what a parser of NDJSON hands over).
# Selective reads of the labelled store, answered from the label bitmaps
# (--read select) and by reading every record and filtering (--read
# filter), REPEATS times each (warm page cache); the medians and their ratio
# are printed, for two selectors near 0.1% of the events:
#   level=error,host=web-3,service=svc-1*   3% x 1/16 x 7/16 = 0.08%
#   level=error,host=web-3                  3% x 1/16        = 0.19%
# A broad selector (level=info, about 90%) is timed once each, to show that
# a dense selector falls back to scanning.
# RESULT lines go to stdout and to BUILD_DIR/bench-labels-EVENTS.txt.
set -eu

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
	echo "usage: $0 BUILD_DIR [EVENTS] [REPEATS]" >&2
	exit 2
fi
build=$1
events=${2:-1000000}
repeats=${3:-5}
bench=${TIDEMARK_BENCH:-$build/tests/bench/tidemark-bench}
results=${RESULTS:-$build/bench-labels-$events.txt}
work=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-labels.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
: >"$results"

run() {
	line=$("$bench" "$@") || { echo "$0: failed: $bench $*" >&2; exit 1; }
	echo "$line" | tee -a "$results" >&2
	echo "$line"
}
field() { # field NAME LINE
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: >"$work/w0"
: >"$work/w3"
: >"$work/w3own"
i=0
while [ $i -lt "$repeats" ]; do
	for v in 0 3 3own; do
		case $v in
		0) args="--labels 0" ;;
		3) args="--labels 3 --label-text shared" ;;
		3own) args="--labels 3 --label-text own" ;;
		esac
		rm -rf "$work/s$v"
		l=$(run --engine tidemark --dir "$work/s$v" --workload inorder \
			--events "$events" $args)
		field secs "$l" >>"$work/w$v"
	done
	i=$((i + 1))
done
rm -rf "$work/s3own"
w0=$(median <"$work/w0")
w3=$(median <"$work/w3")
w3own=$(median <"$work/w3own")

selread() { # selread SELECTOR: prints "median_select median_filter matched"
	for mode in select filter; do
		: >"$work/$mode"
		i=0
		while [ $i -lt "$repeats" ]; do
			l=$(run --engine tidemark --dir "$work/s3" --read $mode --where "$1")
			field secs "$l" >>"$work/$mode"
			matched=$(field events "$l")
			i=$((i + 1))
		done
	done
	echo "$(median <"$work/select") $(median <"$work/filter") $matched"
}
set -- $(selread 'level=error,host=web-3,service=svc-1*')
rs=$1 rf=$2 matched=$3
set -- $(selread 'level=error,host=web-3')
rs2=$1 rf2=$2 matched2=$3
for mode in select filter; do
	run --engine tidemark --dir "$work/s3" --read $mode --where level=info >/dev/null
done

awk -v e="$events" -v w0="$w0" -v w3="$w3" -v w3own="$w3own" -v rs="$rs" -v rf="$rf" -v m="$matched" \
    -v rs2="$rs2" -v rf2="$rf2" -v m2="$matched2" 'BEGIN {
	printf "ingest %d events: no labels %.3f s, 3 labels %.3f s: %.1f%% slower\n", e, w0, w3, (w3 / w0 - 1) * 100
	printf "ingest %d events: no labels %.3f s, 3 labels in text of their own %.3f s: %.1f%% slower\n", e, w0, w3own, (w3own / w0 - 1) * 100
	printf "selector matching %d events (%.3f%%): bitmaps %.4f s, filtering a scan %.4f s: %.1fx faster\n", m, 100 * m / e, rs, rf, rf / rs
	printf "selector matching %d events (%.3f%%): bitmaps %.4f s, filtering a scan %.4f s: %.1fx faster\n", m2, 100 * m2 / e, rs2, rf2, rf2 / rs2
}' | tee -a "$results"
