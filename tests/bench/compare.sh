#!/bin/sh
# compare.sh BUILD_DIR [EVENTS] [REPS] - tidemark side by side with its peers.
#
# One command, one run, on this machine (issue 5):
#   1. every engine tidemark-bench was built with (tidemark, sqlite, lmdb,
#      rocksdb, raw: see -Dbench_peers) x every workload (inorder, ooo,
#      late): write EVENTS events (default 1000000, --sync end), --read scan,
#      --read windows; REPS repetitions (default 3), engines interleaved
#      within each repetition so that a busy moment hits them all alike;
#   2. per-batch durability: every engine and workload written with
#      --sync batch, $SYNC_EVENTS events (default 200000), REPS repetitions;
#   3. with SCALE=1 only (it takes minutes): tidemark alone at
#      $SCALE_EVENTS events (default 10000000), write and scan, once per
#      workload, next to its figures of step 1.
# Medians over the repetitions (each metric on its own), then Markdown
# tables: the figures, the ratios tidemark / peer, the per-batch durability
# run, the issue's targets (met or missed), and the scale run.
#
# Output:
#   stdout and $OUT (default BUILD_DIR/bench-compare-EVENTS.md): the tables;
#   $LOG (default BUILD_DIR/bench-compare-EVENTS.txt): every RESULT line,
#     tagged with phase, repetition and workload;
#   $PLOT (default docs/bench.png of this source tree; PLOT= to skip): ingest
#     and scan throughput per engine and workload, by gnuplot if installed.
# Other knobs: ENGINES="tidemark lmdb" (default: every engine built in),
# TMPDIR (stores live in a temporary directory there, one at a time, removed
# unless KEEP=1), TIDEMARK_BENCH (the binary).
set -eu

usage() {
	echo "usage: $0 BUILD_DIR [EVENTS] [REPS]" >&2
	exit 2
}
if [ $# -lt 1 ] || [ $# -gt 3 ]; then usage; fi
build=$1
events=${2:-1000000}
reps=${3:-3}
case $events in '' | *[!0-9]* | 0) usage ;; esac
case $reps in '' | *[!0-9]* | 0) usage ;; esac
sync_events=${SYNC_EVENTS:-200000}
scale_events=${SCALE_EVENTS:-10000000}
scale=${SCALE:-0}

here=$(cd "$(dirname "$0")" && pwd)
src_root=$(cd "$here/../.." && pwd)
bench=${TIDEMARK_BENCH:-$build/tests/bench/tidemark-bench}
if [ ! -x "$bench" ]; then
	echo "$0: no $bench; build with: ninja -C $build" >&2
	exit 1
fi
out=${OUT:-$build/bench-compare-$events.md}
log=${LOG:-$build/bench-compare-$events.txt}
plot=${PLOT-$src_root/docs/bench.png}

# The engines the binary knows: the last line of its usage.
if [ -z "${ENGINES:-}" ]; then
	ENGINES=$("$bench" --help | sed -n 's/^engines: *//p')
fi
workloads="inorder ooo late"

work=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-compare.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
	echo "stores kept in $work" >&2
else
	trap 'rm -rf "$work"' EXIT
	trap 'rm -rf "$work"; exit 130' INT TERM
fi

load() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(load)
date_start=$(date -u '+%Y-%m-%d %H:%M UTC')
: >"$log"

# run TAGS ARGS...: one tidemark-bench run; its RESULT line, prefixed with
# TAGS, goes to the log.
run() {
	tags=$1
	shift
	if ! line=$("$bench" "$@"); then
		echo "$0: failed: $bench $*" >&2
		exit 1
	fi
	echo "$tags ${line#RESULT }" >>"$log"
}

progress() { printf '%s\n' "$*" >&2; }

# 1. Every engine x workload, write + scan + windows.
r=1
while [ "$r" -le "$reps" ]; do
	for w in $workloads; do
		for e in $ENGINES; do
			progress "main rep $r/$reps: $e $w ($events events, load $(load))"
			d=$work/$e-$w
			t="phase=main rep=$r wl=$w"
			run "$t" --engine "$e" --dir "$d" --workload "$w" --events "$events"
			run "$t" --engine "$e" --dir "$d" --read scan
			run "$t" --engine "$e" --dir "$d" --read windows
			[ "${KEEP:-0}" = 1 ] || rm -rf "$d"
		done
	done
	r=$((r + 1))
done

