/* fuzz_store.c - a whole store whose files were mutated: bytes flipped,
 * files cut short, files or the index deleted. Opening it, reading it,
 * verifying it and appending to it must never crash, and a read must never
 * return an event that was not stored.
 *
 * The input is a list of 6-byte edits: file (1 byte), offset (4 bytes LE),
 * what (1 byte: xor a byte with it, or, when it is 0, cut the file there;
 * offset 0xFFFFFFFF deletes the file). LMDB's own files are not mutated:
 * LMDB does not checksum its pages; a damaged index is repaired by deleting
 * it, which this target does exercise. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "tidemark.h"

#define MAX_FILES 16

static char base[256], work[256];
static char *names[MAX_FILES]; /* relative to the store */
static uint8_t *contents[MAX_FILES];
static size_t sizes[MAX_FILES];
static size_t n_files;
static uint64_t *stored; /* (ts, id) of every event stored, sorted */
static size_t n_stored;

static void add_file(const char *rel)
{
	char p[600];
	snprintf(p, sizeof p, "%s/%s", base, rel);
	FILE *f = fopen(p, "rb");
	if (!f || n_files == MAX_FILES)
		abort();
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	contents[n_files] = malloc((size_t)n + 1);
	if (fread(contents[n_files], 1, (size_t)n, f) != (size_t)n)
		abort();
	fclose(f);
	sizes[n_files] = (size_t)n;
	names[n_files++] = strdup(rel);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t key_of(const tdm_event *ev)
{
	return (uint64_t)ev->ts * 31 + ev->id;
}

/* A small store: three shards, out-of-order, late and labelled events. */
static void setup(void)
{
	if (base[0])
		return;
	char tmpl[64];
	fuzz_tempdir(tmpl, sizeof tmpl, "store");
	snprintf(base, sizeof base, "%s/base", tmpl);
	snprintf(work, sizeof work, "%s/work", tmpl);
	tdm_options o = TDM_OPTIONS_INIT;
	o.shard_duration_ns = 1000000000; /* 1 s */
	o.grace_ns = 100000000;           /* 100 ms */
	o.index_interval = 256;
	tdm_store *s;
	if (tdm_store_create(base, &o) || tdm_store_open(&s, base, NULL))
		abort();
	tdm_event evs[300];
	tdm_label lab[2] = {{"host", "web-1"}, {"level", "error"}};
	char payload[300][32];
	stored = malloc(sizeof *stored * 300);
	for (int i = 0; i < 300; i++) {
		int64_t ts = 1000000000ll + i * 10000000ll;
		if (i % 10 == 3)
			ts -= 50000000; /* out of order, within grace */
		if (i % 25 == 7)
			ts -= 400000000; /* late */
		snprintf(payload[i], sizeof payload[i], "event %d", i);
		evs[i] = (tdm_event){.ts = ts, .id = (uint32_t)i * 2654435761u,
		                     .labels = lab, .n_labels = (size_t)(i % 3),
		                     .payload = payload[i], .payload_len = strlen(payload[i])};
		stored[n_stored++] = key_of(&evs[i]);
	}
	tdm_append_result res;
	for (int i = 0; i < 300; i += 50)
		if (tdm_append(&res, NULL, s, evs + i, 50))
			abort();
	if (tdm_store_close(s))
		abort();
	qsort(stored, n_stored, sizeof *stored, cmp_u64);

	add_file("STORE");
	char shards[600];
	snprintf(shards, sizeof shards, "%s/shards", base);
	DIR *d = opendir(shards);
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.') {
			char rel[300];
			snprintf(rel, sizeof rel, "shards/%s", e->d_name);
			add_file(rel);
		}
	closedir(d);
}

static void restore(void)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", work, base, work);
	if (system(cmd) != 0)
		abort();
}

static void apply(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i + 6 <= size; i += 6) {
		size_t file = data[i] % (n_files + 1);
		uint32_t off = (uint32_t)data[i + 1] | (uint32_t)data[i + 2] << 8 |
		               (uint32_t)data[i + 3] << 16 | (uint32_t)data[i + 4] << 24;
		uint8_t what = data[i + 5];
		char p[1024];
		if (file == n_files) { /* the index */
			snprintf(p, sizeof p, "rm -rf '%s/index'", work);
			if (system(p) != 0)
				abort();
			continue;
		}
		snprintf(p, sizeof p, "%s/%s", work, names[file]);
		if (off == 0xFFFFFFFFu) {
			unlink(p);
			continue;
		}
		off %= (uint32_t)(sizes[file] + 1);
		if (what == 0) {
			if (truncate(p, off) != 0 && access(p, F_OK) == 0)
				abort();
			continue;
		}
		FILE *f = fopen(p, "r+b");
		if (!f)
			continue;
		if (fseek(f, off, SEEK_SET) == 0) {
			int c = fgetc(f);
			if (c != EOF) {
				fseek(f, off, SEEK_SET);
				fputc(c ^ what, f);
			}
		}
		fclose(f);
	}
}

static void check_store(void)
{
	tdm_store *s;
	if (tdm_store_open(&s, work, NULL) != 0)
		return; /* refusing a damaged store with an error is fine */
	tdm_iter *it;
	if (tdm_iter_open(&it, s, 0, INT64_MAX, NULL) == 0) {
		const tdm_event *ev;
		int r;
		while ((r = tdm_iter_next(&ev, it)) == 0) {
			uint64_t k = key_of(ev);
			if (!bsearch(&k, stored, n_stored, sizeof k, cmp_u64))
				abort(); /* an event that was never stored */
		}
		tdm_iter_close(it);
	}
	uint64_t problems;
	tdm_verify(&problems, s, NULL, NULL);
	tdm_event ev = {.ts = 1500000000, .id = 1, .payload = "x", .payload_len = 1};
	tdm_append_result res;
	tdm_append(&res, NULL, s, &ev, 1);
	tdm_store_close(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	restore();
	apply(data, size);
	check_store();
	return 0;
}
