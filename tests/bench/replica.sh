#!/bin/sh
# replica.sh BUILD_DIR [EVENTS] [REPS] - the replica repair benchmark (issue 4).
#
# Two replicas of the SPEC §7 `ooo` workload (EVENTS events, default 1M),
# built by tidemark-replica-gen + `tidemark append`: the same events in
# different arrival orders (B also holds 1% of them as late, recon events),
# with M events missing from A and M others missing from B, for each M of
# $CASES (default "100 1% 10%": a count, or a percentage of EVENTS, missing
# on EACH side). For every case, `tidemark sync A B` is run
#   local: both sides local directories;
#   pipe:  B through `tidemark serve --stdio` on a pipe (--remote-command);
# REPS times each (default 5) on fresh copies of the two stores (page cache
# warm), checking after every run that `tidemark diff A B` exits 0, and after
# the first that `tidemark read` of A and B print the same bytes (md5).
#
# Measured, and compared with the issue's targets:
#   bytes moved: bytes_exchanged of sync's JSON (both sides' frames, the
#     local side's counted as if sent), and for `pipe` the bytes that really
#     crossed the pipe; bound 1.5 x (NDJSON size of the missing events, as
#     `tidemark read` prints them) + 64 KiB; the bound with their record
#     size (30-byte header + payload) is printed next to it;
#   data read: one extra run per case and mode, not timed, under strace:
#     read/pread bytes from each store's shard files; LMDB's index is
#     mmapped (no read calls), so its pages are counted with fincore after
#     dropping both stores from the page cache before the run (an upper
#     bound: it includes readahead and the pages the run wrote); target
#     <= 5% of the store's size (du -sb before the sync);
#   time: median wall time of REPS runs, against `cp -a A COPY`, `cp -a` +
#     `sync -f`, `tar -cf - | tar -xf -` + `sync -f` (a copy between two
#     processes on a pipe, as over ssh) and `tidemark repair A EMPTY` (same
#     medians, on the first case's A); target: sync
#     >= 20x faster than copying.
#
# Output: Markdown tables on stdout and in $OUT (default
# BUILD_DIR/bench-replica-EVENTS.md); raw lines in $LOG (default
# BUILD_DIR/bench-replica-EVENTS.txt). Stores live under ${TMPDIR:-/tmp},
# removed unless KEEP=1. The 10% case takes most of the time (about 12
# minutes in all on a busy 2-core machine); CASES="100 1%" for a short run.
set -eu

usage() {
	echo "usage: $0 BUILD_DIR [EVENTS] [REPS]" >&2
	exit 2
}
if [ $# -lt 1 ] || [ $# -gt 3 ]; then usage; fi
build=$1
events=${2:-1000000}
reps=${3:-5}
case $events in '' | *[!0-9]* | 0) usage ;; esac
case $reps in '' | *[!0-9]* | 0) usage ;; esac
cases=${CASES:-100 1% 10%}

tm=$(cd "$build" && pwd)/src/cli/tidemark
gen=$(cd "$build" && pwd)/tests/bench/tidemark-replica-gen
for x in "$tm" "$gen"; do
	if [ ! -x "$x" ]; then
		echo "$0: no $x; build with: ninja -C $build" >&2
		exit 1
	fi
done
for x in strace fincore dd md5sum; do
	command -v "$x" >/dev/null 2>&1 || {
		echo "$0: needs $x" >&2
		exit 1
	}