# 2. Per-batch durability.
r=1
while [ "$r" -le "$reps" ]; do
	for w in $workloads; do
		for e in $ENGINES; do
			progress "sync rep $r/$reps: $e $w ($sync_events events, --sync batch)"
			d=$work/sync-$e-$w
			run "phase=sync rep=$r wl=$w" --engine "$e" --dir "$d" \
				--workload "$w" --events "$sync_events" --sync batch
			rm -rf "$d"
		done
	done
	r=$((r + 1))
done

# 3. Scale, tidemark alone.
if [ "$scale" = 1 ]; then
	for w in $workloads; do
		progress "scale: tidemark $w ($scale_events events)"
		d=$work/scale-$w
		run "phase=scale rep=1 wl=$w" --engine tidemark --dir "$d" \
			--workload "$w" --events "$scale_events"
		run "phase=scale rep=1 wl=$w" --engine tidemark --dir "$d" --read scan
		rm -rf "$d"
	done
fi
load_end=$(load)

# ---- Report ------------------------------------------------------------------

ver() { pkg-config --modversion "$1" 2>/dev/null || echo '?'; }
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
cc_ver=$(cc --version 2>/dev/null | head -n 1 || echo '?')
fs=$(df -T "${TMPDIR:-/tmp}" 2>/dev/null | awk 'NR == 2 { print $2 }')

awk -v events="$events" -v reps="$reps" -v sync_events="$sync_events" \
	-v scale_events="$scale_events" -v engines="$ENGINES" \
	-v date_start="$date_start" -v load_start="$load_start" \
	-v load_end="$load_end" -v cpu="$cpu" -v ncpu="$(nproc)" -v mem="$mem" \
	-v kernel="$(uname -sr)" -v cc_ver="$cc_ver" -v fs="${fs:-?}" \
	-v versions="sqlite $(ver sqlite3), lmdb $(ver lmdb), rocksdb $(ver rocksdb)" \
	-v plotdata="$work/plot.dat" '
