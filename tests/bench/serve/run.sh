#!/bin/sh
# run.sh BUILD_DIR [SECONDS] - wrk against `tidemark serve` on loopback
# (issue 8), and `tidemark append` of the same events through a pipe.
#
# For each durability (batch: a sync per request, the serve default;
# interval: the library's default), each route (/v1/events NDJSON,
# /loki/api/v1/push JSON) and 1, 16 and 64 connections: a fresh store and
# server, wrk for SECONDS (default 10; a reply may take up to 30 s before
# wrk counts it as an error) with push.lua, 1000 events per
# request. Then `tidemark append` reads 2,000,000 events of the same shape
# from a pipe. Prints RESULT lines (also to BUILD_DIR/serve-bench.txt).
set -eu

build=${1:?usage: $0 BUILD_DIR [SECONDS]}
secs=${2:-10}
per=${PER_REQUEST:-1000}
pipe_events=${PIPE_EVENTS:-2000000}
here=$(cd "$(dirname "$0")" && pwd)
tidemark=$build/src/cli/tidemark
out=$build/serve-bench.txt
command -v wrk >/dev/null || { echo "$0: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -x "$tidemark" ] || { echo "$0: no $tidemark; build first" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-serve-bench.XXXXXX")
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
: >"$out"

result() {
	echo "$1"
	echo "$1" >>"$out"
}

for durability in batch interval; do
	for route in events loki; do
		for conns in 1 16 64; do
			store=$work/store
			rm -rf "$store"
			"$tidemark" init "$store"
			"$tidemark" serve "$store" --http 127.0.0.1:0 \
				--durability "$durability" 2>"$work/serve.err" &
			pid=$!
			port=
			for _ in $(seq 100); do
				port=$(sed -n 's/.*http listening on .*:\([0-9]*\)$/\1/p' "$work/serve.err")
				[ -n "$port" ] && break
				sleep 0.1
			done
			threads=2
			[ "$conns" -lt 2 ] && threads=1
			line=$(wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 30s --latency \
				-s "$here/push.lua" "http://127.0.0.1:$port" -- "$route" "$per" |
				grep '^WRK ')
			kill -TERM "$pid"
			wait "$pid"
			pid=
			requests=$(echo "$line" | sed 's/.*requests=\([0-9]*\).*/\1/')
			eps=$(awk -v r="$requests" -v p="$per" -v s="$secs" 'BEGIN { printf "%.0f", r * p / s }')
			result "RESULT mode=serve route=$route durability=$durability conns=$conns events_per_request=$per secs=$secs events_per_s=$eps ${line#WRK }"
		done
	done
done

# The same events through a pipe into `tidemark append` (the events of
# one wrk thread: NDJSON, no id, 100-byte payload, 1 ms apart).
python3 - "$pipe_events" >"$work/events.ndjson" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout
ms = 1700000000000
for i in range(n):
    t = ms + i
    s = "GET /api/v1/orders/%012d?user=%d HTTP/1.1 200 " % (t, t % 9973)
    out.write('{"ts":%d000000,"payload":"%s"}\n' % (t, s + "x" * (100 - len(s))))
PY
for durability in batch interval; do
	rm -rf "$work/store"
	"$tidemark" init "$work/store"
	start=$(date +%s.%N)
	cat "$work/events.ndjson" | "$tidemark" append "$work/store" --durability "$durability" 2>/dev/null
	end=$(date +%s.%N)
	result "$(awk -v n="$pipe_events" -v a="$start" -v b="$end" -v d="$durability" \
		'BEGIN { printf "RESULT mode=pipe durability=%s events=%d secs=%.2f events_per_s=%.0f\n", d, n, b - a, n / (b - a) }')"
done