done
build=$(cd "$build" && pwd)
out=${OUT:-$build/bench-replica-$events.md}
log=${LOG:-$build/bench-replica-$events.txt}
case $out in /*) ;; *) out=$PWD/$out ;; esac
case $log in /*) ;; *) log=$PWD/$log ;; esac

work=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-replica.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
	echo "stores kept in $work" >&2
else
	trap 'rm -rf "$work"' EXIT
	trap 'rm -rf "$work"; exit 130' INT TERM
fi
cd "$work"

load() { cut -d' ' -f1-3 /proc/loadavg; }
now() { date +%s%N; }
ms_since() { echo "$1 $(now)" | awk '{ printf "%.1f", ($2 - $1) / 1e6 }'; }
progress() { printf '%s\n' "$*" >&2; }
die() {
	echo "$0: $*" >&2
	exit 1
}
# The remote side: `tidemark serve --stdio PATH` through a plain pipe.
remote="$tm serve --stdio \"\$2\""

# drop STORE...: the stores' files out of the page cache (clean pages only,
# so written back first).
drop() {
	sync -f "$1"
	find "$@" -type f -exec dd if={} iflag=nocache count=0 status=none \;
}

calls=read,pread64,readv,preadv,preadv2,write

# sync_cmd MODE: the sync of A and B in that mode, JSON on stdout.
sync_cmd() {
	if [ "$1" = local ]; then
		"$tm" sync A B
	else
		"$tm" sync A ssh:bench:B --remote-command "$remote"
	fi
}

# fresh: new copies of the two stores, written back: a replica that has
# been running has clean pages, and a sync's fsyncs must not pay for the
# copy's writeback.
fresh() {
	rm -rf A B
	cp -a A0 A
	cp -a B0 B
	sync -f A
}

load_start=$(load)
date_start=$(date -u '+%Y-%m-%d %H:%M UTC')
: >"$log"

first=${cases%% *}
for c in $cases; do
	case $c in
	*%) missing=$(( events * ${c%\%} / 100 )) ;;
	*) missing=$c ;;
	esac
	progress "case $c: $missing missing on each side of $events events (load $(load))"
	rm -rf A0 B0
	"$tm" init A0 --grace 60s
	"$tm" init B0 --grace 60s
	"$gen" --side a --events "$events" --missing "$missing" |
		"$tm" append A0 2>/dev/null
	"$gen" --side b --events "$events" --missing "$missing" |
		"$tm" append B0 2>/dev/null
	ndjson=$( { "$gen" --side only-a --events "$events" --missing "$missing"
		"$gen" --side only-b --events "$events" --missing "$missing"; } | wc -c)
	size_a=$(du -sb A0 | cut -f1)
	size_b=$(du -sb B0 | cut -f1)
	late_b=$("$tm" stat B0 | sed 's/.*"late_events":\([0-9]*\).*/\1/')
	echo "case=$c missing=$missing ndjson_bytes=$ndjson record_bytes=$((2 * missing * 130)) size_a=$size_a size_b=$size_b late_b=$late_b" >>"$log"
	sync -f A0

	for mode in local pipe; do
		r=1
		while [ "$r" -le "$reps" ]; do
			fresh
			t0=$(now)
			if [ "$mode" = local ]; then
				"$tm" diff A B >/dev/null && die "diff found no difference ($c)"
			else
				"$tm" diff A ssh:bench:B --remote-command "$remote" >/dev/null &&
					die "diff found no difference ($c)"
			fi
			diff_ms=$(ms_since "$t0")
			t0=$(now)
			json=$(sync_cmd "$mode") || die "sync failed ($c, $mode)"
			ms=$(ms_since "$t0")
			"$tm" diff A B >/dev/null || die "diff A B after sync: exit $? ($c, $mode)"
			same=-
			if [ "$r" = 1 ]; then
				ra=$("$tm" read A | md5sum | cut -d' ' -f1)
				rb=$("$tm" read B | md5sum | cut -d' ' -f1)
				[ "$ra" = "$rb" ] || die "read A and read B differ ($c, $mode)"
				same=1
			fi
			bytes=$(echo "$json" | sed 's/.*"bytes_exchanged":\([0-9]*\).*/\1/')
			moved=$(echo "$json" | sed 's/.*"copied_to_a":\([0-9]*\),"copied_to_b":\([0-9]*\).*/\1 \2/')
			echo "case=$c mode=$mode rep=$r ms=$ms diff_ms=$diff_ms bytes=$bytes copied=${moved% *},${moved#* } reads_equal=$same" >>"$log"
			progress "  $mode rep $r: $ms ms, $bytes bytes"
			r=$((r + 1))
		done

		# The data each side reads: one more run, cold, under strace.
		fresh
		drop A B
		rm -f trace.*
		if [ "$mode" = local ]; then
			strace -ff -y -qq -e trace="$calls" -o trace "$tm" sync A B >/dev/null
		else
			strace -ff -y -qq -e trace="$calls" -o trace \
				"$tm" sync A ssh:bench:B --remote-command "$remote" >/dev/null
		fi
		mdb_a=$(fincore -b -n -o RES A/index/data.mdb | tr -d ' ')
		mdb_b=$(fincore -b -n -o RES B/index/data.mdb | tr -d ' ')
		awk -v c="$c" -v mode="$mode" -v w="$work" -v ma="$mdb_a" -v mb="$mdb_b" '
		# Lines (one file per process): call(FD<path>, ...) = N
		/ = [0-9]+$/ {
			n = $NF
			call = $1; sub(/\(.*/, "", call)
			if (call == "write") {
				if ($1 ~ /<pipe:/) pipe += n
				next
			}
			if ($1 ~ ("<" w "/A/shards/")) sa += n
			else if ($1 ~ ("<" w "/B/shards/")) sb += n
		}
		END {
			printf "case=%s mode=%s reads shard_a=%.0f shard_b=%.0f mdb_a=%.0f mdb_b=%.0f pipe_bytes=%.0f\n",
				c, mode, sa, sb, ma, mb, pipe
		}' trace.* >>"$log"
		"$tm" diff A B >/dev/null || die "diff A B after the traced sync ($c, $mode)"
		rm -f trace.*
	done
	rm -rf A B
	[ "$c" = "$first" ] || continue

	# References, on the first case's A0: copying one replica whole, and
	# repairing it into an empty store.
	progress "references: cp -a, cp -a + sync -f, tar | tar + sync -f, repair into an empty store"
	r=1
	while [ "$r" -le "$reps" ]; do
		rm -rf COPY
		sync -f A0
		t0=$(now)
		cp -a A0 COPY
		echo "ref=cp rep=$r ms=$(ms_since "$t0")" >>"$log"
		rm -rf COPY
		sync -f A0
		t0=$(now)
		cp -a A0 COPY
		sync -f COPY
		echo "ref=cp_sync rep=$r ms=$(ms_since "$t0")" >>"$log"
		# through a pipe between two processes, as a copy over ssh goes
		rm -rf COPY
		mkdir COPY
		sync -f A0
		t0=$(now)
		tar -C A0 -cf - . | tar -C COPY -xf -
		sync -f COPY
		echo "ref=tar_pipe_sync rep=$r ms=$(ms_since "$t0")" >>"$log"
		rm -rf COPY EMPTY
		"$tm" init EMPTY --grace 60s
		t0=$(now)
		"$tm" repair A0 EMPTY >/dev/null
		echo "ref=repair_empty rep=$r ms=$(ms_since "$t0")" >>"$log"
		if [ "$r" = 1 ]; then
			"$tm" diff A0 EMPTY >/dev/null || die "diff after repair into an empty store"
		fi
		rm -rf EMPTY
		r=$((r + 1))
	done
done

load_end=$(load)

# ---- Report ------------------------------------------------------------------

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
awk -v events="$events" -v reps="$reps" -v date_start="$date_start" \
	-v load_start="$load_start" -v load_end="$load_end" -v cpu="$cpu" \
	-v ncpu="$(nproc)" -v kernel="$(uname -sr)" '
function median(key,    n, i, j, t, v) {
	n = cnt[key]
	if (n == 0) return ""
	for (i = 1; i <= n; i++) v[i] = val[key, i]
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function group(x,    s) {
	x = sprintf("%.0f", x); s = ""
	while (length(x) > 3) { s = "," substr(x, length(x) - 2) s; x = substr(x, 1, length(x) - 3) }
	return x s
}
function mib(x) { return sprintf("%.2f MiB", x / 1048576) }
function ok(b) { return b ? "met" : "**missed**" }
{
	delete f
	for (i = 1; i <= NF; i++) { eq = index($i, "="); if (eq) f[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
	if ("ref" in f) { k = "ref" SUBSEP f["ref"]; val[k, ++cnt[k]] = f["ms"] + 0; next }
	c = f["case"]
	if (!(c in seen)) { seen[c] = 1; order[++nc] = c }
	if ("ndjson_bytes" in f) { for (k in f) info[c, k] = f[k]; next }
	if ($3 == "reads") { for (k in f) rd[c, f["mode"], k] = f[k]; next }
	k = c SUBSEP f["mode"]
	val[k, ++cnt[k]] = f["ms"] + 0
	kd = k SUBSEP "diff"
	val[kd, ++cnt[kd]] = f["diff_ms"] + 0
	bytes[c, f["mode"]] = f["bytes"] + 0
	copied[c, f["mode"]] = f["copied"]
}
END {
	cp = median("ref" SUBSEP "cp"); cps = median("ref" SUBSEP "cp_sync"); re = median("ref" SUBSEP "repair_empty")
	tps = median("ref" SUBSEP "tar_pipe_sync")
	printf "### Replica repair: two replicas of %s events, median of %d runs\n\n", group(events), reps
	printf "Run %s on %s (%s cores), %s. Load average (1, 5, 15 min) %s at the start, %s at the end.\n\n", date_start, cpu, ncpu, kernel, load_start, load_end
	print "| case | missing on each side | store A / B | late events in B | NDJSON size of the missing | record size of the missing |"
	print "| --- | ---: | ---: | ---: | ---: | ---: |"
	for (i = 1; i <= nc; i++) {
		c = order[i]
		printf "| %s | %s | %s / %s | %s | %s B | %s B |\n", c, group(info[c, "missing"]),
			mib(info[c, "size_a"]), mib(info[c, "size_b"]), group(info[c, "late_b"]),
			group(info[c, "ndjson_bytes"]), group(info[c, "record_bytes"])
	}
	print "\n#### Bytes moved (bound: 1.5 × size of the missing events + 64 KiB)\n"
	print "Judged on bytes_exchanged (every frame, both sides, the local side counted as if sent) for local, on the bytes that crossed the pipe for pipe.\n"
	print "| case | mode | events copied (to A, to B) | bytes_exchanged | through the pipe | bound (NDJSON) | bound (records) | bytes / bound (NDJSON) | |"
	print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
	for (i = 1; i <= nc; i++) for (m = 1; m <= 2; m++) {
		c = order[i]; mode = m == 1 ? "local" : "pipe"
		bn = 1.5 * info[c, "ndjson_bytes"] + 65536; br = 1.5 * info[c, "record_bytes"] + 65536
		printf "| %s | %s | %s | %s | %s | %s | %s | %.2f | %s |\n", c, mode, copied[c, mode],
			group(bytes[c, mode]), mode == "pipe" ? group(rd[c, mode, "pipe_bytes"]) : "—",
			group(bn), group(br), bytes[c, mode] / bn,
			ok((mode == "pipe" ? rd[c, mode, "pipe_bytes"] + 0 : bytes[c, mode]) <= bn)
	}
	print "\n#### Data read from each store (target: ≤ 5% of the store)\n"
	print "Shard files: bytes of read/pread calls (strace). Index: LMDB pages in the page cache after a run started with both stores dropped from it (mmapped, so no read calls; includes readahead and the pages the run wrote)."
	print ""
	print "| case | mode | A: shard files | A: index pages | A: total / store | B: shard files | B: index pages | B: total / store | |"
	print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
	for (i = 1; i <= nc; i++) for (m = 1; m <= 2; m++) {
		c = order[i]; mode = m == 1 ? "local" : "pipe"
		ta = rd[c, mode, "shard_a"] + rd[c, mode, "mdb_a"]; tb = rd[c, mode, "shard_b"] + rd[c, mode, "mdb_b"]
		fa = ta / info[c, "size_a"]; fb = tb / info[c, "size_b"]
		printf "| %s | %s | %s | %s | %.1f%% | %s | %s | %.1f%% | %s |\n", c, mode,
			mib(rd[c, mode, "shard_a"]), mib(rd[c, mode, "mdb_a"]), 100 * fa,
			mib(rd[c, mode, "shard_b"]), mib(rd[c, mode, "mdb_b"]), 100 * fb, ok(fa <= 0.05 && fb <= 0.05)
	}
	print "\n#### Time (median wall time; target: sync ≥ 20× faster than copying one replica)\n"
	printf "References, median of %d: `cp -a A COPY` %.0f ms; `cp -a` + `sync -f` %.0f ms; `tar -cf - | tar -xf -` (two processes on a pipe, as a copy over ssh) + `sync -f` %.0f ms; `tidemark repair A EMPTY` %.0f ms.\n\n", reps, cp, cps, tps, re
	print "| case | mode | diff | sync | cp -a / sync | (cp -a + sync -f) / sync | (tar \\| tar + sync -f) / sync | repair into empty / sync | |"
	print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
	for (i = 1; i <= nc; i++) for (m = 1; m <= 2; m++) {
		c = order[i]; mode = m == 1 ? "local" : "pipe"
		t = median(c SUBSEP mode)
		printf "| %s | %s | %.0f ms | %.0f ms | %.2f× | %.2f× | %.2f× | %.2f× | %s |\n", c, mode,
			median(c SUBSEP mode SUBSEP "diff"), t, cp / t, cps / t, tps / t, re / t,
			(cp / t >= 20 ? "met" : cps / t >= 20 ? "met against cp + sync only" : "**missed**")
	}
	print "\nAfter every sync `tidemark diff A B` exited 0; after the first of each case and mode, `tidemark read` of A and of B printed the same bytes."
}' "$log" | tee "$out"
echo "tables in $out, raw lines in $log" >&2