function median(key,    n, i, j, t, v) {
	n = cnt[key]
	if (n == 0)
		return ""
	for (i = 1; i <= n; i++)
		v[i] = val[key, i]
	for (i = 2; i <= n; i++)          # insertion sort, n is tiny
		for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
			t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
		}
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function group(x,    s, neg) {        # 1234567 -> 1,234,567
	x = sprintf("%.0f", x)
	neg = x ~ /^-/
	if (neg) x = substr(x, 2)
	s = ""
	while (length(x) > 3) {
		s = "," substr(x, length(x) - 2) s
		x = substr(x, 1, length(x) - 3)
	}
	return (neg ? "-" : "") x s
}
function us(x) { return x == "" ? "—" : x >= 100 ? group(x) " µs" : sprintf("%.1f µs", x) }
function mb_kb(x) { return x == "" ? "—" : sprintf("%.1f MB", x / 1000) }
function rate(x) { return x == "" ? "—" : group(x) }
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "" : a / b }
function rfmt(x) { return x == "" ? "—" : sprintf("%.2f", x) }
function m(phase, e, w, mode, k) { return median(phase SUBSEP e SUBSEP w SUBSEP mode SUBSEP k) }
function target(name, w, r, need, dir,    ok) {
	if (r == "") return
	ok = dir == ">=" ? r >= need : r <= need
	printf "| %s | %s | %.2f | %s %s | %s |\n", name, w, r, dir, need, ok ? "met" : "**missed**"
	if (!ok) missed++
	total++
}
{
	# Fields: phase= rep= wl= mode= engine= ... (key=value words).
	delete f
	for (i = 1; i <= NF; i++) {
		eq = index($i, "=")
		if (eq) f[substr($i, 1, eq - 1)] = substr($i, eq + 1)
	}
	if (f["skipped"] != "") { skipped[f["engine"]] = f["skipped"]; next }
	if (f["ordered"] == "0") unordered[f["engine"]] = 1
	for (k in f) {
		if (k ~ /^(phase|rep|wl|mode|engine|workload|skipped|ordered)$/) continue
		key = f["phase"] SUBSEP f["engine"] SUBSEP f["wl"] SUBSEP f["mode"] SUBSEP k
		val[key, ++cnt[key]] = f[k] + 0
	}
}
END {
	ne = split(engines, E, " ")
	nw = split("inorder ooo late", W, " ")
	printf "### Side by side: %s events, median of %d runs\n\n", group(events), reps
	printf "Run %s on %s (%s cores), %s RAM, %s, %s, stores on %s in the page cache; %s. ", date_start, cpu, ncpu, mem, kernel, cc_ver, fs, versions
	printf "Load average (1, 5, 15 min) %s at the start, %s at the end.\n\n", load_start, load_end
	print "| engine | workload | ingest events/s | scan events/s | window p50 | window p99 | bytes on disk (per event) | peak RSS write | peak RSS scan |"
	print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for (i = 1; i <= ne; i++) for (j = 1; j <= nw; j++) {
		e = E[i]; w = W[j]
		b = m("main", e, w, "write", "bytes_on_disk")
		if (b == "") continue
		p50 = skipped[e] != "" ? "n/a (" skipped[e] ")" : us(m("main", e, w, "windows", "p50_us"))
		p99 = skipped[e] != "" ? "n/a" : us(m("main", e, w, "windows", "p99_us"))
		sc = rate(m("main", e, w, "scan", "events_per_s"))
		if (unordered[e] && w != "inorder") sc = sc " (arrival order)"
		printf "| %s | %s | %s | %s | %s | %s | %.1f MB (%.1f B) | %s | %s |\n", e, w,
			rate(m("main", e, w, "write", "events_per_s")), sc, p50, p99,
			b / 1e6, b / events,
			mb_kb(m("main", e, w, "write", "peak_rss_kb")),
			mb_kb(m("main", e, w, "scan", "peak_rss_kb"))
	}
	if (unordered["raw"])
		print "\nraw is the floor, not a store: its scan reads the file in arrival order (no ordering work; for ooo and late that is not ts order) and it has no index, so no windows."

	print "\n### Ratios tidemark / peer (same run)\n"
	print "Above 1 is better for tidemark in ingest and scan; below 1 is better in window latency, bytes and memory.\n"
	print "| peer | workload | ingest | scan | window p50 | window p99 | bytes on disk | peak RSS write | peak RSS scan |"
	print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for (i = 1; i <= ne; i++) for (j = 1; j <= nw; j++) {
		e = E[i]; w = W[j]
		if (e == "tidemark" || m("main", e, w, "write", "bytes_on_disk") == "") continue
		printf "| %s | %s", e, w
		printf " | %s", rfmt(ratio(m("main", "tidemark", w, "write", "events_per_s"), m("main", e, w, "write", "events_per_s")))
		printf " | %s", rfmt(ratio(m("main", "tidemark", w, "scan", "events_per_s"), m("main", e, w, "scan", "events_per_s")))
		printf " | %s", rfmt(ratio(m("main", "tidemark", w, "windows", "p50_us"), m("main", e, w, "windows", "p50_us")))
		printf " | %s", rfmt(ratio(m("main", "tidemark", w, "windows", "p99_us"), m("main", e, w, "windows", "p99_us")))
		printf " | %s", rfmt(ratio(m("main", "tidemark", w, "write", "bytes_on_disk"), m("main", e, w, "write", "bytes_on_disk")))
		printf " | %s", rfmt(ratio(m("main", "tidemark", w, "write", "peak_rss_kb"), m("main", e, w, "write", "peak_rss_kb")))
		printf " | %s |\n", rfmt(ratio(m("main", "tidemark", w, "scan", "peak_rss_kb"), m("main", e, w, "scan", "peak_rss_kb")))
	}

	printf "\n### Per-batch durability: %s events, --sync batch (a sync at every batch of 1000), median of %d runs\n\n", group(sync_events), reps
	print "| engine | workload | events/s | tidemark / engine |"
	print "| --- | --- | ---: | ---: |"
	for (i = 1; i <= ne; i++) for (j = 1; j <= nw; j++) {
		e = E[i]; w = W[j]
		x = m("sync", e, w, "write", "events_per_s")
		if (x == "") continue
		printf "| %s | %s | %s | %s |\n", e, w, rate(x),
			e == "tidemark" ? "—" : rfmt(ratio(m("sync", "tidemark", w, "write", "events_per_s"), x))
	}

	print "\n### Targets of issue 5 (ratios of the medians above)\n"
	print "| target | workload | tidemark / peer | needs | |"
	print "| --- | --- | ---: | ---: | --- |"
	for (j = 1; j <= nw; j++) {
		w = W[j]; ti = m("main", "tidemark", w, "write", "events_per_s")
		target("ingest vs raw file", w, ratio(ti, m("main", "raw", w, "write", "events_per_s")), 0.7, ">=")
	}
	for (j = 1; j <= nw; j++) {
		w = W[j]; ti = m("main", "tidemark", w, "write", "events_per_s")
		target("ingest vs LMDB", w, ratio(ti, m("main", "lmdb", w, "write", "events_per_s")), w == "inorder" ? 1.5 : 4, ">=")
	}
	for (j = 1; j <= nw; j++) {
		w = W[j]; ti = m("main", "tidemark", w, "write", "events_per_s")
		target("ingest vs SQLite", w, ratio(ti, m("main", "sqlite", w, "write", "events_per_s")), 10, ">=")
	}
	for (j = 1; j <= nw; j++) {
		w = W[j]
		target("ordered scan vs LMDB", w, ratio(m("main", "tidemark", w, "scan", "events_per_s"), m("main", "lmdb", w, "scan", "events_per_s")), 1, ">=")
	}
	for (j = 1; j <= nw; j++) {
		w = W[j]
		target("window p99 vs LMDB", w, ratio(m("main", "tidemark", w, "windows", "p99_us"), m("main", "lmdb", w, "windows", "p99_us")), 1, "<=")
	}
	for (j = 1; j <= nw; j++) {
		w = W[j]
		target("bytes on disk vs raw file", w, ratio(m("main", "tidemark", w, "write", "bytes_on_disk"), m("main", "raw", w, "write", "bytes_on_disk")), 1.1, "<=")
	}
	for (j = 1; j <= nw; j++) {
		w = W[j]
		target("per-batch durability vs raw file", w, ratio(m("sync", "tidemark", w, "write", "events_per_s"), m("sync", "raw", w, "write", "events_per_s")), 0.8, ">=")
	}
	for (j = 1; j <= nw; j++) {
		w = W[j]
		target("peak RSS write, " group(scale_events) " / " group(events), w, ratio(m("scale", "tidemark", w, "write", "peak_rss_kb"), m("main", "tidemark", w, "write", "peak_rss_kb")), 1.1, "<=")
		target("peak RSS scan, " group(scale_events) " / " group(events), w, ratio(m("scale", "tidemark", w, "scan", "peak_rss_kb"), m("main", "tidemark", w, "scan", "peak_rss_kb")), 1.1, "<=")
	}
	printf "\n%d of %d met.\n", total - missed, total

	if (m("scale", "tidemark", "inorder", "write", "events_per_s") != "") {
		printf "\n### Scale: tidemark at %s events (one run) next to %s (median)\n\n", group(scale_events), group(events)
		print "| workload | events | ingest events/s | peak RSS write | scan events/s | peak RSS scan | bytes per event |"
		print "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
		for (j = 1; j <= nw; j++) {
			w = W[j]
			split("main scale", P, " ")
			for (p = 1; p <= 2; p++) {
				n = p == 1 ? events : scale_events
				b = m(P[p], "tidemark", w, "write", "bytes_on_disk")
				if (b == "") continue
				printf "| %s | %s | %s | %s | %s | %s | %.1f |\n", w, group(n),
					rate(m(P[p], "tidemark", w, "write", "events_per_s")),
					mb_kb(m(P[p], "tidemark", w, "write", "peak_rss_kb")),
					rate(m(P[p], "tidemark", w, "scan", "events_per_s")),
					mb_kb(m(P[p], "tidemark", w, "scan", "peak_rss_kb")), b / n
			}
		}
	}

	# Plot data: one block per metric, a row per workload, a column per engine.
	for (blk = 1; blk <= 2; blk++) {
		mode = blk == 1 ? "write" : "scan"
		printf "workload" > plotdata
		for (i = 1; i <= ne; i++) printf " %s", E[i] > plotdata
		printf "\n" > plotdata
		for (j = 1; j <= nw; j++) {
			printf "%s", W[j] > plotdata
			for (i = 1; i <= ne; i++) {
				x = m("main", E[i], W[j], mode, "events_per_s")
				printf " %s", x == "" ? "NaN" : x > plotdata
			}
			printf "\n" > plotdata
		}
		printf "\n\n" > plotdata
	}
}' "$log" | tee "$out"

if [ -n "$plot" ]; then
	if command -v gnuplot >/dev/null 2>&1; then
		ne=$(echo "$ENGINES" | wc -w)
		gnuplot <<EOF
set terminal pngcairo size 1200,520 font "sans,11"
set output "$plot"
set multiplot layout 1,2 title "tidemark and peers, $events events, median of $reps (raw scan: arrival order)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set format y "%.0s%c"
set grid ytics
set key top left font ",9"
set ylabel "events/s (log scale)"
set title "ingest (--sync end)"
plot for [i=2:$((ne + 1))] "$work/plot.dat" index 0 using i:xtic(1) title columnheader(i)
set title "ordered scan"
plot for [i=2:$((ne + 1))] "$work/plot.dat" index 1 using i:xtic(1) title columnheader(i)
unset multiplot
EOF
		echo "plot in $plot" >&2
	else
		echo "$0: no gnuplot; no plot (apt-get install gnuplot-nox)" >&2
	fi
fi
echo "tables in $out, RESULT lines in $log" >&2
